"""SQLiteStateStore: the embedded backend (one file, stdlib ``sqlite3`` only).

Safe under concurrent threads (one connection per process, guarded by a lock) and concurrent
processes on the same file (WAL, ``busy_timeout``, ``BEGIN IMMEDIATE`` for read-modify-write,
an upsert that only replaces an expired row for create). Documents are stored as JSON text;
the expiry lives in its own indexed column so expired rows can be purged cheaply.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from shared.errors import StoreError
from shared.store.base import ManyStep, StateStore, Step, StoredRecord

__all__ = ["BUSY_TIMEOUT", "PURGE_INTERVAL", "SQLiteStateStore"]

BUSY_TIMEOUT = 10.0  # seconds a writer waits for another process's lock before failing
PURGE_INTERVAL = 60.0  # seconds (on the store's clock) between deletions of expired rows

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    data       TEXT NOT NULL,
    expires_at REAL,
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_expires_at ON documents (expires_at) WHERE expires_at IS NOT NULL;
"""

# Create, or replace a row only when it has expired. rowcount tells which happened:
# 1 = written, 0 = a live row was there (the DO UPDATE's WHERE was false).
_INSERT = """
INSERT INTO documents (collection, key, data, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (collection, key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at
WHERE documents.expires_at IS NOT NULL AND documents.expires_at <= ?
"""

_UPSERT = """
INSERT INTO documents (collection, key, data, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (collection, key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at
"""

_SELECT = "SELECT data, expires_at FROM documents WHERE collection = ? AND key = ?"

# Mirrors Firestore's order of types (null < booleans < numbers < strings < arrays < maps),
# so ordering a mixed-type field gives the same answer on both backends.
_TYPE_RANK = (
    "CASE json_type(data, ?) WHEN 'null' THEN 0 WHEN 'false' THEN 1 WHEN 'true' THEN 1 "
    "WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 WHEN 'array' THEN 5 ELSE 6 END"
)


