"""The StateStore contract. Every test here runs unchanged against every backend
(the ``store`` fixture is parametrised over sqlite, firestore and postgres)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import RecordExistsError, StoreError
from shared.store import RateDecision, StateStore
from shared.store.base import NO_EXPIRY, Charge, RateHit, Update
from tests.fixtures.store import DelegatingStore, FakeClock

DOC: dict[str, Any] = {
    "text": "héllo ☃",
    "count": 3,
    "ratio": 0.5,
    "ok": True,
    "nothing": None,
    "items": [1, "two", {"three": 3.0, "four": [4]}],
    "nested": {"a": {"b": [True, False, None]}},
}


# ---- create / get / delete -------------------------------------------------


def test_create_then_get_round_trips_json_types(store: StateStore) -> None:
    store.create("things", "k1", DOC)
    assert store.get("things", "k1") == DOC


def test_get_absent_is_none(store: StateStore) -> None:
    assert store.get("things", "missing") is None


def test_get_returns_a_copy(store: StateStore) -> None:
    store.create("things", "k1", {"items": [1]})
    got = store.get("things", "k1")
    assert got is not None
    got["items"].append(2)
    assert store.get("things", "k1") == {"items": [1]}


def test_second_create_raises_record_exists_and_keeps_the_first(store: StateStore) -> None:
    store.create("things", "k1", {"v": 1})
    with pytest.raises(RecordExistsError) as info:
        store.create("things", "k1", {"v": 2})
    assert isinstance(info.value, StoreError)
    assert "k1" not in str(info.value)  # keys can be phone numbers: never in messages
    assert store.get("things", "k1") == {"v": 1}


def test_collections_are_separate(store: StateStore) -> None:
    store.create("one", "k", {"v": 1})
    store.create("two", "k", {"v": 2})
    assert store.get("one", "k") == {"v": 1}
    assert store.get("two", "k") == {"v": 2}


def test_delete_removes_and_allows_create_again(store: StateStore) -> None:
    store.create("things", "k1", {"v": 1})
    store.delete("things", "k1")
    assert store.get("things", "k1") is None
    store.create("things", "k1", {"v": 2})
    assert store.get("things", "k1") == {"v": 2}


def test_delete_absent_is_not_an_error(store: StateStore) -> None:
    store.delete("things", "never-there")
    assert store.get("things", "never-there") is None


def test_ping(store: StateStore) -> None:
    store.ping()
    assert store.name in ("sqlite", "firestore", "postgres")


# ---- expiry ------------------------------------------------------------------


def test_document_expires_on_read(store: StateStore, store_clock: FakeClock) -> None:
    store.create("things", "k1", {"v": 1}, ttl=10)
    store_clock.advance(9.9)
    assert store.get("things", "k1") == {"v": 1}
    store_clock.advance(0.1)  # exactly at the expiry: gone
    assert store.get("things", "k1") is None


def test_expired_document_can_be_created_again(store: StateStore, store_clock: FakeClock) -> None:
    store.create("things", "k1", {"v": 1}, ttl=10)
    with pytest.raises(RecordExistsError):
        store.create("things", "k1", {"v": 2})
    store_clock.advance(11)
    store.create("things", "k1", {"v": 3})  # no ttl: this one never expires
    store_clock.advance(10**6)
    assert store.get("things", "k1") == {"v": 3}


def test_document_without_ttl_never_expires(store: StateStore, store_clock: FakeClock) -> None:
    store.create("things", "k1", {"v": 1})
    store_clock.advance(10 * 365 * 86400)
    assert store.get("things", "k1") == {"v": 1}


def test_reserved_expiry_fields_are_not_returned(store: StateStore) -> None:
    store.create("things", "k1", {"v": 1}, ttl=60)
    assert store.get("things", "k1") == {"v": 1}
    assert store.update("things", "k1", lambda doc: doc) == {"v": 1}
    assert store.query("things") == [{"v": 1}]


# ---- update --------------------------------------------------------------------


def test_update_creates_when_absent(store: StateStore) -> None:
    seen: list[Any] = []

    def fn(doc: dict[str, Any] | None) -> dict[str, Any]:
        seen.append(doc)
        return {"n": 1}

    assert store.update("things", "k1", fn) == {"n": 1}
    assert seen[-1] is None
    assert store.get("things", "k1") == {"n": 1}


def test_update_modifies_existing(store: StateStore) -> None:
    store.create("things", "k1", {"n": 1, "keep": "me"})
    after = store.update("things", "k1", lambda doc: {**(doc or {}), "n": (doc or {})["n"] + 1})
    assert after == {"n": 2, "keep": "me"}
    assert store.get("things", "k1") == after


def test_update_writes_the_full_document(store: StateStore) -> None:
    store.create("things", "k1", {"a": 1, "b": 2})
    store.update("things", "k1", lambda doc: {"c": 3})
    assert store.get("things", "k1") == {"c": 3}


def test_update_returning_none_writes_nothing(store: StateStore) -> None:
    assert store.update("things", "absent", lambda doc: None) is None
    assert store.get("things", "absent") is None
    store.create("things", "k1", {"n": 1})

    def mutate_then_skip(doc: dict[str, Any] | None) -> None:
        assert doc is not None
        doc["n"] = 99  # fn gets a copy: this must not leak into the store
        return None

    assert store.update("things", "k1", mutate_then_skip) == {"n": 1}
    assert store.get("things", "k1") == {"n": 1}


def test_update_exception_aborts_and_propagates_unchanged(store: StateStore) -> None:
    store.create("things", "k1", {"n": 1})

    class Boom(Exception):
        pass

    boom = Boom("nope")

    def fn(doc: dict[str, Any] | None) -> dict[str, Any]:
        raise boom

    with pytest.raises(Boom) as info:
        store.update("things", "k1", fn)
    assert info.value is boom
    assert store.get("things", "k1") == {"n": 1}


def test_update_propagates_store_errors_raised_by_fn_unchanged(store: StateStore) -> None:
    # Callers may raise our own errors from fn (e.g. a conflict); they must not be rewrapped.
    err = RecordExistsError("taken")

    def fn(doc: dict[str, Any] | None) -> dict[str, Any]:
        raise err

    with pytest.raises(RecordExistsError) as info:
        store.update("things", "k1", fn)
    assert info.value is err
    assert store.get("things", "k1") is None


def test_update_ttl_none_keeps_the_current_expiry(store: StateStore, store_clock: FakeClock) -> None:
    store.create("things", "k1", {"n": 1}, ttl=10)
    store_clock.advance(5)
    store.update("things", "k1", lambda doc: {"n": 2})
    store_clock.advance(4.9)
    assert store.get("things", "k1") == {"n": 2}
    store_clock.advance(0.1)
    assert store.get("things", "k1") is None


def test_update_ttl_sets_a_new_expiry(store: StateStore, store_clock: FakeClock) -> None:
    store.create("things", "k1", {"n": 1}, ttl=10)
    store_clock.advance(5)
    store.update("things", "k1", lambda doc: {"n": 2}, ttl=100)
    store_clock.advance(99)
    assert store.get("things", "k1") == {"n": 2}
    store_clock.advance(1)
    assert store.get("things", "k1") is None


def test_update_of_new_document_with_ttl_none_never_expires(store: StateStore, store_clock: FakeClock) -> None:
    store.update("things", "k1", lambda doc: {"n": 1})
    store_clock.advance(10**7)
    assert store.get("things", "k1") == {"n": 1}


def test_update_sees_expired_document_as_absent(store: StateStore, store_clock: FakeClock) -> None:
    store.create("things", "k1", {"n": 1}, ttl=10)
    store_clock.advance(10)
    seen: list[Any] = []

    def fn(doc: dict[str, Any] | None) -> dict[str, Any]:
        seen.append(doc)
        return {"n": 5}

    assert store.update("things", "k1", fn) == {"n": 5}
    assert seen[-1] is None
    store_clock.advance(10**6)  # the old expiry does not carry over to the new document
    assert store.get("things", "k1") == {"n": 5}


def test_update_returning_none_on_expired_document_returns_none(store: StateStore, store_clock: FakeClock) -> None:
    store.create("things", "k1", {"n": 1}, ttl=10)
    store_clock.advance(10)
    assert store.update("things", "k1", lambda doc: None) is None


def test_update_rejects_non_json_documents(store: StateStore) -> None:
    store.create("things", "k1", {"n": 1})
    with pytest.raises(TypeError):
        store.update("things", "k1", lambda doc: {"bad": {1, 2}})
    assert store.get("things", "k1") == {"n": 1}


# ---- validation (identical on both backends) ------------------------------------


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"s": {1, 2}}, TypeError),
        ({"t": (1, 2)}, TypeError),
        ({"b": b"bytes"}, TypeError),
        ({1: "int key"}, TypeError),
        ({"deep": {"x": [object()]}}, TypeError),
        ({"nested_list": [1, [2]]}, TypeError),
        ({"nan": float("nan")}, ValueError),
        ({"": 1}, ValueError),
        ({"m": {"": 1}}, ValueError),
        ({"__name__": 1}, ValueError),
        ({"m": {"__x__": 1}}, ValueError),
        ({"big": 2**63}, ValueError),
        ({"_expires_at": 1.0}, ValueError),
        ({"expire_at": 1.0}, ValueError),
    ],
)
def test_create_rejects_documents_outside_the_contract(store: StateStore, data: Any, error: type) -> None:
    with pytest.raises(error):
        store.create("things", "k1", data)
    assert store.get("things", "k1") is None


@pytest.mark.parametrize("collection", ["", "a/b", "__x__", "sp ace", "x" * 101])
def test_bad_collection_names_are_rejected(store: StateStore, collection: str) -> None:
    with pytest.raises(ValueError):
        store.create(collection, "k", {})


def test_empty_key_is_rejected(store: StateStore) -> None:
    with pytest.raises(ValueError):
        store.create("things", "", {})
    with pytest.raises(ValueError):
        store.get("things", "")


def test_bad_ttl_is_rejected(store: StateStore) -> None:
    for ttl in (0, -1, float("nan"), -float("inf")):
        with pytest.raises(ValueError):
            store.create("things", "k", {}, ttl=ttl)
    assert store.get("things", "k") is None


def test_no_expiry_removes_an_expiry(store: StateStore, store_clock: FakeClock) -> None:
    # A receipt parked in the id index expires; the index the sender makes of it must not.
    store.create("things", "k1", {"v": 1}, ttl=60)
    store.create("things", "k2", {"v": 1}, ttl=60)
    store.update("things", "k1", lambda doc: {"v": 2}, ttl=NO_EXPIRY)
    store.update_many([Update("things", "k2", lambda doc: {"v": 2}, ttl=NO_EXPIRY)])
    store.update("things", "k3", lambda doc: {"v": 2}, ttl=NO_EXPIRY)
    store_clock.advance(10 * 365 * 86400)
    assert [store.get("things", k) for k in ("k1", "k2", "k3")] == [{"v": 2}] * 3
    with pytest.raises(ValueError):
        store.hit("b", "k", limit=1, window=NO_EXPIRY)


# ---- odd keys ----------------------------------------------------------------------

ODD_KEYS = [
    "a/b",
    "/",
    "//double//",
    ".",
    "..",
    "...",
    "__x__",
    "__",
    "____",
    "__name__",
    "%2F",
    "%",
    "a:b+c d",
    "+447700900123",
    "ünïcödé ☃ 🎉",
    "tab\tnew\nline",
    "?x=1&y=2#frag",
    "x" * 2000,
    "é" * 1000,
    "x" * 1499 + "y",
    "x" * 1499 + "z",
    "x" * 1600 + "/",
    "x" * 1600 + "%2F",
]


def test_odd_keys_are_distinct_and_round_trip(store: StateStore) -> None:
    for index, key in enumerate(ODD_KEYS):
        store.create("odd", key, {"i": index})
    for index, key in enumerate(ODD_KEYS):
        assert store.get("odd", key) == {"i": index}, repr(key[:40])
    assert len(store.query("odd", limit=100)) == len(ODD_KEYS)
    for key in ODD_KEYS:
        with pytest.raises(RecordExistsError):
            store.create("odd", key, {"i": -1})
        store.update("odd", key, lambda doc: {"i": (doc or {})["i"] + 1000})
    for index, key in enumerate(ODD_KEYS):
        assert store.get("odd", key) == {"i": index + 1000}
        store.delete("odd", key)
        assert store.get("odd", key) is None


# ---- query -------------------------------------------------------------------------


def _seed(store: StateStore) -> None:
    rows = [
        ("a", {"kind": "sms", "n": 3, "ok": True}),
        ("b", {"kind": "sms", "n": 1, "ok": False}),
        ("c", {"kind": "mms", "n": 2, "ok": True}),
        ("d", {"kind": "sms", "n": 5, "ok": True}),
        ("e", {"kind": "sms", "n": 4.5, "ok": True}),
    ]
    for key, doc in rows:
        store.create("msgs", key, doc)


def test_query_without_filters_returns_everything(store: StateStore) -> None:
    _seed(store)
    assert sorted(doc["n"] for doc in store.query("msgs")) == [1, 2, 3, 4.5, 5]


def test_query_empty_collection(store: StateStore) -> None:
    assert store.query("nothing-here") == []


def test_query_equality_filters(store: StateStore) -> None:
    _seed(store)
    assert sorted(d["n"] for d in store.query("msgs", where={"kind": "sms"})) == [1, 3, 4.5, 5]
    assert sorted(d["n"] for d in store.query("msgs", where={"kind": "sms", "ok": True})) == [3, 4.5, 5]
    assert store.query("msgs", where={"kind": "fax"}) == []
    assert store.query("msgs", where={"n": 2.0}) == [{"kind": "mms", "n": 2, "ok": True}]  # 2 == 2.0
    assert store.query("msgs", where={"n": 4.5}) == [{"kind": "sms", "n": 4.5, "ok": True}]


def test_query_booleans_never_equal_numbers(store: StateStore) -> None:
    store.create("flags", "t", {"v": True})
    store.create("flags", "one", {"v": 1})
    store.create("flags", "zero", {"v": 0})
    store.create("flags", "f", {"v": False})
    assert store.query("flags", where={"v": True}) == [{"v": True}]
    assert store.query("flags", where={"v": 1}) == [{"v": 1}]
    assert store.query("flags", where={"v": False}) == [{"v": False}]
    assert store.query("flags", where={"v": 0}) == [{"v": 0}]


def test_query_null_filter_matches_null_not_missing(store: StateStore) -> None:
    store.create("n", "null", {"v": None, "id": 1})
    store.create("n", "missing", {"id": 2})
    store.create("n", "text", {"v": "None", "id": 3})
    assert store.query("n", where={"v": None}) == [{"v": None, "id": 1}]


def test_query_field_names_are_literal(store: StateStore) -> None:
    store.create("lit", "1", {"a.b": 1, "a": {"b": 2}})
    store.create("lit", "2", {"a.b": 2, "a": {"b": 1}})
    assert store.query("lit", where={"a.b": 1}) == [{"a.b": 1, "a": {"b": 2}}]
    assert [d["a.b"] for d in store.query("lit", order_by="a.b", descending=True)] == [2, 1]


def test_query_rejects_non_scalar_filters_and_bad_limits(store: StateStore) -> None:
    with pytest.raises(TypeError):
        store.query("msgs", where={"x": [1]})
    with pytest.raises(ValueError):
        store.query("msgs", where={"x": float("nan")})
    with pytest.raises(ValueError):
        store.query("msgs", limit=0)
    with pytest.raises(ValueError):
        store.query("msgs", order_by="_expires_at")


def test_query_order_and_limit(store: StateStore) -> None:
    _seed(store)
    assert [d["n"] for d in store.query("msgs", order_by="n")] == [1, 2, 3, 4.5, 5]
    assert [d["n"] for d in store.query("msgs", order_by="n", descending=True)] == [5, 4.5, 3, 2, 1]
    assert [d["n"] for d in store.query("msgs", order_by="n", limit=2)] == [1, 2]
    assert [d["n"] for d in store.query("msgs", order_by="n", descending=True, limit=2)] == [5, 4.5]
    assert [d["n"] for d in store.query("msgs", where={"kind": "sms"}, order_by="n", limit=3)] == [1, 3, 4.5]
    assert len(store.query("msgs", limit=3)) == 3


def test_query_order_by_strings(store: StateStore) -> None:
    for key, name in [("1", "beta"), ("2", "Alpha"), ("3", "alpha"), ("4", "ärger")]:
        store.create("names", key, {"name": name})
    # Byte order of UTF-8, as Firestore compares strings.
    assert [d["name"] for d in store.query("names", order_by="name")] == ["Alpha", "alpha", "beta", "ärger"]


def test_query_order_by_leaves_out_documents_without_the_field(store: StateStore) -> None:
    store.create("partial", "a", {"n": 2})
    store.create("partial", "b", {"other": 1})
    store.create("partial", "c", {"n": 1})
    assert store.query("partial", order_by="n") == [{"n": 1}, {"n": 2}]
    assert len(store.query("partial")) == 3


def test_query_excludes_expired_and_limit_counts_live_documents(store: StateStore, store_clock: FakeClock) -> None:
    # The expired documents sort first, so a backend that applied the limit before
    # dropping expired documents would return too few.
    for n in range(5):
        store.create("mixed", f"old{n}", {"n": n, "kind": "x"}, ttl=10)
    for n in range(10, 14):
        store.create("mixed", f"new{n}", {"n": n, "kind": "x"})
    store.create("mixed", "late", {"n": 20, "kind": "x"}, ttl=100)
    store_clock.advance(50)
    assert [d["n"] for d in store.query("mixed", order_by="n", limit=3)] == [10, 11, 12]
    assert [d["n"] for d in store.query("mixed", where={"kind": "x"}, order_by="n")] == [10, 11, 12, 13, 20]
    assert len(store.query("mixed", limit=2)) == 2
    assert len(store.query("mixed")) == 5
    store_clock.advance(50)
    assert [d["n"] for d in store.query("mixed", order_by="n", descending=True, limit=10)] == [13, 12, 11, 10]


# ---- hit (rate limiting) ---------------------------------------------------------------


def test_hit_trips_at_the_limit_and_does_not_record_refusals(store: StateStore, store_clock: FakeClock) -> None:
    decisions = []
    for _ in range(3):
        decisions.append(store.hit("verify", "+447700900123", limit=3, window=60))
        store_clock.advance(10)
    assert decisions == [RateDecision(True, 1, 0.0), RateDecision(True, 2, 0.0), RateDecision(True, 3, 0.0)]
    # now = t0 + 30: the oldest hit (t0) leaves the window at t0 + 60
    refused = store.hit("verify", "+447700900123", limit=3, window=60)
    assert (refused.allowed, refused.count, refused.retry_after) == (False, 3, pytest.approx(30.0))
    store_clock.advance(29)
    refused = store.hit("verify", "+447700900123", limit=3, window=60)
    assert not refused.allowed and refused.retry_after == pytest.approx(1.0)
    store_clock.advance(1)  # t0 + 60: the refused hits were not recorded, so room again
    assert store.hit("verify", "+447700900123", limit=3, window=60) == RateDecision(True, 3, 0.0)
    stored = store.get("ratelimits", "verify:+447700900123")
    assert stored is not None and len(stored["hits"]) == 3


def test_hit_resets_after_the_window(store: StateStore, store_clock: FakeClock) -> None:
    for _ in range(2):
        assert store.hit("ip", "10.0.0.1", limit=2, window=60).allowed
    assert not store.hit("ip", "10.0.0.1", limit=2, window=60).allowed
    store_clock.advance(60)
    assert store.get("ratelimits", "ip:10.0.0.1") is None  # ttl=window: the document expired too
    assert store.hit("ip", "10.0.0.1", limit=2, window=60) == RateDecision(True, 1, 0.0)


def test_hit_keys_and_buckets_are_independent(store: StateStore) -> None:
    assert store.hit("a", "x", limit=1, window=60).allowed
    assert not store.hit("a", "x", limit=1, window=60).allowed
    assert store.hit("a", "y", limit=1, window=60).allowed
    assert store.hit("b", "x", limit=1, window=60).allowed


def test_hit_with_a_lower_limit_counts_existing_hits(store: StateStore, store_clock: FakeClock) -> None:
    for _ in range(4):
        assert store.hit("p", "k", limit=5, window=100).allowed
        store_clock.advance(10)
    # now = t0 + 40 with hits at t0..t0+30; with limit 2, two must leave: the 3rd (t0+20) at t0+120
    decision = store.hit("p", "k", limit=2, window=100)
    assert (decision.allowed, decision.count, decision.retry_after) == (False, 4, pytest.approx(80.0))


# ---- hit_many (several counters in one transaction) --------------------------------------

FRAUD_LIKE = [RateHit("n", "+447700900123", 2, 60), RateHit("ip", "10.0.0.1", 3, 60), RateHit("c", "GB", 5, 60)]


@pytest.fixture(params=["backend", "default"])
def many_store(request: pytest.FixtureRequest, store: StateStore) -> StateStore:
    """The backend's own hit_many, and base.py's default (one hit() per counter) over the same backend."""
    return store if request.param == "backend" else DelegatingStore(store)


def test_hit_many_counts_every_counter_when_all_allow(many_store: StateStore, store: StateStore) -> None:
    assert many_store.hit_many(FRAUD_LIKE) == [RateDecision(True, 1, 0.0)] * 3
    assert many_store.hit_many(FRAUD_LIKE) == [RateDecision(True, 2, 0.0)] * 3
    # The same counters as hit(): the number counter is full, the others are not.
    assert not store.hit("n", "+447700900123", limit=2, window=60).allowed
    assert store.hit("ip", "10.0.0.1", limit=3, window=60) == RateDecision(True, 3, 0.0)


def test_hit_many_stops_at_the_first_refusal_and_keeps_earlier_hits(
    many_store: StateStore, store: StateStore, store_clock: FakeClock
) -> None:
    for _ in range(3):  # fills the second counter (limit 3)
        assert store.hit("ip", "10.0.0.1", limit=3, window=60).allowed
    store_clock.advance(10)
    decisions = many_store.hit_many(FRAUD_LIKE)
    assert decisions == [RateDecision(True, 1, 0.0), RateDecision(False, 3, pytest.approx(50.0))]
    # The first counter kept its hit, the third was never counted.
    assert store.get("ratelimits", "n:+447700900123")["hits"] == [store_clock()]
    assert store.get("ratelimits", "c:GB") is None


def test_hit_many_counters_expire_with_their_window(many_store: StateStore, store_clock: FakeClock) -> None:
    hits = [RateHit("a", "x", 1, 30), RateHit("b", "x", 1, 90)]
    assert [d.allowed for d in many_store.hit_many(hits)] == [True, True]
    store_clock.advance(31)
    assert [d.allowed for d in many_store.hit_many(hits)] == [True, False]
    store_clock.advance(60)
    assert many_store.hit_many(hits) == [RateDecision(True, 1, 0.0)] * 2


def test_hit_many_rejects_bad_arguments(many_store: StateStore) -> None:
    assert many_store.hit_many([]) == []
    with pytest.raises(ValueError):
        many_store.hit_many([RateHit("a", "x", 0, 60)])
    with pytest.raises(ValueError):
        many_store.hit_many([RateHit("a", "x", 1, 60), RateHit("a", "x", 2, 60)])
    with pytest.raises(TypeError):
        many_store.hit_many([("a", "x", 1, 60)])  # type: ignore[list-item]
    assert many_store.get("ratelimits", "a:x") is None


class Refused(Exception):
    pass


def _budget(key: str, limit: int, *, ttl: float | None = 600) -> Charge:
    """A counting charge like a spend budget: one more ``n`` up to ``limit``, else Refused."""

    def add(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        n = int((doc or {}).get("n", 0))
        if n + 1 > limit:
            raise Refused(key)
        return {**(doc or {}), "n": n + 1}

    def undo(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if doc is None else {**doc, "n": int(doc.get("n", 0)) - 1}

    return Charge("budgets", key, add, undo, ttl=ttl)


def test_hit_many_charges_other_documents_once_every_counter_allows(
    many_store: StateStore, store: StateStore, store_clock: FakeClock
) -> None:
    assert many_store.hit_many(FRAUD_LIKE, then=[_budget("a", 5), _budget("b", 5, ttl=None)]) == [
        RateDecision(True, 1, 0.0)] * 3
    assert store.get("budgets", "a") == {"n": 1} and store.get("budgets", "b") == {"n": 1}
    store_clock.advance(601)  # the charge's ttl applies, as with update()
    assert store.get("budgets", "a") is None and store.get("budgets", "b") == {"n": 1}
    # No counter at all: the charges alone, the same way.
    assert many_store.hit_many([], then=[_budget("b", 5)]) == []
    assert store.get("budgets", "b") == {"n": 2}


def test_hit_many_charges_nothing_when_a_counter_refuses(many_store: StateStore, store: StateStore) -> None:
    hits = [RateHit("n", "1", 5, 60), RateHit("ip", "1", 1, 60)]
    many_store.hit_many(hits, then=[_budget("a", 5)])
    decisions = many_store.hit_many(hits, then=[_budget("a", 5)])
    assert [d.allowed for d in decisions] == [True, False]
    assert store.get("budgets", "a") == {"n": 1}  # only the first, allowed call charged it


def test_a_refused_charge_writes_no_charge_and_keeps_the_counters(many_store: StateStore, store: StateStore) -> None:
    store.update("budgets", "full", lambda doc: {"n": 1})
    with pytest.raises(Refused):
        many_store.hit_many(FRAUD_LIKE, then=[_budget("a", 5), _budget("full", 1), _budget("c", 5)])
    # All or none among the charges: "a", made (or not) before the refusal, is not charged.
    assert store.get("budgets", "a") in (None, {"n": 0})
    assert store.get("budgets", "full") == {"n": 1} and store.get("budgets", "c") is None
    # The counters keep their hits, as they would with one call per step.
    assert store.hit("n", "+447700900123", limit=2, window=60) == RateDecision(True, 2, 0.0)
    with pytest.raises(ValueError):
        many_store.hit_many([RateHit("budgets", "x", 1, 60)], then=[_budget("a", 5), _budget("a", 5)])
    with pytest.raises(TypeError):
        many_store.hit_many([], then=[("budgets", "a")])  # type: ignore[list-item]


def test_update_many_runs_each_update_in_order_and_returns_the_documents(
    many_store: StateStore, store: StateStore, store_clock: FakeClock
) -> None:
    store.create("a", "1", {"n": 1})
    seen: list[Any] = []

    def second(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        seen.append(doc)
        return {"after": list(order)}

    order: list[str] = []

    def first(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        order.clear()
        order.append("first")
        return {**(doc or {}), "n": (doc or {})["n"] + 1}

    after = many_store.update_many([
        Update("a", "1", first), Update("b", "2", second, ttl=60), Update("a", "3", lambda doc: None)])
    assert after == [{"n": 2}, {"after": ["first"]}, None]  # the second fn ran after the first
    assert seen[-1] is None and store.get("a", "1") == {"n": 2}
    store_clock.advance(61)  # ttl as in update()
    assert store.get("b", "2") is None and store.get("a", "1") == {"n": 2}
    assert many_store.update_many([]) == []


def test_update_many_stops_at_an_exception_and_rejects_bad_arguments(many_store: StateStore, store: StateStore) -> None:
    def boom(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        raise Refused("no")

    with pytest.raises(Refused):
        many_store.update_many([Update("a", "1", lambda doc: {"n": 1}), Update("a", "2", boom),
                                Update("a", "3", lambda doc: {"n": 3})])
    assert store.get("a", "3") is None  # nothing after the exception is written
    with pytest.raises(ValueError):
        many_store.update_many([Update("a", "x", lambda doc: {}), Update("a", "x", lambda doc: {})])
    with pytest.raises(TypeError):
        many_store.update_many([("a", "x", lambda doc: {})])  # type: ignore[list-item]


def test_hit_rejects_bad_arguments(store: StateStore) -> None:
    with pytest.raises(ValueError):
        store.hit("a", "x", limit=0, window=60)
    with pytest.raises(ValueError):
        store.hit("a", "x", limit=1, window=0)
