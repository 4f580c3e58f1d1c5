"""Timestamps as the webhook records store them: ISO 8601 UTC with milliseconds.

Fixed width, so they sort as strings (the inbound list orders by ``received_at``).
"""

from __future__ import annotations

import time

__all__ = ["iso_time"]


def iso_time(now: float | None = None) -> str:
    """``2026-01-30T12:00:00.123Z`` for ``now`` (epoch seconds; the current time when None)."""
    moment = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int((moment % 1) * 1000):03d}Z"
