"""PostgresStateStore: the shared-database backend (Replit's ``DATABASE_URL``, Heroku, Render, Fly, any VM).

psycopg 3 and its pool cost import time, so nothing from ``psycopg`` is imported at module import:
the pool (and the library) are loaded on the first operation, which also applies the schema
migrations in ``shared/store/migrations/postgres/`` (once per database, under an advisory lock).

Layout: one table ``vonage_documents`` (collection, key, key_hash, data JSONB, expire_at).
The primary key is (collection, SHA-256 of the key), so keys of any length fit in the index.
``expire_at`` holds the expiry in epoch seconds on the store's clock; reads check it, and a cheap
bounded sweep deletes expired rows at most once per :data:`SWEEP_INTERVAL`.

Round trips (autocommit connections from a small pool):
- ``create``: one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired`` (the row count says
  whether it was written: a live row makes the WHERE false, so nothing is written).
- ``get`` / ``delete`` / ``query`` / ``ping``: one statement each.
- ``update`` (and ``hit``, the rate-limit counter built on it): BEGIN, ``SELECT ... FOR UPDATE``,
  the write, COMMIT, in two round trips (:func:`_two_trip_transaction`). When the row does not
  exist there is nothing to lock, so the write is a plain ``INSERT``; if another transaction
  created the row meanwhile, that insert waits for it and fails (unique violation), the
  transaction is rolled back and the whole step runs again on the now-locked row.
- ``hit_many``: the same two round trips for any number of counters (one ``SELECT ... = ANY``).
tests/shared/store/test_round_trips.py checks these counts on the wire (libpq's protocol trace).
"""

from __future__ import annotations

import decimal
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any

from shared.errors import StoreError
from shared.store.base import ManyStep, StateStore, Step, StoredRecord

if TYPE_CHECKING:  # only for type hints: importing psycopg costs cold-start time
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

__all__ = [
    "DEFAULT_POOL_SIZE",
    "MAX_ATTEMPTS",
    "MIGRATION_LOCK_ID",
    "SWEEP_BATCH",
    "SWEEP_INTERVAL",
    "PostgresStateStore",
    "database_secrets",
    "migrate",
    "migrations",
]

DEFAULT_POOL_SIZE = 8  # = gunicorn's threads in scripts/serve.sh (THREADS, default 8)
POOL_TIMEOUT = 10.0  # seconds a caller waits for a free connection (or the first connect)
CONNECT_TIMEOUT = 10  # seconds, per connection attempt
IDLE_CHECK_AFTER = 30.0  # a connection idle this long is checked before use (servers drop idle ones)
# No statement (a lock wait included) may hold a request longer than this: a webhook must answer
# within Vonage's timeout, and a store error (5xx) makes the sender retry.
STATEMENT_TIMEOUT = 10.0
MAX_ATTEMPTS = 50  # update() retries after losing a race to create the same row
SWEEP_INTERVAL = 60.0  # seconds (on the store's clock) between sweeps of expired rows
SWEEP_BATCH = 500  # rows per sweep: bounded, so a sweep never holds a write for long
# pg_advisory_xact_lock key for migrations: any constant shared by every process of the app.
MIGRATION_LOCK_ID = 7_301_914_112_022_014

TABLE = "vonage_documents"
_MIGRATIONS_TABLE = "vonage_schema_migrations"
_MIGRATION_NAME_RE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")

_log = logging.getLogger(__name__)

