"""What only the PostgreSQL backend has: migrations, the messages view, its errors, its sweep.

The contract itself runs in test_contract.py / test_concurrency.py (the ``store`` fixture).
Tests that need the server are marked ``postgres`` and skip loudly without POSTGRES_TEST_URL.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared import deps
from shared.config import Settings
from shared.errors import StoreError
from shared.log import configure_logging, get_logger
from shared.messages.records import MESSAGES, StatusEvent, attach_vonage_ids, new_message_record, record_status_event
from shared.store import open_store
from shared.store.base import StateStore
from shared.store.postgres import (
    SWEEP_INTERVAL,
    TABLE,
    PostgresStateStore,
    database_secrets,
    migrations,
)
from tests.fixtures.store import FakeClock
from tests.shared.store import _workers

REPO = pathlib.Path(__file__).resolve().parents[3]
PASSWORD = "pw-Do-not-Log-9137"


def _sql(store: StateStore, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    assert isinstance(store, PostgresStateStore)
    return store._run("test query", lambda conn: conn.execute(query, params).fetchall())


# ---- without a server ------------------------------------------------------------------


def test_importing_the_backend_does_not_import_psycopg() -> None:
    code = (
        "import sys\n"
        "import shared.store.postgres, shared.deps\n"
        "print([m for m in sys.modules if m.startswith('psycopg')])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_building_the_store_loads_the_driver_so_request_threads_never_import_it() -> None:
    # Two request threads importing psycopg lazily at once deadlock or see a half-built module
    # (the webhook burst lost 144 of 160 webhooks that way): the store imports it when built.
    code = (
        "import sys\n"
        "from shared.store.postgres import PostgresStateStore\n"
        "PostgresStateStore('postgresql://nobody@127.0.0.1:1/none')\n"
        "print(sorted(m for m in ('psycopg', 'psycopg.types.json', 'psycopg_pool') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['psycopg', 'psycopg.types.json', 'psycopg_pool']"


def test_migrations_are_numbered_in_order_and_ship_with_the_code() -> None:
    found = migrations()
    assert [version for version, _, _ in found] == list(range(1, len(found) + 1))
    assert [name for _, name, _ in found][:2] == ["0001_init.sql", "0002_messages_view.sql"]
    assert all(sql.strip() for _, _, sql in found)


def test_open_store_builds_a_postgres_store_without_connecting() -> None:
    store = open_store(Settings.from_env({"DATABASE_URL": f"postgresql://u:{PASSWORD}@127.0.0.1:1/db", "THREADS": "3"}))
    assert isinstance(store, PostgresStateStore)
    assert (store.name, store.pool_size, store._pool) == ("postgres", 3, None)
    assert PASSWORD not in repr(store)
    store.close()


def test_database_secrets_name_the_url_and_its_password() -> None:
    assert database_secrets(None) == []
    url = "postgresql://app:p%40ss-word@host/db"
    assert {url, "p%40ss-word", "p@ss-word"} <= set(database_secrets(url))
    assert "s3cret value" in database_secrets("host=db user=app password='s3cret value' dbname=app")
    assert "plainsecret" in database_secrets("host=db password=plainsecret")


def test_an_unreachable_server_is_a_store_error_that_names_no_secret() -> None:
    port = _closed_port()
    store = PostgresStateStore(f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/app", pool_timeout=5)
    with pytest.raises(StoreError) as info:
        store.get("things", "k")
    assert PASSWORD not in str(info.value) and "127.0.0.1" not in str(info.value)
    assert info.value.__cause__ is not None  # raise ... from the driver's error
    store.close()


def test_the_database_password_never_reaches_a_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql://app:{PASSWORD}@db.example/app"
    monkeypatch.setenv("DATABASE_URL", url)
    deps.reset()
    stream = io.StringIO()
    configure_logging("INFO", stream=stream, force=True)
    try:
        deps.get_settings()
        get_logger("t").warning("connecting to %s", url, extra={"detail": f"password={PASSWORD}"})
    finally:
        deps.reset()
        configure_logging("INFO", force=True)
    text = stream.getvalue()
    assert text and PASSWORD not in text
    assert json.loads(text.splitlines()[-1])["detail"] == "password=[redacted]"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- on the server ------------------------------------------------------------------------


@pytest.fixture
def fresh_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the test server (dropped after)."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = "vf_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(postgres_url, dbname=name)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_processes_starting_together_migrate_exactly_once(fresh_database: str, tmp_path: pathlib.Path) -> None:
    import psycopg

    count = 4
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    processes = [
        context.Process(target=_workers.race_migrate, args=(fresh_database, barrier, str(tmp_path), worker))
        for worker in range(count)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0] * count
    applied = [(tmp_path / str(worker)).read_text(encoding="utf-8") for worker in range(count)]
    every = "\n".join(name for _, name, _ in migrations())
    assert sorted(applied) == [""] * (count - 1) + [every], applied  # one process did all the work
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute("SELECT version, name FROM vonage_schema_migrations ORDER BY version").fetchall()
    assert rows == [(version, name) for version, name, _ in migrations()]


@pytest.mark.postgres
def test_a_store_on_an_empty_database_migrates_it_on_first_use(fresh_database: str) -> None:
    with PostgresStateStore(fresh_database) as store:
        store.create("things", "k", {"v": 1})
        assert store.get("things", "k") == {"v": 1}
        assert _sql(store, "SELECT count(*) FROM vonage_schema_migrations") == [(len(migrations()),)]
    with PostgresStateStore(fresh_database) as again:  # a later process finds the work done
        assert again.get("things", "k") == {"v": 1}
        assert _sql(again, "SELECT count(*) FROM vonage_schema_migrations") == [(len(migrations()),)]


@pytest.mark.postgres
def test_expired_rows_are_swept_in_the_background_of_writes(postgres_store: StateStore, store_clock: FakeClock) -> None:
    postgres_store.create("things", "short", {"v": 1}, ttl=10)
    postgres_store.create("things", "forever", {"v": 2})
    store_clock.advance(SWEEP_INTERVAL + 1)
    assert _sql(postgres_store, f"SELECT count(*) FROM {TABLE}") == [(2,)]  # expired but not yet swept
    postgres_store.create("things", "trigger", {"v": 3})  # a write after the interval sweeps
    assert sorted(row[0] for row in _sql(postgres_store, f"SELECT key FROM {TABLE}")) == ["forever", "trigger"]


@pytest.mark.postgres
def test_strings_with_u0000_round_trip_although_postgres_text_cannot_hold_it(postgres_store: StateStore) -> None:
    # The contract allows any string; PostgreSQL text and JSONB refuse U+0000, so the backend escapes it
    # (with U+E000, which must round-trip too, also next to the characters the escape uses).
    odd = ["nul\x00inside", "\x00", "esc\ue000", "\ue0000", "\ue000e", "\\u0000", "both\ue000\x00\ue000e0"]
    doc = {"text": odd[0], "list": odd, "nested": {"k\x00ey": odd[1], "x": [{"\ue000": "v"}]}, "plain": "ok"}
    postgres_store.create("nul", "k\x00ey", doc)
    assert postgres_store.get("nul", "k\x00ey") == doc
    assert postgres_store.get("nul", "k\ufffdey") is None  # the readable key column is not the identity
    assert postgres_store.update("nul", "k\x00ey", lambda d: {**(d or {}), "n": 1}) == {**doc, "n": 1}
    for index, value in enumerate(odd):
        postgres_store.create("nul", f"v{index}", {"v": value, "i": index})
    for index, value in enumerate(odd):
        assert postgres_store.query("nul", where={"v": value}) == [{"v": value, "i": index}], repr(value)
    assert postgres_store.query("nul", where={"k\x00ey": "x"}) == []
    assert len(postgres_store.query("nul", order_by="v")) == len(odd)


@pytest.mark.postgres
def test_big_and_small_floats_come_back_as_floats(postgres_store: StateStore) -> None:
    # PostgreSQL's numeric reads 1e+16 back as 10000000000000000 (an int) unless it is written in full.
    doc = {"big": 1e16, "neg": -2.5e300, "list": [1.5e17, 3], "map": {"f": 1e22, "s": "1e+16"}, "small": 1e-7,
           "int": 10**16, "mid": 123456789.0}
    postgres_store.create("floats", "k", doc)
    got = postgres_store.get("floats", "k")
    assert got == doc
    assert got is not None and [type(got[k]) for k in ("big", "neg", "small", "int", "mid")] == [
        float, float, float, int, float]
    assert type(got["list"][0]) is float and type(got["map"]["f"]) is float and got["map"]["s"] == "1e+16"
    assert postgres_store.query("floats", where={"big": 1e16}) == [doc]
    assert postgres_store.query("floats", where={"big": 10**16}) == [doc]  # numbers compare numerically


@pytest.mark.postgres
def test_the_messages_view_shows_each_send_with_its_status_ids_and_price(postgres_store: StateStore) -> None:
    now = 1_800_000_000.0
    record = new_message_record("msg_view1", channel="sms", api="sms", to="+447700900123", sender="Acme",
                                client_ref="order-7", now=now)
    postgres_store.create(MESSAGES, "msg_view1", record)
    attach_vonage_ids(postgres_store, "msg_view1", [{"vonage_id": "v-1"}, {"vonage_id": "v-2"}],
                      price="0.0666", currency="EUR", now=now + 1)
    for vonage_id, price in (("v-1", "0.0333"), ("v-2", "0.0333")):
        record_status_event(postgres_store, StatusEvent(vonage_id, "delivered", timestamp="2027-01-15T08:00:02Z",
                                                        price=price, currency="EUR"))
    postgres_store.create(MESSAGES, "msg_view2", new_message_record("msg_view2", channel="whatsapp", api="messages",
                                                                    to="447700900999", sender="447700900000", now=now))
    postgres_store.create("not_messages", "other", {"status": "delivered"})  # other collections stay out

    rows = _sql(
        postgres_store,
        "SELECT id, channel, api, to_masked, sender, status, vonage_ids, price, submit_price, currency, client_ref, "
        "extract(epoch FROM created_at), extract(epoch FROM submitted_at), updated_at IS NOT NULL, error_code "
        "FROM vonage_messages ORDER BY id",
    )
    from decimal import Decimal

    assert rows == [
        ("msg_view1", "sms", "sms", "+44********23", "Acme", "delivered", ["v-1", "v-2"], Decimal("0.0666"),
         Decimal("0.0666"), "EUR", "order-7", Decimal(now), Decimal(now + 1), True, None),
        ("msg_view2", "whatsapp", "messages", "+44********99", "447700900000", "pending", [], None,
         None, None, None, Decimal(now), None, True, None),
    ]
    # The documented example queries answer too.
    assert _sql(postgres_store, "SELECT status, count(*) FROM vonage_messages GROUP BY status ORDER BY status") == [
        ("delivered", 1), ("pending", 1)]
    assert _sql(postgres_store, "SELECT id FROM vonage_messages WHERE 'v-2' = ANY (vonage_ids)") == [("msg_view1",)]


def _use_after_fork(store: Any) -> None:
    # The child's first call must build its own pool: the parent's sockets are not its to use.
    # The inherited pool is held here, so the new one cannot reuse its address (an id() check did,
    # now and then, once the store let go of the inherited pool).
    inherited = store._pool
    store.create("forked", "child", {"pid": os.getpid()})
    assert store.get("forked", "parent") == {"v": 1}
    assert inherited is not None and store._pool is not None and store._pool is not inherited


@pytest.mark.postgres
def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone(postgres_store: StateStore) -> None:
    postgres_store.create("forked", "parent", {"v": 1})  # the parent's pool is open and in use
    child = multiprocessing.get_context("fork").Process(target=_use_after_fork, args=(postgres_store,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    stored = postgres_store.get("forked", "child")
    assert stored is not None and stored["pid"] != os.getpid()
    postgres_store.update("forked", "parent", lambda doc: {"v": 2})  # the parent's connections still work
    assert postgres_store.get("forked", "parent") == {"v": 2}


@pytest.mark.postgres
def test_a_store_call_stuck_behind_a_lock_fails_instead_of_hanging(postgres_url: str, store_clock: FakeClock) -> None:
    import psycopg

    from tests.fixtures.store import make_postgres_store

    store = make_postgres_store(postgres_url, store_clock, statement_timeout=0.5)
    try:
        store.create("things", "locked", {"n": 1})
        with psycopg.connect(postgres_url) as other:  # another process, stuck inside its transaction
            other.execute(f"SELECT 1 FROM {TABLE} WHERE collection = 'things' FOR UPDATE")
            with pytest.raises(StoreError) as info:
                store.update("things", "locked", lambda doc: {"n": 2})
            assert "QueryCanceled" in str(info.value)
            other.rollback()
        assert store.update("things", "locked", lambda doc: {"n": 2}) == {"n": 2}  # the lock is gone: it works
    finally:
        store.close()
