"""End to end with the local Vonage sandbox: it texts our inbound URL (signed, in every format,
long messages in pieces, out of order, twice), our functions store, reassemble, honour STOP and
reply through the real send path, and the sandbox's signed receipts come back to the status URL.
"""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.messages.records import MESSAGES
from shared.messages.service import send_text
from shared.messages.suppression import is_suppressed
from shared.vonage.client import VonageClient
from shared.webhooks.inbound import INBOUND
from tests.fixtures.sandbox import APPLICATION_ID, SANDBOX_API_KEY, SANDBOX_API_SECRET, SANDBOX_SIGNATURE_SECRET
from tests.fixtures.webhooks import FaultyStore

USER = "+447911123456"  # a number libphonenumber accepts (the send path validates it)
OURS = "447700900000"


@pytest.fixture
def loop(webhook_env, webhook_server, sandbox_factory, rsa_private_pem):
    """Our inbound/status functions and a sandbox wired to each other; returns a helper."""

    class Loop:
        def __init__(self) -> None:
            self.sandbox = sandbox_factory(
                application_id=APPLICATION_ID,
                private_key=rsa_private_pem,
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
                VONAGE_API_BASE_URL=self.sandbox.url,
                VONAGE_REST_BASE_URL=self.sandbox.url,
                INBOUND_HANDLER="examples.echo_bot:handle",
            )

        def use_application(self) -> None:
            """Replies through the Messages API (needed for WhatsApp); without it SMS goes by the SMS API."""
            webhook_env.set(VONAGE_APPLICATION_ID=APPLICATION_ID, VONAGE_PRIVATE_KEY=rsa_private_pem)

        def text_us(self, text: str, **kwargs):
            sent = self.sandbox.inject_inbound(USER, OURS, text, **kwargs)
            assert self.sandbox.wait_idle(10)
            return sent

        def received_by_user(self) -> list[str]:
            return [entry.get("text") for entry in self.sandbox.inbox(USER)]

    return Loop()


@pytest.mark.parametrize("fmt", ["GET", "POST", "POST-JSON"])
def test_a_signed_sms_is_stored_echoed_and_its_reply_receipt_recorded(loop, store, fmt):
    sent = loop.text_us("hello bot", format=fmt)
    [message_id] = sent["message_ids"]
    record = store.get(INBOUND, message_id)
    assert record["text"] == "hello bot" and record["from"] == USER
    assert record["handoff"]["reply_result"]["sent"] is True
    assert loop.received_by_user() == ["You said: hello bot"]
    # The sandbox's signed delivery receipt for the reply reached the status function.
    reply = store.get(MESSAGES, record["handoff"]["reply_result"]["id"])
    assert reply["status"] == "delivered"
    deliveries = loop.sandbox.deliveries()
    assert {d["kind"] for d in deliveries} == {"sms-inbound", "sms-dlr"}
    assert all(d["attempts"][-1]["status"] == 200 for d in deliveries)


def test_a_long_sms_in_shuffled_duplicated_parts_is_stored_once_and_answered_once(loop, store):
    text = "This message is long enough to be split by the sandbox into several parts. " * 3
    sent = loop.text_us(text, parts=3, shuffle=True, duplicate=True)
    assert sent["parts"] == 3 and len(sent["delivery_ids"]) == 6
    records = store.query(INBOUND)
    assert len(records) == 1
    assert records[0]["text"] == text and records[0]["vonage_ids"] == sent["message_ids"]
    assert len(loop.received_by_user()) == 1


def test_stop_then_send_is_refused_start_then_allowed(loop, store):
    loop.text_us("STOP")
    assert is_suppressed(store, USER)
    assert loop.received_by_user() == [Settings().optout_reply]  # the confirmation still went out
    settings = Settings.from_env()
    with VonageClient(settings) as vonage:
        refused = send_text(to=USER, text="promo", sender=OURS, idempotency_key="promo-1",
                            settings=settings, store=store, vonage=vonage)
        assert refused["status"] == "opted_out"
        loop.text_us("START")
        assert not is_suppressed(store, USER)
        allowed = send_text(to=USER, text="promo", sender=OURS, idempotency_key="promo-2",
                            settings=settings, store=store, vonage=vonage)
        assert allowed["status"] == "submitted"
    assert loop.received_by_user()[:2] == ["promo", Settings().optin_reply]


def test_help_gets_the_help_text(loop):
    loop.text_us("help")
    assert loop.received_by_user() == [Settings().help_reply]


def test_messages_api_whatsapp_inbound_is_echoed_on_whatsapp(loop, store):
    loop.use_application()
    sent = loop.text_us("hi on whatsapp", channel="whatsapp", api="messages")
    record = store.get(INBOUND, sent["message_uuid"])
    assert record["channel"] == "whatsapp" and record["handoff"]["reply_result"]["sent"] is True
    [outbound] = loop.sandbox.messages(api="messages")
    assert outbound["fields"]["channel"] == "whatsapp" and outbound["fields"]["text"] == "You said: hi on whatsapp"
    reply = store.get(MESSAGES, record["handoff"]["reply_result"]["id"])
    # The sandbox's JWT-signed status webhooks (submitted, delivered, read) were all recorded.
    assert reply["status"] == "read"
    assert [e["status"] for e in reply["history"] if e.get("vonage_id")] == ["submitted", "delivered", "read"]


def test_a_store_outage_makes_the_sandbox_retry_and_nothing_is_lost(loop, store, monkeypatch):
    import functions.inbound

    faulty = FaultyStore(store)
    faulty.fail("create", INBOUND, times=2)  # the first two attempts fail once the event was seen
    monkeypatch.setattr(functions.inbound, "get_store", lambda: faulty)
    sent = loop.text_us("survive the outage")
    [delivery] = loop.sandbox.deliveries(kind="sms-inbound")
    assert [a["status"] for a in delivery["attempts"]] == [503, 503, 200]
    assert store.get(INBOUND, sent["message_ids"][0])["text"] == "survive the outage"
    assert loop.received_by_user() == ["You said: survive the outage"]
