"""Failover and the WhatsApp 24-hour window (issue 20), end to end: our send path, a running
sandbox (the Messages API, its phones and its signed status webhooks) and our inbound and status
functions over real HTTP, on one store. Time comes from a FakeClock wherever the window matters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.config import Settings
from shared.messages.failover import WINDOW_SECONDS
from shared.messages.records import MESSAGES
from shared.messages.service import get_message, send_messages
from shared.messages.suppression import suppress
from shared.vonage.client import VonageClient
from shared.webhooks.clock import iso_time
from shared.webhooks.inbound import receive_inbound
from tests.fixtures.sandbox import APPLICATION_ID, SANDBOX_API_KEY, SANDBOX_API_SECRET, SANDBOX_SIGNATURE_SECRET
from tests.fixtures.store import FakeClock
from tests.functions.test_send_rich import sdk_dump

USER = "+447911123456"
WIRE_USER = "447911123456"
OURS = "447700900000"
TEMPLATE = {"name": "table_ready", "parameters": ["Ann"], "locale": "en_GB"}
RECIPE = {  # the docs' WhatsApp-then-SMS recipe
    "to": USER,
    "channel": "whatsapp",
    "template": TEMPLATE,
    "failover": [{"channel": "sms", "text": "Ann, your table is ready"}],
    "client_ref": "table-17",
}


class Loop:
    def __init__(self, sandbox: Any, store: Any, webhook_env: Any) -> None:
        self.sandbox = sandbox
        self.store = store
        self.env = webhook_env
        self.clock = FakeClock()

    def send(self, body: dict[str, Any], *, key: str | None = None, expect: int = 202) -> dict[str, Any]:
        settings = Settings.from_env()
        with VonageClient(settings) as vonage:
            try:
                outcome = send_messages(body, idempotency_key=key, settings=settings, store=self.store, vonage=vonage,
                                        clock=self.clock)
            except Exception as exc:  # a ServiceError: the HTTP answer would be its status
                status = getattr(exc, "status", 500)
                assert status == expect, exc
                return exc.to_dict() if hasattr(exc, "to_dict") else {"error": {"code": exc.code}}  # type: ignore[attr-defined]
        assert outcome.status == expect, outcome.body
        assert self.sandbox.wait_idle(10)
        return outcome.body

    def wrote_on_whatsapp(self, seconds_ago: float) -> None:
        """The person sent us a WhatsApp message ``seconds_ago`` before the clock's now."""
        at = self.clock() - seconds_ago
        fields = {"channel": "whatsapp", "message_uuid": f"aaaaaaaa-bbbb-4ccc-8ddd-{int(at) % 10**12:012d}",
                  "to": OURS, "from": WIRE_USER, "timestamp": iso_time(at), "message_type": "text", "text": "hi"}
        receive_inbound(fields, settings=Settings.from_env(), store=self.store, clock=lambda: at)

    def requests(self) -> list[dict[str, Any]]:
        return self.sandbox.requests(api="messages")


@pytest.fixture
def loop(webhook_env, webhook_server, sandbox_factory, rsa_private_pem, store):
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
        VONAGE_MAX_RETRIES="0",
    )
    return Loop(sandbox, store, webhook_env)


# ---- failover ------------------------------------------------------------------------------


def test_whatsapp_then_sms_one_request_first_rejected_second_delivered_one_charge(loop):
    loop.sandbox.configure(no_whatsapp=[WIRE_USER])
    before = Decimal(loop.sandbox.balance)
    answer = loop.send(RECIPE)

    [request] = loop.requests()
    body = request["fields"]
    assert body == {
        "channel": "whatsapp", "message_type": "template", "to": WIRE_USER, "from": OURS,
        "template": {"name": "table_ready", "parameters": ["Ann"]}, "whatsapp": {"locale": "en_GB"},
        "client_ref": "table-17",
        "failover": [{"channel": "sms", "message_type": "text", "to": WIRE_USER, "from": OURS,
                      "text": "Ann, your table is ready", "client_ref": "table-17"}],
    }
    # Each object is what the official SDK's model serialises (its send() puts them the same way).
    assert sdk_dump({k: v for k, v in body.items() if k != "failover"}) == {k: v for k, v in body.items() if k != "failover"}
    assert sdk_dump(body["failover"][0]) == body["failover"][0]

    assert answer["workflow_id"] and answer["status"] == "submitted"
    assert [(i["channel"], i["message_type"]) for i in answer["items"]] == [("whatsapp", "template"), ("sms", "text")]
    assert answer["items"][1]["encoding"] == "GSM-7" and answer["items"][1]["segments"] == 1

    record = loop.store.get(MESSAGES, answer["id"])
    assert record["workflow_id"] == answer["workflow_id"]
    assert record["status"] == "delivered" and record["delivered_item"] == 2
    first, second = record["items"]
    assert first["status"] == "rejected" and first["error"]["code"] == "1300"
    assert [h["status"] for h in first["history"]] == ["submitted", "rejected"]
    assert second["status"] == "delivered" and [h["status"] for h in second["history"]] == ["submitted", "delivered"]
    assert {h.get("item") for h in record["history"] if h.get("item")} == {1, 2}
    # One charge: the SMS that went out; the rejected WhatsApp message cost nothing.
    assert before - Decimal(loop.sandbox.balance) == Decimal("0.0333")
    assert [e["channel"] for e in loop.sandbox.inbox(WIRE_USER)] == ["sms"]
    # The record is found by the SMS item's own message_uuid too.
    sms_uuid = second["vonage_id"]
    assert sms_uuid != answer["message_uuid"]
    assert get_message(loop.store, sms_uuid)["id"] == answer["id"]


