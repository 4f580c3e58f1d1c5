"""Replies to interactive messages (issue 16, 20): a WhatsApp reply button or list row, an RCS
suggestion, a template button. The sandbox's phone answers what we sent; the inbound function
stores what was chosen, tied to the message it answers."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.messages.service import send_messages
from shared.vonage.client import VonageClient
from shared.webhooks.formats import parse_messages_inbound
from shared.webhooks.inbound import INBOUND
from tests.fixtures.sandbox import APPLICATION_ID, SANDBOX_API_KEY, SANDBOX_API_SECRET, SANDBOX_SIGNATURE_SECRET

USER = "+447911123456"
OURS = "447700900000"
LIST = {
    "type": "list",
    "body": {"text": "Pick a time"},
    "action": {"button": "Times", "sections": [{"rows": [
        {"id": "row1", "title": "9am", "description": "Select 9am appointment time"},
        {"id": "row2", "title": "2pm"}]}]},
}
BUTTONS = {"type": "button", "body": {"text": "Confirm?"},
           "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]}}


@pytest.fixture
def loop(webhook_env, webhook_server, sandbox_factory, rsa_private_pem, store):
    """Our send path, inbound and status functions and a sandbox wired to each other."""
    sandbox = sandbox_factory(
        application_id=APPLICATION_ID,
        private_key=rsa_private_pem,
        inbound_webhook_url=f"{webhook_server.url}/inbound",
        status_webhook_url=f"{webhook_server.url}/status",
    )
    webhook_env.set(
        VONAGE_API_KEY=SANDBOX_API_KEY,
        VONAGE_API_SECRET=SANDBOX_API_SECRET,
        VONAGE_SIGNATURE_SECRET=SANDBOX_SIGNATURE_SECRET,
        VONAGE_API_BASE_URL=sandbox.url,
        VONAGE_REST_BASE_URL=sandbox.url,
        VONAGE_APPLICATION_ID=APPLICATION_ID,
        VONAGE_PRIVATE_KEY=rsa_private_pem,
        VONAGE_BRAND_NUMBER=OURS,
        SEND_WHATSAPP_WINDOW_CHECK="false",
    )

    def send(body):
        settings = Settings.from_env()
        with VonageClient(settings) as vonage:
            outcome = send_messages(body, idempotency_key=None, settings=settings, store=store, vonage=vonage)
        assert outcome.status == 202, outcome.body
        assert sandbox.wait_idle(10)
        return outcome.body

    return sandbox, send


@pytest.mark.parametrize(
    ("interactive", "choice", "expected"),
    [
        (LIST, "row1", {"kind": "list_reply", "id": "row1", "title": "9am", "description": "Select 9am appointment time"}),
        (BUTTONS, "yes", {"kind": "button_reply", "id": "yes", "title": "Yes"}),
    ],
)
def test_a_whatsapp_choice_is_stored_with_the_message_it_answers(loop, store, interactive, choice, expected):
    sandbox, send = loop
    sent = send({"to": USER, "channel": "whatsapp", "interactive": interactive})
    answered = sandbox.answer(sent["message_uuid"], choice)
    assert sandbox.wait_idle(10)
    record = store.get(INBOUND, answered["message_uuid"])
    assert record["message_type"] == "reply"
    assert record["text"] == expected["title"]
    assert record["details"]["choice"] == {**expected, "in_reply_to": sent["message_uuid"], "message_id": sent["id"]}


def test_an_rcs_suggestion_tap_is_stored_with_its_postback_data(loop, store):
    sandbox, send = loop
    sent = send({"to": USER, "channel": "rcs", "from": "acmeagent", "text": "Table for two?",
                 "suggestions": [{"type": "reply", "text": "Book it", "postback_data": "book-2"}]})
    answered = sandbox.answer(sent["message_uuid"], "book-2")
    assert sandbox.wait_idle(10)
    record = store.get(INBOUND, answered["message_uuid"])
    # RCS names no message answered (no context): the postback_data identifies the choice.
    assert record["details"]["choice"] == {"kind": "suggestion", "id": "book-2", "title": "Book it"}
    assert record["text"] == "Book it" and record["channel"] == "rcs"


def test_a_template_quick_reply_button_is_a_button_choice():
    event = parse_messages_inbound({
        "channel": "whatsapp", "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "to": OURS, "from": "447911123456",
        "timestamp": "2026-01-30T12:00:00Z", "message_type": "button",
        "button": {"payload": "STOP-PROMOS", "text": "Stop promotions", "subtype": "quick_reply"},
        "context": {"message_uuid": "11111111-bbbb-4ccc-8ddd-0123456789ab", "message_from": OURS},
    })
    assert event.text == "Stop promotions"
    assert event.details["choice"] == {"kind": "button", "payload": "STOP-PROMOS", "text": "Stop promotions",
                                       "subtype": "quick_reply", "id": "STOP-PROMOS", "title": "Stop promotions",
                                       "in_reply_to": "11111111-bbbb-4ccc-8ddd-0123456789ab"}


def test_a_reply_to_a_message_we_do_not_know_keeps_the_choice_without_a_link():
    event = parse_messages_inbound({
        "channel": "whatsapp", "message_uuid": "52afe398-e31a-4362-8c42-beb0c3b1d098", "to": OURS, "from": "447700900001",
        "timestamp": "2020-01-01T14:00:00.000Z", "context_status": "available",
        "context": {"message_uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab", "message_from": OURS},
        "message_type": "reply", "reply": {"id": "row1", "title": "9am", "description": "Select 9am appointment time"},
    })
    assert event.details["choice"] == {"kind": "reply", "id": "row1", "title": "9am",
                                       "description": "Select 9am appointment time",
                                       "in_reply_to": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"}