# Create, or replace a row only when it has expired: 1 row = written, 0 = a live row was there.
_INSERT = f"""
INSERT INTO {TABLE} AS d (collection, key_hash, key, data, expire_at) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (collection, key_hash) DO UPDATE SET data = excluded.data, expire_at = excluded.expire_at
WHERE d.expire_at IS NOT NULL AND d.expire_at <= %s
"""
# update()'s and hit_many's create: no ON CONFLICT, so a row another transaction created meanwhile fails the
# whole pipelined transaction (unique violation), which is then run again from its SELECT.
_INSERT_STRICT = f"INSERT INTO {TABLE} (collection, key_hash, key, data, expire_at) VALUES (%s, %s, %s, %s, %s)"
# Rows are locked in key_hash order (the sort runs below the lock), so two transactions over
# overlapping keys cannot deadlock.
# Several documents of any collections, locked in one fixed order (overlapping batches cannot deadlock).
_SELECT_MANY = (
    f"SELECT collection, key_hash, data, expire_at FROM {TABLE} "
    "WHERE (collection, key_hash) IN (SELECT * FROM unnest(%s::text[], %s::bytea[])) "
    "ORDER BY collection, key_hash FOR UPDATE"
)
_UPDATE = f"UPDATE {TABLE} SET data = %s, expire_at = %s WHERE collection = %s AND key_hash = %s"
_SELECT = f"SELECT data, expire_at FROM {TABLE} WHERE collection = %s AND key_hash = %s"
_DELETE = f"DELETE FROM {TABLE} WHERE collection = %s AND key_hash = %s"
_SWEEP = f"""
DELETE FROM {TABLE} WHERE ctid IN (
    SELECT ctid FROM {TABLE} WHERE expire_at IS NOT NULL AND expire_at <= %s LIMIT {SWEEP_BATCH}
)
"""
# Firestore's order of types (null < booleans < numbers < strings < arrays < maps), so ordering a
# mixed-type field gives the same answer on every backend. Strings compare as UTF-8 bytes
# (COLLATE "C"), as Firestore does; numbers numerically (JSONB's own order within a type).
_TYPE_RANK = (
    "CASE jsonb_typeof(data -> %(order_by)s) WHEN 'null' THEN 0 WHEN 'boolean' THEN 1 WHEN 'number' THEN 2 "
    "WHEN 'string' THEN 3 WHEN 'array' THEN 5 ELSE 6 END"
)


def _two_trip_transaction(
    conn: Connection[Any], select: str, params: tuple[Any, ...], write: Callable[[Connection[Any], list[Any]], None]
) -> None:
    """A read-modify-write transaction in two round trips, in pipeline mode: BEGIN travels with the
    SELECT ... FOR UPDATE (its rows are the first answer), and the writes ``write`` queues travel
    with the COMMIT (the pipeline's closing Sync is the second).

    Explicit BEGIN/COMMIT on the autocommit connection, not ``conn.transaction()``: inside a
    pipeline that nests pipelines and syncs after BEGIN, after the block and at the end, five round
    trips in all. A row another transaction created meanwhile fails our INSERT (unique
    violation): the server skips the COMMIT, the transaction is rolled back here and the caller
    runs it again (_LostCreateRace).
    """
    import psycopg
    from psycopg.pq import TransactionStatus

    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            rows = conn.execute(select, params).fetchall()
            try:
                write(conn, rows)
            except BaseException:
                conn.execute("ROLLBACK")  # sent with the pipeline's closing Sync
                raise
            conn.execute("COMMIT")
    except BaseException as exc:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            try:
                conn.rollback()
            except psycopg.Error:
                pass  # the pool discards a connection left in a bad state
        if isinstance(exc, psycopg.errors.UniqueViolation):
            raise _LostCreateRace from None
        raise


class _LostCreateRace(Exception):
    """Another transaction created the row between our SELECT and our INSERT: run the step again."""