def test_when_whatsapp_arrives_the_sms_is_never_tried_nor_paid(loop):
    before = Decimal(loop.sandbox.balance)
    answer = loop.send(RECIPE)
    record = loop.store.get(MESSAGES, answer["id"])
    assert record["status"] == "read" and record["delivered_item"] == 1
    assert record["items"][0]["status"] == "read" and record["items"][1]["status"] == "pending"
    assert before - Decimal(loop.sandbox.balance) == Decimal("0.01")


def test_every_item_rejected_fails_the_message_with_the_last_error_and_costs_nothing(loop):
    loop.sandbox.configure(trial=True, allow_list=[])
    before = loop.sandbox.balance
    answer = loop.send(RECIPE)
    record = loop.store.get(MESSAGES, answer["id"])
    assert record["status"] == "rejected" and record["delivered_item"] is None
    assert record["error"]["code"] == "1160"
    assert [item["status"] for item in record["items"]] == ["rejected", "rejected"]
    assert loop.sandbox.balance == before


def test_an_opted_out_number_gets_no_item_of_the_workflow(loop):
    suppress(loop.store, USER, keyword="STOP")  # opted out by an SMS STOP
    error = loop.send(RECIPE, expect=422)
    assert error["error"]["code"] == "opted_out"
    assert loop.requests() == []


def test_the_idempotency_key_covers_the_whole_workflow(loop):
    loop.sandbox.configure(no_whatsapp=[WIRE_USER])
    first = loop.send(RECIPE, key="order-17")
    again = loop.send(RECIPE, key="order-17")
    assert again["replayed"] is True and again["workflow_id"] == first["workflow_id"]
    other = {**RECIPE, "failover": [{"channel": "sms", "text": "another text"}]}
    error = loop.send(other, key="order-17", expect=422)
    assert error["error"]["code"] == "idempotency_key_reused"
    assert len(loop.requests()) == 1


def test_bulk_sends_take_the_same_list_and_each_recipient_fails_over_on_its_own(loop):
    loop.sandbox.configure(no_whatsapp=["447911123457"])
    answer = loop.send({**RECIPE, "to": [USER, "+447911123457"]})
    assert answer["summary"]["sent"] == 2
    records = [loop.store.get(MESSAGES, r["id"]) for r in answer["results"]]
    assert [r["delivered_item"] for r in records] == [1, 2]
    assert all(r["workflow_id"] for r in answer["results"])
    assert len(loop.requests()) == 2 and all("failover" in r["fields"] for r in loop.requests())


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({**RECIPE, "failover": [{"channel": "sms", "text": "✓" * 71 * 7}]}, "failover[0].text", "too_many_segments"),
        ({**RECIPE, "api": "sms"}, "api", "invalid_api"),
        ({**RECIPE, "failover": [{"channel": "messenger", "text": "x"}]}, "failover", "unsupported_content"),
        ({**RECIPE, "failover": [{"text": "x"}]}, "failover[0].channel", "missing_field"),
        ({**RECIPE, "failover": [{"channel": "sms", "text": "x", "color": "red"}]}, "failover[0].color", "unknown_field"),
        ({**RECIPE, "failover": [{"channel": "sms", "image": {"url": "https://example.com/a.jpg"}}]},
         "failover[0].image", "unsupported_content"),
        ({**RECIPE, "failover": [{"channel": "sms", "text": "x"}] * 5}, "failover", "invalid_field"),
        ({**RECIPE, "failover": []}, "failover", "invalid_field"),
    ],
)
def test_a_bad_failover_list_is_a_422_naming_the_item_and_nothing_is_sent(loop, body, field, code):
    error = loop.send(body, expect=422)
    assert (error["error"]["code"], error["error"]["details"]["field"]) == (code, field)
    assert loop.requests() == []


# ---- the WhatsApp window and channel preference ----------------------------------------------

PREFERENCE = {"to": USER, "channels": ["whatsapp", "sms"], "text": "Your table is ready", "template": TEMPLATE,
              "from": {"sms": "Acme"}}


