"""Receipts parked in the id index, and the send's two transactions, on every backend.

A receipt for a Vonage id not indexed yet parks in ``message_ids/<id>`` itself; the send's
transaction after the call reads that document, merges what is parked there and writes the
index. Whichever side comes second sees the other. Before the call, one transaction claims the
key, reads the suppression list, charges the budgets and creates the record, all or none.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from shared.config import RateLimit
from shared.errors import NotFoundError, ServiceError
from shared.messages.idempotency import IDEMPOTENCY
from shared.messages.records import MESSAGE_IDS, MESSAGES, PARKED_TTL, StatusEvent, attach_vonage_ids, new_message_record, record_status_event
from shared.messages.service import get_message, send_messages
from shared.messages.suppression import suppress
from shared.budget import BUDGET_COLLECTION
from shared.store import StateStore
from shared.vonage.client import VonageClient
from tests.fixtures.store import DelegatingStore
from tests.shared.messages.test_send_service import sandbox_settings

TO = "+447911123456"


def _record(store: StateStore, message_id: str) -> None:
    store.create(MESSAGES, message_id, new_message_record(message_id, channel="sms", api="sms", to=TO, sender="Acme"))


def _delivered(vonage_id: str) -> StatusEvent:
    return StatusEvent(vonage_id=vonage_id, status="delivered", timestamp="2026-01-30 12:00:09")


def test_a_parked_receipt_expires_but_the_index_the_send_makes_of_it_does_not(store: StateStore, store_clock: Any) -> None:
    assert record_status_event(store, _delivered("VPARK-0001")) == "parked"
    assert record_status_event(store, _delivered("VLOST-0001")) == "parked"
    assert store.get(MESSAGE_IDS, "VPARK-0001") == {"events": [_delivered("VPARK-0001").to_dict()]}
    with pytest.raises(NotFoundError):
        get_message(store, "VPARK-0001")  # parked receipts are no index yet
    _record(store, "msg_park")
    record = attach_vonage_ids(store, "msg_park", [{"vonage_id": "VPARK-0001"}])
    assert record is not None and record["status"] == "delivered"
    store_clock.advance(PARKED_TTL + 60)
    assert store.get(MESSAGE_IDS, "VLOST-0001") is None  # nobody sent it: gone with its receipt
    assert store.get(MESSAGE_IDS, "VPARK-0001")["message_id"] == "msg_park"  # type: ignore[index]
    assert get_message(store, "VPARK-0001")["status"] == "delivered"
    # A later receipt finds the message; the merged one is a duplicate.
    assert record_status_event(store, _delivered("VPARK-0001")) == "duplicate"
    assert record_status_event(store, StatusEvent(vonage_id="VPARK-0001", status="read", timestamp="t")) == "applied"


class _StaleIndexRead(DelegatingStore):
    """The receipt's first look at the index misses the send that indexes it a moment later."""

    def __init__(self, inner: StateStore, on_miss: Any) -> None:
        super().__init__(inner)
        self.on_miss = on_miss

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        if collection == MESSAGE_IDS and self.on_miss is not None:
            on_miss, self.on_miss = self.on_miss, None
            on_miss()  # the send's transaction commits between the receipt's read and its park
            return None
        return super().get(collection, key)


def test_a_receipt_whose_park_finds_the_message_id_applies_itself(store: StateStore) -> None:
    _record(store, "msg_race")
    racing = _StaleIndexRead(store, lambda: attach_vonage_ids(store, "msg_race", [{"vonage_id": "V-RACE"}]))
    assert record_status_event(racing, _delivered("V-RACE")) == "applied"
    assert store.get(MESSAGES, "msg_race")["status"] == "delivered"  # type: ignore[index]
    assert store.get(MESSAGE_IDS, "V-RACE") == {"message_id": "msg_race"}  # nothing parked there


def test_a_receipt_racing_the_send_is_merged_by_one_side_every_time(store: StateStore) -> None:
    # Both sides read and write the one index document in a transaction: PostgreSQL re-runs the
    # side whose new row violates the key, Firestore's transactional read of a missing document
    # conflicts with the other's write, SQLite has one writer. Whatever the order, no receipt is lost.
    for round_ in range(12):
        message_id, vonage_id = f"msg_r{round_}", f"V-R{round_}"
        _record(store, message_id)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(work: Any) -> None:
            barrier.wait(timeout=30)
            try:
                work()
            except BaseException as exc:  # asserted below
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=(lambda: attach_vonage_ids(store, message_id, [{"vonage_id": vonage_id}]),)),
            threading.Thread(target=run, args=(lambda: record_status_event(store, _delivered(vonage_id)),)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors and not any(t.is_alive() for t in threads), errors
        record = store.get(MESSAGES, message_id)
        assert record is not None and record["status"] == "delivered", (round_, record)
        assert [e["status"] for e in record["history"]].count("delivered") == 1, record["history"]
        assert store.get(MESSAGE_IDS, vonage_id)["message_id"] == message_id  # type: ignore[index]


# ---- the transaction before the call -----------------------------------------------------------


class _NoTransactions(DelegatingStore):
    """A store without a multi-document transaction: the send's writes are one update each."""


def _charged(store: StateStore) -> list[Any]:
    return sorted(str(doc) for doc in store.query(BUDGET_COLLECTION, limit=100))


@pytest.mark.parametrize("cause", ["opted_out", "budget_exhausted"])
def test_a_refused_send_leaves_no_key_and_no_charge_on_any_store(sandbox_factory: Any, store: StateStore, cause: str,
                                                                  store_clock: Any) -> None:
    sandbox = sandbox_factory()
    budget = RateLimit(1, 86400) if cause == "budget_exhausted" else RateLimit(100, 86400)
    settings = sandbox_settings(sandbox, send_budget_per_token=RateLimit(100, 86400), send_budget_global=budget)
    if cause == "opted_out":
        suppress(store, TO, keyword="STOP")
    for target in (store, _NoTransactions(store)):
        store_clock.advance(86400)  # a fresh budget window for each
        with VonageClient(settings) as client:
            if cause == "budget_exhausted":  # use up the deployment's budget of one message first
                send_messages({"to": "+447911123457", "text": "first", "api": "sms"}, idempotency_key=None,
                              settings=settings, store=target, vonage=client, clock=store_clock)
            before = _charged(store)
            with pytest.raises(ServiceError) as info:
                send_messages({"to": TO, "text": "hello", "api": "sms"}, idempotency_key=f"k-{target.name}",
                              settings=settings, store=target, vonage=client, clock=store_clock)
        assert info.value.code == cause
        assert store.query(IDEMPOTENCY, limit=10) == [], target.name  # neither the request's key nor the recipient's
        assert _charged(store) == before, target.name  # no budget charged
        assert not [m for m in store.query(MESSAGES, limit=100) if m["to"] == TO], target.name  # no record
    assert [m["to"] for m in sandbox.messages()] == (["447911123457"] * 2 if cause == "budget_exhausted" else [])
