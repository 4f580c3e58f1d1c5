"""INBOUND_HANDLER targets for tests: they record every call (thread-safe)."""

from __future__ import annotations

import threading
from typing import Any

CALLS: list[dict[str, Any]] = []
_lock = threading.Lock()


def _record(message: dict[str, Any]) -> None:
    with _lock:
        CALLS.append(message)


def echo(message: dict[str, Any]) -> str:
    _record(message)
    return f"echo: {message.get('text')}"


def as_dict(message: dict[str, Any]) -> dict[str, str]:
    _record(message)
    return {"text": "dict reply"}


def silent(message: dict[str, Any]) -> None:
    _record(message)
    return None


def broken(message: dict[str, Any]) -> str:
    _record(message)
    raise RuntimeError("the handler has a bug")


def wrong_type(message: dict[str, Any]) -> int:
    _record(message)
    return 42
