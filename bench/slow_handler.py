"""The reply handler of the events benchmark: it takes 2 s (a chatbot calling a model, a CRM lookup)."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["HANDLER_SECONDS", "handle"]

HANDLER_SECONDS = 2.0


def handle(message: dict[str, Any]) -> None:
    """Think for HANDLER_SECONDS, then send no reply (the benchmark measures the webhook's answer)."""
    time.sleep(HANDLER_SECONDS)
    return None
