"""The exact expiry boundary of the SQLite store (issue 19: ``>`` vs ``>=`` in queries survived).

A document with ``ttl`` seconds is live strictly before ``created + ttl`` and gone at that
instant, in every operation alike: get, query, create-over-it and the purge.
"""

from __future__ import annotations

import pytest

from shared.errors import RecordExistsError
from shared.store import sqlite as sqlite_module
from shared.store.sqlite import SQLiteStateStore
from tests.fixtures.store import FakeClock

TTL = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock):
    with SQLiteStateStore(clock=clock) as sqlite:
        sqlite.create("things", "a", {"n": 1, "kind": "x"}, ttl=TTL)
        sqlite.create("things", "forever", {"n": 2, "kind": "x"})
        yield sqlite


def _queried(store) -> list[int]:
    return sorted(d["n"] for d in store.query("things", where={"kind": "x"}))


def test_just_before_its_expiry_a_document_is_live_everywhere(store, clock):
    clock.advance(TTL - 0.001)
    assert store.get("things", "a") == {"n": 1, "kind": "x"}
    assert _queried(store) == [1, 2]
    assert sorted(d["n"] for d in store.query("things", order_by="n")) == [1, 2]
    with pytest.raises(RecordExistsError):
        store.create("things", "a", {"n": 3, "kind": "x"})


def test_at_the_instant_of_its_expiry_a_document_is_gone_everywhere(store, clock):
    clock.advance(TTL)
    assert store.get("things", "a") is None
    assert _queried(store) == [2]
    assert [d["n"] for d in store.query("things", order_by="n")] == [2]
    # the expired row is left out by the query itself, so it never takes a place within the limit
    assert store.query("things", order_by="n", limit=1) == [{"n": 2, "kind": "x"}]
    store.create("things", "a", {"n": 3, "kind": "x"})  # an expired row is replaced
    assert store.get("things", "a") == {"n": 3, "kind": "x"}


def test_the_purge_deletes_rows_expiring_at_that_instant_and_keeps_later_ones(clock, monkeypatch):
    with SQLiteStateStore(clock=clock) as store:
        store.create("things", "now", {"n": 1}, ttl=TTL)
        store.create("things", "later", {"n": 2}, ttl=TTL + 1)
        clock.advance(TTL)
        monkeypatch.setattr(store, "_next_purge", -float("inf"))
        store.create("things", "trigger", {"n": 3})  # a write runs the purge
        rows = store._connection().execute("SELECT key FROM documents ORDER BY key").fetchall()
        assert [key for (key,) in rows] == ["later", "trigger"]


def test_the_purge_runs_at_most_once_a_minute(clock):
    assert sqlite_module.PURGE_INTERVAL == 60.0
    with SQLiteStateStore(clock=clock) as store:
        store.create("things", "t0", {"n": 0})  # first write: purge now, next in a minute
        store.create("things", "short", {"n": 1}, ttl=1)
        clock.advance(59)
        store.create("things", "t1", {"n": 2})  # within the interval: no purge, the row stays
        count = store._connection().execute("SELECT count(*) FROM documents WHERE key = 'short'").fetchone()[0]
        assert count == 1
        clock.advance(1)
        store.create("things", "t2", {"n": 3})  # the interval has passed: purged
        count = store._connection().execute("SELECT count(*) FROM documents WHERE key = 'short'").fetchone()[0]
        assert count == 0


def test_a_file_uri_path_is_opened_as_a_uri(tmp_path, clock):
    # "file:" paths are SQLite URIs (e.g. mode=ro, or a shared in-memory database), not file names
    target = tmp_path / "via-uri.sqlite3"
    with SQLiteStateStore(f"file:{target}?mode=rwc", clock=clock) as store:
        store.create("things", "a", {"n": 1})
        assert store.get("things", "a") == {"n": 1}
    assert target.exists()
    assert not any(p.name.startswith("file:") for p in tmp_path.iterdir())


def test_a_writer_waits_ten_seconds_for_another_process_lock(clock, tmp_path):
    with SQLiteStateStore(str(tmp_path / "busy.sqlite3"), clock=clock) as store:
        store.create("things", "a", {"n": 1})
        assert store._connection().execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
