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
