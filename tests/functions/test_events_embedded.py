"""The local run's bus, end to end: the sandbox texts our signed inbound webhook, which answers
at once (``dispatched``); the on_inbound consumer on the embedded bus sends the bot's reply,
exactly once, also when the sandbox delivers the webhook twice or the bus publish fails."""

from __future__ import annotations

import functools

import pytest

from shared import deps
from shared.events.base import INBOUND as INBOUND_EVENT
from shared.events.base import EventBus
from shared.webhooks.dedupe import EVENTS
from shared.webhooks.inbound import INBOUND
from tests.fixtures.sandbox import SANDBOX_API_KEY, SANDBOX_API_SECRET, SANDBOX_SIGNATURE_SECRET

USER = "+447911123456"
OURS = "447700900000"


@pytest.fixture
def loop(webhook_env, webhook_server, sandbox_factory, store, monkeypatch):
    sandbox = sandbox_factory(
        inbound_webhook_url=f"{webhook_server.url}/inbound",
        status_webhook_url=f"{webhook_server.url}/status",
        sms_signing=True,
        signature_method="sha256",
    )
    webhook_env.set(
        VONAGE_API_KEY=SANDBOX_API_KEY,
        VONAGE_API_SECRET=SANDBOX_API_SECRET,
        VONAGE_SIGNATURE_SECRET=SANDBOX_SIGNATURE_SECRET,
        VONAGE_SIGNATURE_METHOD="sha256",
        VONAGE_API_BASE_URL=sandbox.url,
        VONAGE_REST_BASE_URL=sandbox.url,
        INBOUND_HANDLER="examples.echo_bot:handle",
        EVENTS_BACKEND="embedded",
        INBOUND_DISPATCH="bus",
    )
    monkeypatch.setattr(deps, "get_store", _Fixed(store))  # the consumer's store is the webhook's
    return sandbox


class _Fixed:
    """``deps.get_store`` returning the test's store; ``deps.reset`` leaves it open (the fixture owns it)."""

    def __init__(self, store) -> None:
        self.store = store

    def __call__(self):
        return self.store

    def cache_info(self):
        return functools._CacheInfo(0, 0, None, 0)

    def cache_clear(self) -> None:
        pass


def _replies(sandbox) -> list[str]:
    return [entry.get("text") for entry in sandbox.inbox(USER)]


def _settle(sandbox) -> None:
    bus = deps.get_bus()
    assert bus is not None and bus.drain(30)
    assert sandbox.wait_idle(10)


def test_the_webhook_dispatches_and_the_consumer_replies_once(loop, store):
    sent = loop.inject_inbound(USER, OURS, "hello bus", duplicate=True)
    assert loop.wait_idle(10)
    _settle(loop)
    [message_id] = sent["message_ids"]
    record = store.get(INBOUND, message_id)
    assert record["handoff"]["state"] == "done" and record["handoff"]["reply_result"]["sent"] is True
    assert _replies(loop) == ["You said: hello bus"]
    doc = store.get(EVENTS, f"in:sms:{message_id}")
    assert doc["outbox_state"] == "published" and doc["outbox"][0]["type"] == INBOUND_EVENT
    deliveries = loop.deliveries(kind="sms-inbound")
    assert all(a["status"] == 200 for d in deliveries for a in d["attempts"])


def test_a_failed_publish_makes_the_sandbox_retry_and_the_reply_goes_out_once(loop, store, monkeypatch):
    bus = deps.get_bus()
    real_publish = bus._publish
    calls = {"n": 0}

    def flaky(envelope):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("bus down")
        real_publish(envelope)

    monkeypatch.setattr(bus, "_publish", flaky)
    sent = loop.inject_inbound(USER, OURS, "after the outage")
    assert loop.wait_idle(30)
    _settle(loop)
    [delivery] = loop.deliveries(kind="sms-inbound")
    assert [a["status"] for a in delivery["attempts"]] == [503, 200]
    assert _replies(loop) == ["You said: after the outage"]
    assert store.get(EVENTS, f"in:sms:{sent['message_ids'][0]}")["outbox_state"] == "published"
    assert isinstance(bus, EventBus)
