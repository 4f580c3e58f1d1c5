"""The sandbox takes every message type the Messages API has, and refuses a malformed one as Vonage does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox._helpers import TO, post_json

SENDER = "447700900000"
CONTEXT = {"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"}
CARD = {"title": "T", "text": "Body", "media_url": "https://example.com/p.jpg"}


def message(channel: str, message_type: str, **fields: Any) -> dict[str, Any]:
    return {"channel": channel, "message_type": message_type, "to": TO, "from": SENDER, **fields}


@pytest.mark.parametrize(
    "body",
    [
        message("whatsapp", "location", location={"lat": 40.34772, "long": -74.18847, "name": "Vonage"}),
        message("whatsapp", "sticker", sticker={"url": "https://example.com/s.webp"}),
        message("whatsapp", "reaction", reaction={"action": "react", "emoji": "😀"}, context=CONTEXT),
        message("whatsapp", "custom", custom={"type": "interactive", "interactive": {"type": "button"}}),
        message("mms", "vcard", vcard={"url": "https://example.com/c.vcf"}),
        message("viber_service", "video", video={"url": "https://example.com/v.mp4", "thumb_url": "https://example.com/t.jpg"},
                viber_service={"duration": "123", "file_size": "1"}),
        message("rcs", "text", text="Hi", suggestions=[{"type": "reply", "text": "Yes", "postback_data": "y"}]),
        message("rcs", "card", card=CARD),
        message("rcs", "carousel", carousel={"cards": [CARD, CARD]}, rcs={"card_width": "SMALL"}),
    ],
    ids=lambda body: f"{body['channel']}-{body['message_type']}",
)
def test_each_message_type_is_accepted(sandbox, body) -> None:
    response = post_json(sandbox.url, "/v1/messages", body)
    assert response.status_code == 202, response.json()
    assert sandbox.messages()[0]["message_type"] == body["message_type"]


@pytest.mark.parametrize(
    ("body", "invalid"),
    [
        (message("whatsapp", "location", location={"lat": 100, "long": 0}), "location"),
        (message("whatsapp", "reaction", reaction={"action": "react", "emoji": "😀"}), "context"),
        (message("whatsapp", "reaction", reaction={"action": "love"}, context=CONTEXT), "reaction.action"),
        (message("whatsapp", "custom", custom="interactive"), "custom"),
        (message("mms", "vcard", vcard={"url": "https://example.com/c.txt"}), "vcard.url"),
        (message("viber_service", "video", video={"url": "https://example.com/v.mp4"}), "video.thumb_url"),
        (message("rcs", "card", card={"title": "T", "text": "x"}), "card.media_url"),
        (message("rcs", "carousel", carousel={"cards": [CARD]}, rcs={"card_width": "SMALL"}), "carousel.cards"),
        (message("rcs", "carousel", carousel={"cards": [CARD, CARD]}), "rcs.card_width"),
        (message("rcs", "text", text="x", suggestions=[{"type": "dial", "text": "Call", "postback_data": "d"}]),
         "suggestions[0].phone_number"),
        (message("whatsapp", "text", text="x", suggestions=[{"type": "reply", "text": "a", "postback_data": "b"}]),
         "suggestions"),
        (message("sms", "text", text="Hi", failover=[message("whatsapp", "location", location={})]),
         "failover[0].location"),
    ],
)
def test_a_malformed_message_is_a_422_naming_the_parameter_and_costs_nothing(sandbox, body, invalid) -> None:
    before = sandbox.balance
    response = post_json(sandbox.url, "/v1/messages", body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("#1150")
    assert invalid in [item["name"] for item in problem["invalid_parameters"]]
    assert sandbox.messages() == [] and sandbox.balance == before


def test_whatsapp_has_no_card_and_sms_no_location(sandbox) -> None:
    for body in (message("whatsapp", "card", card=CARD), message("sms", "location", location={"lat": 1, "long": 2})):
        response = post_json(sandbox.url, "/v1/messages", body)
        assert response.status_code == 422
        assert response.json()["type"].endswith("#1140")


WHATSAPP_THEN_SMS = message(
    "whatsapp", "template", template={"name": "t", "parameters": []}, whatsapp={"locale": "en_GB"}, client_ref="wf-1",
    failover=[message("sms", "text", text="Hi")],
)


def test_failover_to_a_number_with_no_whatsapp_rejects_the_first_item_and_delivers_the_second(sandbox, webhook_receiver):
    from tests.sandbox._helpers import client

    with client() as http:  # the toggle over the control API, as a developer would set it
        assert http.post(f"{sandbox.url}/_sandbox/config", json={"no_whatsapp": ["+" + TO]}).status_code == 200
    answer = post_json(sandbox.url, "/v1/messages", WHATSAPP_THEN_SMS).json()
    assert set(answer) == {"message_uuid", "workflow_id"}
    hooks = [h.json for h in webhook_receiver.wait_for(3)]
    assert [(h["channel"], h["status"], h["workflow"]["items_number"]) for h in hooks] == [
        ("whatsapp", "rejected", "1"), ("sms", "submitted", "2"), ("sms", "delivered", "2")]
    assert all(h["workflow"] == {**h["workflow"], "workflow_id": answer["workflow_id"], "items_total": "2"} for h in hooks)
    assert hooks[0]["message_uuid"] == answer["message_uuid"] and hooks[1]["message_uuid"] != answer["message_uuid"]
    assert hooks[0]["error"]["title"] == "1300" and all(h["client_ref"] == "wf-1" for h in hooks)
    assert sandbox.balance == "9.96670000"  # one SMS part, nothing for the rejected WhatsApp message
    assert [e["channel"] for e in sandbox.inbox(TO)] == ["sms"]


def test_failover_is_not_used_when_the_first_item_goes_out(sandbox, webhook_receiver):
    answer = post_json(sandbox.url, "/v1/messages", WHATSAPP_THEN_SMS).json()
    hooks = [h.json for h in webhook_receiver.wait_for(3)]
    assert [(h["channel"], h["status"], h["workflow"]["items_number"]) for h in hooks] == [
        ("whatsapp", "submitted", "1"), ("whatsapp", "delivered", "1"), ("whatsapp", "read", "1")]
    assert sandbox.messages()[0]["delivered_item"] == 1 and answer["workflow_id"]
    assert sandbox.balance == "9.99000000"


def test_a_phone_answers_a_list_row_over_the_control_api(sandbox, webhook_receiver):
    from tests.sandbox._helpers import client

    interactive = {"type": "list", "body": {"text": "When?"}, "action": {"button": "Times", "sections": [
        {"rows": [{"id": "row1", "title": "9am", "description": "Morning"}]}]}}
    sent = post_json(sandbox.url, "/v1/messages",
                     message("whatsapp", "custom", custom={"type": "interactive", "interactive": interactive})).json()
    with client() as http:
        refused = http.post(f"{sandbox.url}/_sandbox/inbound", json={"answer": {"message_uuid": sent["message_uuid"],
                                                                                 "choice": "row9"}})
        assert refused.status_code == 400
        ok = http.post(f"{sandbox.url}/_sandbox/inbound", json={"answer": {"message_uuid": sent["message_uuid"],
                                                                            "choice": "row1"}})
        assert ok.status_code == 200, ok.text
    [hook] = webhook_receiver.wait_for(1, where=lambda r: r.path == "/inbound")
    body = hook.json
    assert (body["message_type"], body["reply"], body["from"], body["to"]) == (
        "reply", {"id": "row1", "title": "9am", "description": "Morning"}, TO, SENDER)
    assert body["context"] == {"message_uuid": sent["message_uuid"], "message_from": SENDER}