@pytest.mark.parametrize(
    ("seconds_ago", "whatsapp_type"),
    [(WINDOW_SECONDS - 1, "text"), (WINDOW_SECONDS, "template"), (WINDOW_SECONDS + 1, "template"), (None, "template")],
)
def test_channels_use_free_form_whatsapp_only_inside_the_24_hour_window(loop, seconds_ago, whatsapp_type):
    if seconds_ago is not None:
        loop.wrote_on_whatsapp(seconds_ago)
    answer = loop.send(PREFERENCE)
    [request] = loop.requests()
    body = request["fields"]
    assert body["channel"] == "whatsapp" and body["message_type"] == whatsapp_type
    assert body["failover"] == [{"channel": "sms", "message_type": "text", "to": WIRE_USER, "from": "Acme",
                                 "text": "Your table is ready"}]
    assert [i["message_type"] for i in answer["items"]] == [whatsapp_type, "text"]
    assert ("skipped_items" in answer) == (whatsapp_type == "template")


def test_free_form_whatsapp_outside_the_window_with_no_template_nor_next_channel_is_a_422_before_vonage(loop):
    loop.wrote_on_whatsapp(WINDOW_SECONDS)  # exactly 24 h ago: closed
    for body in ({"to": USER, "channels": ["whatsapp"], "text": "hi"}, {"to": USER, "channel": "whatsapp", "text": "hi"}):
        error = loop.send(body, expect=422)
        assert error["error"]["code"] == "whatsapp_window_closed"
    assert loop.requests() == []
    loop.clock.advance(-1)  # one second earlier it was open
    assert loop.send({"to": USER, "channel": "whatsapp", "text": "hi"})["status"] == "submitted"


def test_outside_the_window_free_form_whatsapp_gives_way_to_the_next_channel(loop):
    for body in ({"to": USER, "channels": ["whatsapp", "sms"], "text": "hi"},
                 {"to": USER, "channel": "whatsapp", "text": "hi", "failover": [{"channel": "sms", "text": "hi"}]}):
        answer = loop.send(body)
        assert [i["channel"] for i in answer["items"]] == ["sms"]
        assert answer["skipped_items"] == [{"channel": "whatsapp", "message_type": "text", "reason": "whatsapp_window_closed"}]
    assert [r["fields"]["channel"] for r in loop.requests()] == ["sms", "sms"]
    assert all("failover" not in r["fields"] for r in loop.requests())
    # One item is a plain message: no workflow, and its status is the message's.
    record = loop.store.get(MESSAGES, answer["id"])
    assert "items" not in record and record["status"] == "delivered"


def test_a_whatsapp_message_from_another_number_opens_no_window(loop):
    other = {"channel": "whatsapp", "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-000000000009", "to": OURS,
             "from": "447911123457", "timestamp": iso_time(loop.clock()), "message_type": "text", "text": "hi"}
    receive_inbound(other, settings=Settings.from_env(), store=loop.store, clock=loop.clock)
    assert loop.send({"to": USER, "channel": "whatsapp", "text": "hi"}, expect=422)["error"]["code"] == "whatsapp_window_closed"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"to": USER, "channels": ["sms", "mms"], "template": TEMPLATE}, "template", "invalid_field"),
        ({"to": USER, "channels": ["whatsapp", "sms"], "location": {"lat": 1, "long": 2}}, "channels", "unsupported_content"),
        ({"to": USER, "channels": ["whatsapp", "whatsapp"], "text": "x"}, "channels", "invalid_field"),
        ({"to": USER, "channels": ["whatsapp"], "channel": "sms", "text": "x"}, "channels", "invalid_field"),
        ({"to": USER, "channels": ["whatsapp", "sms"], "text": "x", "ttl": 600}, "ttl", "invalid_field"),
        ({"to": USER, "channels": ["whatsapp", "sms"], "text": "x", "from": {"fax": "1"}}, "from.fax", "invalid_field"),
    ],
)
def test_a_bad_channel_preference_is_a_422(loop, body, field, code):
    error = loop.send(body, expect=422)
    assert (error["error"]["code"], error["error"]["details"]["field"]) == (code, field)
    assert loop.requests() == []


def test_a_dry_run_shows_each_recipients_items_without_sending(loop):
    loop.wrote_on_whatsapp(60)
    report = loop.send({**PREFERENCE, "to": [USER, "+447911123457"], "dry_run": True}, expect=200)
    first, second = report["results"]
    assert [i["message_type"] for i in first["items"]] == ["text", "text"]  # inside the window
    assert [i["message_type"] for i in second["items"]] == ["template", "text"]
    assert second["skipped_items"][0]["reason"] == "whatsapp_window_closed"
    alone = loop.send({"to": "+447911123457", "channels": ["whatsapp"], "text": "hi", "dry_run": True}, expect=200)
    assert alone["status"] == "failed" and alone["error"]["code"] == "whatsapp_window_closed"
    assert loop.requests() == []