class SQLiteStateStore(StateStore):
    """StateStore on one SQLite file (``":memory:"`` for a private in-process database)."""

    name = "sqlite"

    def __init__(self, path: str = ":memory:", *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._closed = False
        self._next_purge = -math.inf

    # ---- connection ---------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The process's connection, opened on first use (call with the lock held)."""
        if self._closed:
            raise StoreError("the SQLite store is closed")
        if self._conn is not None:
            return self._conn
        try:
            if self.path != ":memory:" and not self.path.startswith("file:"):
                parent = os.path.dirname(os.path.abspath(self.path))
                os.makedirs(parent, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves; the lock makes the shared
            # connection safe, check_same_thread=False lets every thread use it.
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False, uri=True
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SQLite store: {type(exc).__name__}") from exc
        try:
            _prepare(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the SQLite store: {type(exc).__name__}") from exc
        self._conn = conn
        return conn

    def _locked(self) -> threading.RLock:
        # A connection (and a lock another thread held) must never cross fork(): a child starts
        # afresh. The inherited connection is abandoned, not closed, as SQLite requires.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._conn = None
            self._lock = threading.RLock()
        return self._lock

    def _execute(self, conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Cursor:
        try:
            return conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"the SQLite store failed: {type(exc).__name__}") from exc

    # ---- primitives -------------------------------------------------------

    def _insert(self, collection: str, key: str, record: StoredRecord, now: float) -> bool:
        with self._locked():
            conn = self._connection()
            cursor = self._execute(conn, _INSERT, (collection, key, _dumps(record.data), record.expires_at, now))
            self._maybe_purge(conn)
            return cursor.rowcount == 1

    def _fetch(self, collection: str, key: str) -> StoredRecord | None:
        with self._locked():
            row = self._execute(self._connection(), _SELECT, (collection, key)).fetchone()
        return None if row is None else StoredRecord(json.loads(row[0]), row[1])

    def _transact(self, collection: str, key: str, step: Step) -> StoredRecord | None:
        with self._locked():
            conn = self._connection()
            # IMMEDIATE takes the write lock up front: a deferred read that upgrades to a write
            # would fail with SQLITE_BUSY (no waiting) when another process wrote in between.
            self._execute(conn, "BEGIN IMMEDIATE")
            try:
                row = self._execute(conn, _SELECT, (collection, key)).fetchone()
                current = None if row is None else StoredRecord(json.loads(row[0]), row[1])
                new = step(current)  # the caller's exceptions propagate unchanged
                if new is not None:
                    self._execute(conn, _UPSERT, (collection, key, _dumps(new.data), new.expires_at))
                self._execute(conn, "COMMIT")
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the transaction is already gone; the original error is what matters
                raise
            self._maybe_purge(conn)
        return new if new is not None else current

    def _transact_many(self, refs: list[tuple[str, str]], step: ManyStep) -> None:
        # The same single transaction as _transact, over several documents (hit_many's counters
        # and charges).
        with self._locked():
            conn = self._connection()
            self._execute(conn, "BEGIN IMMEDIATE")
            try:
                current = []
                for collection, key in refs:
                    row = self._execute(conn, _SELECT, (collection, key)).fetchone()
                    current.append(None if row is None else StoredRecord(json.loads(row[0]), row[1]))
                for (collection, key), new in zip(refs, step(current)):
                    if new is not None:
                        self._execute(conn, _UPSERT, (collection, key, _dumps(new.data), new.expires_at))
                self._execute(conn, "COMMIT")
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
            self._maybe_purge(conn)

    def _delete(self, collection: str, key: str) -> None:
        with self._locked():
            conn = self._connection()
            self._execute(conn, "DELETE FROM documents WHERE collection = ? AND key = ?", (collection, key))

    def _query(
        self,
        collection: str,
        where: dict[str, Any],
        order_by: str | None,
        descending: bool,
        limit: int,
        now: float,
    ) -> Iterator[StoredRecord]:
        sql = ["SELECT data, expires_at FROM documents WHERE collection = ? AND (expires_at IS NULL OR expires_at > ?)"]
        params: list[Any] = [collection, now]
        for field_name, value in where.items():
            path = _json_path(field_name)
            if value is None:
                sql.append("AND json_type(data, ?) = 'null'")
                params.append(path)
            elif isinstance(value, bool):
                sql.append("AND json_type(data, ?) = ?")
                params += [path, "true" if value else "false"]
            elif isinstance(value, (int, float)):
                sql.append("AND json_type(data, ?) IN ('integer', 'real') AND json_extract(data, ?) = ?")
                params += [path, path, value]
            else:
                sql.append("AND json_type(data, ?) = 'text' AND json_extract(data, ?) = ?")
                params += [path, path, value]
        direction = "DESC" if descending else "ASC"
        if order_by is not None:
            path = _json_path(order_by)
            # Firestore leaves out documents without the ordered field; do the same.
            sql.append("AND json_type(data, ?) IS NOT NULL")
            sql.append(f"ORDER BY {_TYPE_RANK} {direction}, json_extract(data, ?) {direction}, key {direction}")
            params += [path, path, path]
        else:
            sql.append("ORDER BY key")
        sql.append("LIMIT ?")
        params.append(limit)
        with self._locked():
            rows = self._execute(self._connection(), " ".join(sql), params).fetchall()
        return iter([StoredRecord(json.loads(data), expires_at) for data, expires_at in rows])

    def _ping(self) -> None:
        with self._locked():
            self._execute(self._connection(), "SELECT 1").fetchone()

    def _close(self) -> None:
        with self._locked():
            self._closed = True
            if self._conn is not None:
                conn, self._conn = self._conn, None
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise StoreError(f"closing the SQLite store failed: {type(exc).__name__}") from exc

    # ---- housekeeping -----------------------------------------------------

    def _maybe_purge(self, conn: sqlite3.Connection) -> None:
        """Delete expired rows at most once per PURGE_INTERVAL (call with the lock held).

        Best effort: reads already ignore expired rows, so a failed purge (say, another process
        holds the write lock) must not fail the caller's write that triggered it.
        """
        now = self._clock()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        try:
            conn.execute("DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
        except sqlite3.Error:
            _log.warning("purging expired rows failed; will retry later", exc_info=True)


def _dumps(data: dict[str, Any]) -> str:
    # The base class validated the document, so this cannot fail on types or NaN.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _json_path(field_name: str) -> str:
    # Quoted label: a top-level field literally named "a.b" or "x[0]" stays one field.
    return f'$."{field_name}"'


def _prepare(conn: sqlite3.Connection) -> None:
    """Pragmas and schema on a new connection.

    Switching a fresh file to WAL takes an exclusive lock and SQLite answers "database is
    locked" at once, without its busy handler, when another process is doing the same (several
    gunicorn workers starting together): retry that step until BUSY_TIMEOUT.
    """
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
    conn.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes in WAL mode
    conn.executescript(_SCHEMA)
