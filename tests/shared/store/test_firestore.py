"""Firestore-only behaviour: document ids, lazy import, the stored layout, failures as StoreError."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shared.errors import StoreError
from shared.store.firestore import FirestoreStateStore, encode_document_id
from tests.fixtures.store import FakeClock, make_firestore_store
from tests.shared.store.test_contract import ODD_KEYS

REPO = Path(__file__).resolve().parents[3]


# ---- document ids (no emulator needed) ---------------------------------------------


@pytest.mark.parametrize("key", ODD_KEYS + ["a", "%7E", "~", "x" * 1500, "x" * 1501])
def test_document_ids_are_valid_firestore_ids(key: str) -> None:
    doc_id = encode_document_id(key)
    assert doc_id and "/" not in doc_id
    assert doc_id not in (".", "..")
    assert not (len(doc_id) >= 4 and doc_id.startswith("__") and doc_id.endswith("__"))
    assert len(doc_id.encode("utf-8")) <= 1500


def test_document_ids_are_distinct_for_distinct_keys() -> None:
    keys = ODD_KEYS + ["a/b", "a%2Fb", "a%252Fb", "_", "__", "%5F_x__", "__x__", "x" * 1500, "x" * 1501]
    keys += ["y" * 1499 + c for c in "abc/%"] + ["y" * 1000 + "%~" + "0" * 64]
    ids = [encode_document_id(k) for k in set(keys)]
    assert len(set(ids)) == len(set(keys))


def test_document_ids_stay_readable() -> None:
    assert encode_document_id("abc-123_X") == "abc-123_X"
    assert encode_document_id("+447700900123") == "+447700900123"
    assert encode_document_id("verify:+4477") == "verify:+4477"
    assert encode_document_id("a/b c") == "a%2Fb%20c"
    assert encode_document_id("..") == "%2E."
    assert encode_document_id("__x__") == "%5F_x__"
    long_id = encode_document_id("z" * 5000)
    assert long_id.startswith("z" * 1000 + "%~") and len(long_id) == 1000 + 2 + 64


# ---- cold start and construction ------------------------------------------------------


def test_importing_the_store_does_not_import_the_firestore_library() -> None:
    code = (
        "import sys\n"
        "import shared.store, shared.store.firestore, shared.store.sqlite\n"
        "from shared.store.firestore import FirestoreStateStore\n"
        "FirestoreStateStore(project='p', prefix='x_')\n"
        "loaded = [m for m in sys.modules if m.startswith(('google.cloud.firestore', 'grpc'))]\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FIRESTORE_EMULATOR_HOST"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("prefix", ["a/b", "sp ace", "x" * 101])
def test_bad_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(ValueError):
        FirestoreStateStore(project="p", prefix=prefix)


# ---- unreachable store (no emulator needed: a closed port) ---------------------------


@pytest.fixture
def unreachable_store(monkeypatch: pytest.MonkeyPatch) -> Any:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
    store = FirestoreStateStore(project="unreachable-test", timeout=0.3)
    yield store
    store.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.ping(),
        lambda s: s.get("things", "k"),
        lambda s: s.create("things", "k", {"v": 1}),
        lambda s: s.update("things", "k", lambda doc: {"v": 1}),
        lambda s: s.hit("b", "k", limit=1, window=60),
        lambda s: s.query("things", where={"v": 1}),
        lambda s: s.delete("things", "k"),
    ],
    ids=["ping", "get", "create", "update", "hit", "query", "delete"],
)
def test_unreachable_firestore_raises_store_error_quickly(unreachable_store: Any, call: Any) -> None:
    from google.api_core.exceptions import GoogleAPIError

    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        call(unreachable_store)
    assert time.monotonic() - started < 5
    assert isinstance(info.value.__cause__, GoogleAPIError)
    assert type(info.value) is StoreError  # not RecordExistsError: callers answer 503


# ---- stored layout (emulator) ------------------------------------------------------------


@pytest.mark.firestore
def test_layout_prefix_encoded_id_and_ttl_fields(firestore_client: Any, store_clock: FakeClock) -> None:
    store = make_firestore_store(firestore_client, store_clock, prefix="t1_")
    store.create("things", "a/b", {"v": 1}, ttl=60)
    raw = firestore_client.collection("t1_things").document("a%2Fb").get().to_dict()
    assert raw["v"] == 1
    assert raw["_expires_at"] == store_clock.now + 60
    expected = datetime.datetime.fromtimestamp(store_clock.now + 60, tz=datetime.timezone.utc)
    assert raw["expire_at"] == expected  # a real timestamp, for the TTL policy on `expire_at`
    store.update("things", "a/b", lambda doc: {"v": 2})  # ttl kept: the TTL fields too
    raw = firestore_client.collection("t1_things").document("a%2Fb").get().to_dict()
    assert raw == {"v": 2, "_expires_at": store_clock.now + 60, "expire_at": expected}
    store.create("things", "forever", {"v": 3})
    assert firestore_client.collection("t1_things").document("forever").get().to_dict() == {"v": 3}


@pytest.mark.firestore
def test_prefixes_separate_stores(firestore_client: Any, store_clock: FakeClock) -> None:
    first = make_firestore_store(firestore_client, store_clock, prefix="one_")
    second = FirestoreStateStore(firestore_client, prefix="two_", clock=store_clock)
    first.create("things", "k", {"v": 1})
    assert second.get("things", "k") is None
    second.create("things", "k", {"v": 2})
    assert first.get("things", "k") == {"v": 1}


@pytest.mark.firestore
def test_expired_documents_physically_present_are_ignored(firestore_client: Any, store_clock: FakeClock) -> None:
    # Firestore's TTL policy deletes "typically within 24 hours": the code must not wait for it.
    store = make_firestore_store(firestore_client, store_clock)
    store.create("things", "k", {"v": 1}, ttl=1)
    store_clock.advance(3600)
    assert firestore_client.collection("things").document("k").get().exists
    assert store.get("things", "k") is None
    assert store.query("things") == []
