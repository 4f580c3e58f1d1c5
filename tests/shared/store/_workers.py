"""Process entry points for the multi-process races (kept import-light: spawn re-imports).

``target`` is where the racing processes meet: a SQLite file path, or a PostgreSQL URL.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_target", "race_create", "race_increment", "race_migrate"]

WON, LOST, FAILED = 0, 3, 4


def open_target(target: str) -> Any:
    """A store on the shared SQLite file or PostgreSQL database named by ``target``."""
    if target.startswith(("postgresql://", "postgres://")):
        from shared.store.postgres import PostgresStateStore

        return PostgresStateStore(target)
    from shared.store.sqlite import SQLiteStateStore

    return SQLiteStateStore(target)


def race_create(target: str, barrier: Any, worker: int) -> None:
    """Try to create the same key as every other worker; exit WON or LOST."""
    import sys

    from shared.errors import RecordExistsError

    store = open_target(target)
    store.ping()  # open the connection before the start line, so the race is on the INSERT
    barrier.wait(timeout=120)  # generous: spawning six interpreters on a loaded 2-core machine is slow
    try:
        store.create("race", "same-key", {"worker": worker})
    except RecordExistsError:
        sys.exit(LOST)
    sys.exit(WON)


def race_increment(target: str, barrier: Any, times: int) -> None:
    """Increment one shared counter ``times`` times."""
    store = open_target(target)
    store.ping()
    barrier.wait(timeout=120)  # generous: spawning six interpreters on a loaded 2-core machine is slow
    for _ in range(times):
        store.update("race", "counter", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})


def race_migrate(target: str, barrier: Any, result_dir: str, worker: int) -> None:
    """Migrate an empty PostgreSQL database at the same moment as every other worker.

    Writes the migrations this worker applied (one per line) to result_dir/<worker>.
    """
    import pathlib

    import psycopg

    from shared.store.postgres import migrate

    with psycopg.connect(target, autocommit=True) as conn:
        barrier.wait(timeout=120)  # generous: spawning six interpreters on a loaded 2-core machine is slow
        applied = migrate(conn)
    pathlib.Path(result_dir, str(worker)).write_text("\n".join(applied), encoding="utf-8")
