"""SQLite-only behaviour: file handling, WAL, purging, and failures becoming StoreError."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from shared.errors import StoreError
from shared.store import sqlite as sqlite_module
from shared.store.sqlite import PURGE_INTERVAL, SQLiteStateStore
from tests.fixtures.store import FakeClock


def _raw_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT collection, key, data, expires_at FROM documents ORDER BY key").fetchall()


def test_creates_the_parent_directory_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.sqlite3"
    with SQLiteStateStore(str(path)) as store:
        store.create("things", "k", {"v": 1})
        assert path.is_file()
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_documents_are_json_and_expiry_has_its_own_column(tmp_path: Path, store_clock: FakeClock) -> None:
    path = tmp_path / "s.sqlite3"
    with SQLiteStateStore(str(path), clock=store_clock) as store:
        store.create("things", "k", {"v": "é"}, ttl=30)
    assert _raw_rows(path) == [("things", "k", '{"v":"é"}', store_clock.now + 30)]


def test_expired_rows_are_purged_periodically(tmp_path: Path, store_clock: FakeClock) -> None:
    path = tmp_path / "s.sqlite3"
    with SQLiteStateStore(str(path), clock=store_clock) as store:
        store.create("things", "old", {"v": 1}, ttl=10)
        store.create("things", "keep", {"v": 2})
        store_clock.advance(20)
        store.create("things", "new", {"v": 3})  # within PURGE_INTERVAL of the last purge
        assert {row[1] for row in _raw_rows(path)} == {"old", "keep", "new"}
        store_clock.advance(PURGE_INTERVAL)
        store.update("things", "keep", lambda doc: doc)  # any write may trigger the purge
        assert {row[1] for row in _raw_rows(path)} == {"keep", "new"}


def test_memory_store_is_shared_by_threads() -> None:
    with SQLiteStateStore() as store:
        threads = [
            threading.Thread(target=store.update, args=("c", "n", lambda d: {"n": (d or {"n": 0})["n"] + 1}))
            for _ in range(10)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.get("c", "n") == {"n": 10}


def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    with SQLiteStateStore(path) as first, SQLiteStateStore(path) as second:
        first.create("things", "k", {"v": 1})
        assert second.get("things", "k") == {"v": 1}


def test_unwritable_path_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = SQLiteStateStore(str(blocker / "sub" / "state.sqlite3"))
    with pytest.raises(StoreError) as info:
        store.ping()
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(StoreError):
        store.create("things", "k", {})


def test_a_file_that_is_not_a_database_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not an SQLite database, not at all" * 100)
    with pytest.raises(StoreError) as info:
        SQLiteStateStore(str(path)).get("things", "k")
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_a_lock_held_too_long_raises_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT", 0.1)
    path = tmp_path / "s.sqlite3"
    with SQLiteStateStore(str(path)) as store:
        store.ping()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        try:
            with pytest.raises(StoreError) as info:
                store.update("things", "k", lambda doc: {"v": 1})
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            with pytest.raises(StoreError):
                store.create("things", "k", {"v": 1})
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        store.create("things", "k", {"v": 2})  # usable again once the lock is gone
        assert store.get("things", "k") == {"v": 2}


def test_closed_store_raises_store_error(tmp_path: Path) -> None:
    store = SQLiteStateStore(str(tmp_path / "s.sqlite3"))
    store.create("things", "k", {})
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError):
        store.get("things", "k")
