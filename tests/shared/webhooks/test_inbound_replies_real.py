"""Inbound replies through the real send path (issue 19).

The unit tests of the inbound flow use ``RecordingSender``, which deduplicates by idempotency
key itself, so "the reply is sent once" there partly proves the fake. Here the reply goes
through ``shared.messages.service.send_text`` (the one send path, with its idempotency keys on
the embedded SQLite store) to the local Vonage sandbox over HTTP, and the count that matters
is what the sandbox received.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from shared.config import Settings
from shared.errors import ServiceError, StoreError
from shared.messages.records import MESSAGES
from shared.store.sqlite import SQLiteStateStore
from shared.vonage.client import VonageClient
from shared.webhooks import inbound as inbound_module
from shared.webhooks.inbound import INBOUND, receive_inbound, service_sender
from tests.fixtures.sandbox import SANDBOX_API_KEY, SANDBOX_API_SECRET
from tests.fixtures.webhooks import FaultyStore, sms_inbound
from tests.shared.webhooks import bots

USER = "+447911123456"  # a number libphonenumber takes as valid (the send path checks it)


@pytest.fixture(autouse=True)
def _clean_bots():
    bots.CALLS.clear()
    inbound_module.load_handler.cache_clear()
    yield
    bots.CALLS.clear()


@pytest.fixture
def real(sandbox_factory, tmp_path):
    """(settings, embedded store, the real reply sender, the sandbox that receives the replies)."""
    sandbox = sandbox_factory()
    settings = Settings(
        signature_secret="s" * 32,
        inbound_handler="tests.shared.webhooks.bots:echo",
        api_key=SANDBOX_API_KEY,
        api_secret=SANDBOX_API_SECRET,
        api_base_url=sandbox.url,
        rest_base_url=sandbox.url,
        vonage_max_retries=0,
    )
    store = SQLiteStateStore(str(tmp_path / "state.sqlite3"))
    client = VonageClient(settings)
    yield settings, store, service_sender(settings, store, lambda: client), sandbox
    client.close()
    store.close()


def _replies(sandbox: Any) -> list[str]:
    return [m.get("text") for m in sandbox.messages() if "+" + m["to"] == USER]


def test_a_redelivered_message_is_answered_once_by_vonage(real):
    settings, store, send, sandbox = real
    params = sms_inbound("hi", msisdn=USER[1:], message_id="RR-1")
    assert receive_inbound(params, settings=settings, store=store, send=send)["result"] == "stored"
    assert receive_inbound(params, settings=settings, store=store, send=send)["result"] == "duplicate"
    assert _replies(sandbox) == ["echo: hi"]
    reply = store.get(INBOUND, "RR-1")["handoff"]["reply_result"]
    assert reply["sent"] is True
    (record,) = store.query(MESSAGES, limit=5)
    assert record["to"] == USER and record["status"] == "submitted"


def test_a_hand_off_that_died_after_sending_does_not_send_again_on_retry(real, monkeypatch):
    # GIVEN the reply went out but marking the hand-off done failed (the webhook answered 503)
    settings, store, real_send, sandbox = real
    attempts: list[dict[str, Any]] = []

    def send(**kwargs: Any) -> Any:
        attempts.append(kwargs)
        return real_send(**kwargs)

    faulty = FaultyStore(store)
    faulty.fail("update", INBOUND, after=2)  # the claim and the decision are written; the "done" write fails
    params = sms_inbound("again", msisdn=USER[1:], message_id="RR-2")
    with pytest.raises(StoreError):
        receive_inbound(params, settings=settings, store=faulty, send=send)
    assert _replies(sandbox) == ["echo: again"]
    # WHEN Vonage retries the webhook once the hand-off lease has passed
    monkeypatch.setattr(inbound_module, "HANDOFF_LEASE", 0.0)
    result = receive_inbound(params, settings=settings, store=store, send=send)
    # THEN the retry asks the send path again, which replays the reply: Vonage got it once
    assert result["result"] in ("stored", "duplicate")
    assert len(attempts) == 2 and attempts[0]["idempotency_key"] == attempts[1]["idempotency_key"]
    assert _replies(sandbox) == ["echo: again"]
    handoff = store.get(INBOUND, "RR-2")["handoff"]
    assert handoff["state"] == "done" and handoff["reply_result"]["sent"] is True
    assert len(store.query(MESSAGES, limit=5)) == 1


def test_twenty_concurrent_copies_make_one_reply_at_vonage(real):
    settings, store, send, sandbox = real
    params = sms_inbound("race", msisdn=USER[1:], message_id="RR-3")
    results: list[str] = []
    errors: list[ServiceError] = []
    barrier = threading.Barrier(20)

    def deliver() -> None:
        barrier.wait()
        try:
            results.append(receive_inbound(params, settings=settings, store=store, send=send)["result"])
        except ServiceError as exc:  # a copy arriving during the live hand-off: 503, Vonage retries it
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results.count("stored") == 1
    assert all(e.status == 503 for e in errors)
    assert _replies(sandbox) == ["echo: race"]
    assert len(store.query(MESSAGES, limit=5)) == 1