class PostgresStateStore(StateStore):
    """StateStore on a PostgreSQL database named by a libpq URL (``postgresql://user:pw@host/db``)."""

    name = "postgres"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        clock: Callable[[], float] = time.time,
        pool_timeout: float = POOL_TIMEOUT,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        super().__init__(clock=clock)
        if not isinstance(url, str) or not url.strip():
            raise ValueError("a PostgreSQL URL is required")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError("pool_size must be a positive integer")
        self._url = url
        self.pool_size = pool_size
        self.pool_timeout = pool_timeout
        self.statement_timeout = statement_timeout
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self._next_sweep = -math.inf
        self._sweep_lock = threading.Lock()
        self._returned_at: dict[int, float] = {}  # id(connection) -> monotonic time it went idle
        _load_driver()

    def __repr__(self) -> str:
        return f"PostgresStateStore(pool_size={self.pool_size})"  # never the URL: it may hold a password

    # ---- connections ----------------------------------------------------------

    def _get_pool(self) -> ConnectionPool:
        """The process's pool, opened (and the schema migrated) on first use."""
        if self._pid != os.getpid():
            # A pool (its sockets and worker threads) must never cross fork(): the child starts
            # afresh and abandons the inherited one without closing the parent's connections.
            with self._pool_lock:
                if self._pid != os.getpid():
                    self._pid, self._pool, self._returned_at = os.getpid(), None, {}
        pool = self._pool
        if pool is not None:
            return pool
        with self._pool_lock:
            if self._closed:
                raise StoreError("the PostgreSQL store is closed")
            if self._pool is None:
                self._pool = self._open_pool()
            return self._pool

    def _open_pool(self) -> ConnectionPool:
        try:
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # pragma: no cover - the pin is in requirements.txt
            raise StoreError("the PostgreSQL backend needs psycopg: pip install -r requirements.txt") from exc
        import psycopg

        pool = ConnectionPool(
            self._url,
            min_size=1,
            max_size=self.pool_size,
            timeout=self.pool_timeout,
            open=False,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            configure=self._configure,
            check=self._check_idle,
            reset=self._mark_idle,
            name="vonage-state",
        )
        try:
            pool.open(wait=True, timeout=self.pool_timeout)
            with pool.connection() as conn:
                migrate(conn)
        except (psycopg.Error, OSError) as exc:
            pool.close(timeout=1.0)
            raise StoreError(f"cannot open the PostgreSQL store: {type(exc).__name__}") from exc
        except BaseException:
            pool.close(timeout=1.0)
            raise
        return pool

    def _configure(self, conn: Connection[Any]) -> None:
        # Session settings, once per new connection (a startup `options` parameter would be refused
        # by some poolers). A store call that waits on a stuck lock fails instead of hanging.
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(self.statement_timeout * 1000)}",))
        from psycopg.types.json import set_json_loads

        set_json_loads(_loads, conn)  # undoes the U+0000 escaping of _dumps

    def _mark_idle(self, conn: Connection[Any]) -> None:
        self._returned_at[id(conn)] = time.monotonic()

    def _check_idle(self, conn: Connection[Any]) -> None:
        # Hosted servers (Neon behind Replit, Heroku) close idle connections; one that sat idle
        # long enough is probed with an empty query, and the pool replaces it if it fails. A busy
        # connection is not probed: that would double every round trip.
        returned = self._returned_at.get(id(conn))
        if returned is None or time.monotonic() - returned >= IDLE_CHECK_AFTER:
            conn.execute("")

    def _run(self, action: str, work: Callable[[Connection[Any]], Any]) -> Any:
        """Run ``work`` on a pooled connection; driver errors become StoreError (never values)."""
        import psycopg

        try:
            with self._get_pool().connection() as conn:
                return work(conn)
        except psycopg.Error as exc:  # PoolTimeout, PoolClosed are psycopg errors too
            raise StoreError(f"the PostgreSQL store failed to {action}: {type(exc).__name__}") from exc

    # ---- primitives -------------------------------------------------------------

    def _insert(self, collection: str, key: str, record: StoredRecord, now: float) -> bool:
        params = (collection, _key_hash(key), _key_text(key), _jsonb(record.data), record.expires_at, now)
        written = self._run("create", lambda conn: conn.execute(_INSERT, params).rowcount == 1)
        self._maybe_sweep()
        return bool(written)

    def _fetch(self, collection: str, key: str) -> StoredRecord | None:
        row = self._run("read", lambda conn: conn.execute(_SELECT, (collection, _key_hash(key))).fetchone())
        return None if row is None else StoredRecord(row[0], row[1])

    def _transact(self, collection: str, key: str, step: Step) -> StoredRecord | None:
        key_hash = _key_hash(key)
        outcome: list[StoredRecord | None] = []

        def write(conn: Connection[Any], rows: list[Any]) -> None:
            current = None if not rows else StoredRecord(rows[0][0], rows[0][1])
            new = step(current)  # the caller's exceptions propagate unchanged (and roll back)
            outcome.append(current if new is None else new)
            if new is None:
                return
            if rows:
                conn.execute(_UPDATE, (_jsonb(new.data), new.expires_at, collection, key_hash))
            else:
                conn.execute(_INSERT_STRICT, (collection, key_hash, _key_text(key), _jsonb(new.data), new.expires_at))

        self._retry_lost_creates(_SELECT + " FOR UPDATE", (collection, key_hash), write)
        return outcome[-1]

    def _transact_many(self, refs: list[tuple[str, str]], step: ManyStep) -> None:
        ids = [(collection, _key_hash(key)) for collection, key in refs]

        def write(conn: Connection[Any], rows: list[Any]) -> None:
            found = {(row[0], bytes(row[1])): StoredRecord(row[2], row[3]) for row in rows}
            for (_, key), (collection, key_hash), new in zip(refs, ids, step([found.get(i) for i in ids])):
                if new is None:
                    continue
                if (collection, key_hash) in found:
                    conn.execute(_UPDATE, (_jsonb(new.data), new.expires_at, collection, key_hash))
                else:
                    conn.execute(
                        _INSERT_STRICT, (collection, key_hash, _key_text(key), _jsonb(new.data), new.expires_at)
                    )

        self._retry_lost_creates(_SELECT_MANY, ([c for c, _ in ids], [h for _, h in ids]), write)

    def _retry_lost_creates(
        self, select: str, params: tuple[Any, ...], write: Callable[[Connection[Any], list[Any]], None]
    ) -> None:
        """Run a read-modify-write transaction, again while it loses a race to create a row."""
        for _ in range(MAX_ATTEMPTS):
            try:
                self._run("update", lambda conn: _two_trip_transaction(conn, select, params, write))
            except _LostCreateRace:
                continue
            self._maybe_sweep()
            return
        raise StoreError("the PostgreSQL store failed to update: too much contention on one record")

    def _delete(self, collection: str, key: str) -> None:
        self._run("delete", lambda conn: conn.execute(_DELETE, (collection, _key_hash(key))))

    def _query(
        self,
        collection: str,
        where: dict[str, Any],
        order_by: str | None,
        descending: bool,
        limit: int,
        now: float,
    ) -> Iterator[StoredRecord]:
        sql = [f"SELECT data, expire_at FROM {TABLE} WHERE collection = %(collection)s",
               "AND (expire_at IS NULL OR expire_at > %(now)s)"]
        params: dict[str, Any] = {"collection": collection, "now": now, "limit": limit}
        for index, (field_name, value) in enumerate(where.items()):
            # JSONB equality: numbers compare numerically (1 = 1.0), never equal booleans, a
            # JSON null matches null but not a missing field (-> gives SQL NULL, never equal).
            sql.append(f"AND data -> %(f{index})s = %(v{index})s::jsonb")
            params[f"f{index}"] = _escape(field_name)
            params[f"v{index}"] = _dumps(value)
        direction = "DESC" if descending else "ASC"
        if order_by is not None:
            params["order_by"] = _escape(order_by)
            # As Firestore: documents without the ordered field are left out.
            sql.append("AND data -> %(order_by)s IS NOT NULL")
            sql.append(
                f"ORDER BY {_TYPE_RANK} {direction}, "
                f"(CASE WHEN jsonb_typeof(data -> %(order_by)s) = 'string' THEN data ->> %(order_by)s END) "
                f'COLLATE "C" {direction}, '
                f"data -> %(order_by)s {direction}, key_hash {direction}"
            )
        else:
            sql.append("ORDER BY key_hash")  # the primary key's order: any order is allowed here
        sql.append("LIMIT %(limit)s")
        query = " ".join(sql)
        rows = self._run("query", lambda conn: conn.execute(query, params).fetchall())
        return iter([StoredRecord(data, expire_at) for data, expire_at in rows])

    def _ping(self) -> None:
        self._run("ping", lambda conn: conn.execute("SELECT 1").fetchone())

    def _close(self) -> None:
        with self._pool_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close(timeout=5.0)

    # ---- housekeeping -------------------------------------------------------------

    def _maybe_sweep(self) -> None:
        """Delete a bounded batch of expired rows at most once per SWEEP_INTERVAL.

        Best effort: reads already ignore expired rows, so a failed sweep must not fail the
        write that triggered it. One thread sweeps; the others do not wait for it.
        """
        now = self._clock()
        if now < self._next_sweep or not self._sweep_lock.acquire(blocking=False):
            return
        try:
            if now < self._next_sweep:
                return
            self._next_sweep = now + SWEEP_INTERVAL
            self._run("sweep", lambda conn: conn.execute(_SWEEP, (now,)))
        except StoreError:
            _log.warning("sweeping expired rows failed; will retry later", exc_info=True)
        finally:
            self._sweep_lock.release()


