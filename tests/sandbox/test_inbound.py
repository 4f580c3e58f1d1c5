"""Injected inbound messages: SMS API fields (single and multipart), Messages API JSON, signing."""

from __future__ import annotations

import pytest

from shared.vonage.signatures import verify_sms_signature, verify_webhook_jwt
from tests.fixtures.sandbox import APPLICATION_ID, SANDBOX_API_KEY, SANDBOX_SIGNATURE_SECRET
from tests.sandbox._helpers import client

PHONE = "447700900123"
VIRTUAL = "447700900000"
LONG = "Lorem ipsum dolor sit amet " * 12  # 324 GSM-7 characters: three parts


def test_single_sms_inbound_has_the_sms_api_fields(sandbox, webhook_receiver) -> None:
    sent = sandbox.inject_inbound(PHONE, VIRTUAL, "stop sending please")
    fields = webhook_receiver.wait_for(1)[0].fields
    assert fields["messageId"] == sent["message_ids"][0]
    assert fields["msisdn"] == PHONE and fields["to"] == VIRTUAL
    assert fields["text"] == "stop sending please"
    assert fields["type"] == "text"
    assert fields["keyword"] == "STOP"
    assert fields["api-key"] == SANDBOX_API_KEY
    assert len(fields["message-timestamp"]) == 19
    assert "concat" not in fields


def test_unicode_inbound_is_type_unicode(sandbox, webhook_receiver) -> None:
    sandbox.inject_inbound(PHONE, VIRTUAL, "ça va 😀")
    assert webhook_receiver.wait_for(1)[0].fields["type"] == "unicode"


@pytest.mark.parametrize("fmt", ["GET", "POST", "POST-JSON"])
def test_multipart_inbound_arrives_as_signed_parts(sandbox_factory, webhook_receiver, fmt: str) -> None:
    box = sandbox_factory(
        inbound_webhook_url=f"{webhook_receiver.url}/inbound", sms_signing=True, signature_method="sha1"
    )
    sent = box.inject_inbound(PHONE, VIRTUAL, LONG, format=fmt)
    assert sent["parts"] == 3
    parts = webhook_receiver.wait_for(3)
    assert {p.method for p in parts} == {"GET" if fmt == "GET" else "POST"}
    fields = sorted((p.fields for p in parts), key=lambda f: int(f["concat-part"]))
    assert "".join(f["text"] for f in fields) == LONG
    assert [f["messageId"] for f in fields] == sent["message_ids"]
    assert len(set(sent["message_ids"])) == 3
    for index, part in enumerate(fields, start=1):
        assert part["concat"] == "true"
        assert part["concat-ref"] == sent["concat_ref"]
        assert part["concat-total"] == "3"
        assert part["concat-part"] == str(index)
        verify_sms_signature(part, secret=SANDBOX_SIGNATURE_SECRET, method="sha1")


def test_parts_option_splits_into_that_many(sandbox, webhook_receiver) -> None:
    sent = sandbox.inject_inbound(PHONE, VIRTUAL, "abcdef", parts=2)
    parts = webhook_receiver.wait_for(2)
    assert sent["parts"] == 2
    assert sorted(p.fields["text"] for p in parts) == ["abc", "def"]


def test_shuffle_delivers_parts_out_of_order_reproducibly(sandbox_factory, webhook_receiver) -> None:
    orders = []
    for _ in range(2):
        box = sandbox_factory(inbound_webhook_url=f"{webhook_receiver.url}/inbound", seed=7)
        sent = box.inject_inbound(PHONE, VIRTUAL, LONG, shuffle=True)
        parts = webhook_receiver.wait_for(3)
        arrived = [p.fields["concat-part"] for p in parts]
        assert arrived != ["1", "2", "3"]
        assert [p.fields["messageId"] for p in parts] == sent["order"]
        orders.append(arrived)
        webhook_receiver.clear()
    assert orders[0] == orders[1]


def test_duplicate_delivers_each_part_twice(sandbox, webhook_receiver) -> None:
    sent = sandbox.inject_inbound(PHONE, VIRTUAL, LONG, duplicate=True)
    parts = webhook_receiver.wait_for(6)
    ids = [p.fields["messageId"] for p in parts]
    assert sorted(ids) == sorted(sent["message_ids"] * 2)
    assert len(sent["delivery_ids"]) == 6


def test_messages_api_inbound_is_one_signed_json(sandbox, webhook_receiver) -> None:
    sent = sandbox.inject_inbound(PHONE, VIRTUAL, LONG, api="messages")
    hook = webhook_receiver.wait_for(1)[0]
    claims = verify_webhook_jwt(hook.body, hook.headers["authorization"], secret=SANDBOX_SIGNATURE_SECRET)
    assert claims["application_id"] == APPLICATION_ID
    body = hook.json
    assert body["message_uuid"] == sent["message_uuid"]
    assert body["channel"] == "sms" and body["message_type"] == "text"
    assert body["from"] == PHONE and body["to"] == VIRTUAL
    assert body["text"] == LONG
    assert body["sms"]["num_messages"] == "3"
    assert body["timestamp"].endswith("Z")


def test_whatsapp_inbound_through_the_http_endpoint(sandbox, webhook_receiver) -> None:
    with client() as http:
        response = http.post(
            f"{sandbox.url}/_sandbox/inbound",
            json={"from": PHONE, "to": VIRTUAL, "text": "hi", "api": "messages", "channel": "whatsapp"},
        )
    assert response.status_code == 200
    body = webhook_receiver.wait_for(1)[0].json
    assert body["channel"] == "whatsapp" and body["message_uuid"] == response.json()["message_uuid"]
    assert body["profile"]["name"]


def test_bad_injections_are_400(sandbox) -> None:
    with client() as http:
        missing = http.post(f"{sandbox.url}/_sandbox/inbound", json={"from": PHONE, "to": VIRTUAL})
        spec = {"from": PHONE, "to": VIRTUAL, "text": "x", "api": "fax"}
        wrong = http.post(f"{sandbox.url}/_sandbox/inbound", json=spec)
    assert missing.status_code == 400 and "text" in missing.json()["detail"]
    assert wrong.status_code == 400
