"""Process entry points for the multi-process SQLite races (kept import-light: spawn re-imports)."""

from __future__ import annotations

from typing import Any

__all__ = ["race_create", "race_increment"]

WON, LOST, FAILED = 0, 3, 4


def race_create(path: str, barrier: Any, worker: int) -> None:
    """Try to create the same key as every other worker; exit WON or LOST."""
    import sys

    from shared.errors import RecordExistsError
    from shared.store.sqlite import SQLiteStateStore

    store = SQLiteStateStore(path)
    store.ping()  # open the connection before the start line, so the race is on the INSERT
    barrier.wait(timeout=30)
    try:
        store.create("race", "same-key", {"worker": worker})
    except RecordExistsError:
        sys.exit(LOST)
    sys.exit(WON)


def race_increment(path: str, barrier: Any, times: int) -> None:
    """Increment one shared counter ``times`` times."""
    from shared.store.sqlite import SQLiteStateStore

    store = SQLiteStateStore(path)
    store.ping()
    barrier.wait(timeout=30)
    for _ in range(times):
        store.update("race", "counter", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})