# ---- migrations -------------------------------------------------------------------


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration in shared/store/migrations/postgres, in order."""
    folder = resources.files("shared.store").joinpath("migrations", "postgres")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME_RE.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two PostgreSQL migrations share a version number")
    return found


def migrate(conn: Connection[Any]) -> list[str]:
    """Apply the migrations this database has not seen yet; return the names applied.

    One transaction under ``pg_advisory_xact_lock``: processes starting together queue here, and
    each later one finds the work done. A failing migration rolls back entirely.
    """
    applied: list[str] = []
    with conn.transaction():
        # A migration (or the wait for another process's) may outlast the per-statement limit.
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_MIGRATIONS_TABLE} ("
            "version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute(f"SELECT version FROM {_MIGRATIONS_TABLE}")}
        for version, name, sql in migrations():
            if version in done:
                continue
            conn.execute(sql.encode("utf-8"))  # no parameters: several statements per file are allowed
            conn.execute(f"INSERT INTO {_MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)", (version, name))
            applied.append(name)
    if applied:
        _log.info("PostgreSQL schema migrated", extra={"migrations": applied})
    return applied


# ---- helpers ------------------------------------------------------------------------


def database_secrets(url: str | None) -> list[str]:
    """The parts of a database URL that must never reach a log: the URL itself and its password."""
    if not url:
        return []
    secrets = [url]
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        password = None
    if password:
        secrets += [password, urllib.parse.unquote(password)]
    # key=value connection strings: password=secret or password='se cret'
    match = re.search(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", url)
    if match:
        secrets.append(match.group(1).strip("'"))
    return [secret for secret in secrets if secret]


def _key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _key_text(key: str) -> str:
    # The readable copy of the key (identity is key_hash): PostgreSQL text cannot hold U+0000.
    return key.replace("\x00", "\ufffd")


# PostgreSQL text and JSONB cannot hold U+0000, which the contract allows in any string. Strings
# holding it (or the escape character itself) are stored escaped: U+E000 (a private-use character)
# followed by "0" for U+0000 and by "e" for U+E000 itself; reads undo it. Documents without either
# character (nearly all) take the fast path: one json.dumps, one substring test.
_ESC = "\ue000"
_ESC_BYTES = _ESC.encode("utf-8")
_UNESCAPE_RE = re.compile("\ue000([0e])")


def _escape(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(_ESC, _ESC + "e").replace("\x00", _ESC + "0")
    if isinstance(value, list):
        return [_escape(item) for item in value]
    if isinstance(value, dict):
        return {_escape(name): _escape(item) for name, item in value.items()}
    return value


def _unescape(value: Any) -> Any:
    if isinstance(value, str):
        return _UNESCAPE_RE.sub(lambda match: "\x00" if match.group(1) == "0" else _ESC, value)
    if isinstance(value, list):
        return [_unescape(item) for item in value]
    if isinstance(value, dict):
        return {_unescape(name): _unescape(item) for name, item in value.items()}
    return value


def _loads(data: bytes) -> Any:
    value = json.loads(data)
    return _unescape(value) if _ESC_BYTES in data else value


_driver_lock = threading.Lock()


def _load_driver() -> None:
    """Import psycopg and its pool once, under a lock, when the first store is built.

    The import stays off cold starts that never touch PostgreSQL, but it must not happen lazily
    on request threads: two threads importing psycopg at once deadlock or see a half-initialised
    module (seen in the webhook burst: 144 of 160 webhooks failed with an import error).
    """
    with _driver_lock:
        import psycopg  # noqa: F401
        import psycopg.types.json  # noqa: F401
        import psycopg_pool  # noqa: F401


def _jsonb(data: dict[str, Any]) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(data, dumps=_dumps)


def _dumps(data: Any) -> str:
    # The base class validated the document, so this cannot fail on types or NaN.
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if "\\u0000" in text or _ESC in text:  # json.dumps writes U+0000 as the escape \u0000
        data = _escape(data)
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if _EXPONENT_RE.search(text):
        text = _big_floats_in_full(data)
    return text


# Python writes floats of 1e16 and more as 1e+16; PostgreSQL's numeric stores that as the integer
# 10000000000000000 and reads it back without a fraction, so it would come back as an int. Such
# floats are written in full with ".0" instead (numeric keeps the scale), so they stay floats.
_EXPONENT_RE = re.compile(r"[0-9]e\+")


def _big_floats_in_full(data: Any) -> str:
    marker = f"bigfloat-{uuid.uuid4().hex}-"
    found: list[str] = []

    def mark(value: Any) -> Any:
        if isinstance(value, float) and "e+" in repr(value):
            found.append(format(decimal.Decimal(repr(value)), "f") + ".0")
            return f"{marker}{len(found) - 1}"
        if isinstance(value, list):
            return [mark(item) for item in value]
        if isinstance(value, dict):
            return {name: mark(item) for name, item in value.items()}
        return value

    text = json.dumps(mark(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return re.sub(f'"{marker}([0-9]+)"', lambda match: found[int(match.group(1))], text)
