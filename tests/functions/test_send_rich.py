"""The message types beyond text and media (issue 16), end to end through the sandbox.

Each wire body is compared with the exact JSON expected from Vonage's definitions and, where the
official Python SDK (``vonage_messages``, a test dependency) has a model for it, with what that
model serialises from the same fields: our body must be what the SDK itself would send.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.send import BRAND, GB_MOBILE

TO = "447911123456"
CONTEXT = {"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"}
BUTTONS = {
    "type": "button",
    "body": {"text": "Table for two at 8pm?"},
    "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                           {"type": "reply", "reply": {"id": "no", "title": "No"}}]},
}
LIST = {
    "type": "list",
    "header": {"type": "text", "text": "Appointments"},
    "body": {"text": "Pick a time"},
    "footer": {"text": "Clinic"},
    "action": {"button": "Times", "sections": [
        {"title": "Morning", "rows": [{"id": "row1", "title": "9am", "description": "Select 9am appointment time"}]},
        {"title": "Afternoon", "rows": [{"id": "row2", "title": "2pm"}]},
    ]},
}
SUGGESTIONS = [
    {"type": "reply", "text": "Yes", "postback_data": "answer-yes"},
    {"type": "dial", "text": "Call us", "postback_data": "dial", "phone_number": "447700900000"},
    {"type": "open_url", "text": "Menu", "postback_data": "menu", "url": "https://example.com/menu",
     "description": "Our menu"},
    {"type": "view_location", "text": "Find us", "postback_data": "where", "latitude": "51.5", "longitude": "-0.12",
     "pin_label": "Acme"},
    {"type": "share_location", "text": "Share", "postback_data": "share"},
    {"type": "open_url_in_webview", "text": "Book", "postback_data": "book", "url": "https://example.com/book",
     "description": "Booking", "view_mode": "HALF"},
    {"type": "create_calendar_event", "text": "Save", "postback_data": "cal", "start_time": "2026-01-02T10:00:00Z",
     "end_time": "2026-01-02T11:00:00Z", "title": "Dinner", "description": "Dinner at Acme"},
]
CARD = {"title": "Margherita", "text": "Tomato, mozzarella, basil", "media_url": "https://example.com/pizza.jpg",
        "media_height": "MEDIUM", "suggestions": [{"type": "reply", "text": "Order", "postback_data": "order-1"}]}


def sdk_dump(body: dict[str, Any]) -> dict[str, Any] | None:
    """What the official SDK's model for this channel and type serialises from ``body`` (None: no model)."""
    models = pytest.importorskip("vonage_messages.models")
    model = {
        ("whatsapp", "sticker"): models.WhatsappSticker,
        ("whatsapp", "custom"): models.WhatsappCustom,
        ("whatsapp", "text"): models.WhatsappText,
        ("whatsapp", "template"): models.WhatsappTemplate,
        ("mms", "vcard"): models.MmsVcard,
        ("viber_service", "video"): models.ViberVideo,
        ("rcs", "text"): models.RcsText,
        ("rcs", "card"): models.RcsCardMessage,
        ("rcs", "carousel"): models.RcsCarouselMessage,
        ("rcs", "custom"): models.RcsCustom,
        ("sms", "text"): models.Sms,
    }.get((body["channel"], body["message_type"]))
    if model is None:
        return None
    data = {("from_" if k == "from" else k): v for k, v in body.items()}
    if body["message_type"] in ("text", "card", "carousel") and body["channel"] == "rcs":
        # Suggestions are a union of models told apart by their fields; build each by its type.
        kinds = {
            "reply": models.RcsSuggestionReply, "dial": models.RcsSuggestionActionDial,
            "open_url": models.RcsSuggestionActionOpenUrl, "view_location": models.RcsSuggestionActionViewLocation,
            "share_location": models.RcsSuggestionActionShareLocation,
            "open_url_in_webview": models.RcsSuggestionActionOpenUrlWebview,
            "create_calendar_event": models.RcsSuggestionActionCreateCalendarEvent,
        }

        def typed(items: list[dict[str, Any]]) -> list[Any]:
            return [kinds[s["type"]](**{k: v for k, v in s.items() if k != "type"}) for s in items]

        if "suggestions" in data:
            data["suggestions"] = typed(data["suggestions"])
        cards = [data["card"]] if "card" in data else (data.get("carousel") or {}).get("cards", [])
        built = [models.RcsCard(**{**c, **({"suggestions": typed(c["suggestions"])} if "suggestions" in c else {})})
                 for c in cards]
        if "card" in data:
            data["card"] = built[0]
        elif "carousel" in data:
            data["carousel"] = {"cards": built}
    return model(**data).model_dump(by_alias=True, exclude_none=True)


def only_body(stack) -> dict[str, Any]:
    [request] = stack.vonage_requests(api="messages")
    return request["fields"]


CASES = [
    pytest.param(
        {"channel": "whatsapp", "location": {"lat": 51.5072, "long": -0.1276, "name": "Acme", "address": "1 Main St"}},
        {"channel": "whatsapp", "message_type": "location", "from": BRAND,
         "location": {"lat": 51.5072, "long": -0.1276, "name": "Acme", "address": "1 Main St"}},
        id="whatsapp-location",
    ),
    pytest.param(
        {"channel": "whatsapp", "sticker": {"url": "https://example.com/s.webp"}},
        {"channel": "whatsapp", "message_type": "sticker", "from": BRAND, "sticker": {"url": "https://example.com/s.webp"}},
        id="whatsapp-sticker-url",
    ),
    pytest.param(
        {"channel": "whatsapp", "sticker": {"id": "13aaecab-2485-4255-a0a7-97a2a5f8a0a5"}},
        {"channel": "whatsapp", "message_type": "sticker", "from": BRAND,
         "sticker": {"id": "13aaecab-2485-4255-a0a7-97a2a5f8a0a5"}},
        id="whatsapp-sticker-id",
    ),
    pytest.param(
        {"channel": "whatsapp", "reaction": {"action": "react", "emoji": "👍"}, "context": CONTEXT},
        {"channel": "whatsapp", "message_type": "reaction", "from": BRAND, "reaction": {"action": "react", "emoji": "👍"},
         "context": CONTEXT},
        id="whatsapp-reaction",
    ),
    pytest.param(
        {"channel": "whatsapp", "reaction": {"action": "unreact"}, "context": CONTEXT},
        {"channel": "whatsapp", "message_type": "reaction", "from": BRAND, "reaction": {"action": "unreact"},
         "context": CONTEXT},
        id="whatsapp-unreact",
    ),
    pytest.param(
        {"channel": "whatsapp", "interactive": BUTTONS},
        {"channel": "whatsapp", "message_type": "custom", "from": BRAND,
         "custom": {"type": "interactive", "interactive": BUTTONS}},
        id="whatsapp-buttons",
    ),
    pytest.param(
        {"channel": "whatsapp", "interactive": LIST},
        {"channel": "whatsapp", "message_type": "custom", "from": BRAND, "custom": {"type": "interactive", "interactive": LIST}},
        id="whatsapp-list",
    ),
    pytest.param(
        {"channel": "whatsapp", "custom": {"type": "contacts", "contacts": [{"name": {"formatted_name": "Ann"}}]}},
        {"channel": "whatsapp", "message_type": "custom", "from": BRAND,
         "custom": {"type": "contacts", "contacts": [{"name": {"formatted_name": "Ann"}}]}},
        id="whatsapp-custom",
    ),
    pytest.param(
        {"channel": "whatsapp", "text": "See above", "context": CONTEXT},
        {"channel": "whatsapp", "message_type": "text", "from": BRAND, "text": "See above", "context": CONTEXT},
        id="whatsapp-quoted-reply",
    ),
    pytest.param(
        {"channel": "mms", "vcard": {"url": "https://example.com/ann.vcf", "caption": "Ann"}, "from": "14155550100"},
        {"channel": "mms", "message_type": "vcard", "from": "14155550100",
         "vcard": {"url": "https://example.com/ann.vcf", "caption": "Ann"}},
        id="mms-vcard",
    ),
    pytest.param(
        {"channel": "viber", "from": "acme", "ttl": 600,
         "video": {"url": "https://example.com/v.mp4", "thumb_url": "https://example.com/t.jpg", "caption": "Hi",
                   "duration": 42, "file_size": "3"}},
        {"channel": "viber_service", "message_type": "video", "from": "acme",
         "video": {"url": "https://example.com/v.mp4", "thumb_url": "https://example.com/t.jpg", "caption": "Hi"},
         "viber_service": {"duration": "42", "file_size": "3", "ttl": 600}},
        id="viber-video",
    ),
    pytest.param(
        {"channel": "rcs", "from": "acmeagent", "text": "Table for two?", "suggestions": SUGGESTIONS},
        {"channel": "rcs", "message_type": "text", "from": "acmeagent", "text": "Table for two?",
         "suggestions": SUGGESTIONS},
        id="rcs-suggestions",
    ),
    pytest.param(
        {"channel": "rcs", "from": "acmeagent", "card": CARD, "rcs": {"card_orientation": "HORIZONTAL", "image_alignment": "LEFT"}},
        {"channel": "rcs", "message_type": "card", "from": "acmeagent", "card": CARD,
         "rcs": {"card_orientation": "HORIZONTAL", "image_alignment": "LEFT"}},
        id="rcs-card",
    ),
    pytest.param(
        {"channel": "rcs", "from": "acmeagent", "carousel": {"cards": [CARD, {**CARD, "title": "Marinara"}]},
         "rcs": {"card_width": "MEDIUM", "category": "promotion"}},
        {"channel": "rcs", "message_type": "carousel", "from": "acmeagent",
         "carousel": {"cards": [CARD, {**CARD, "title": "Marinara"}]}, "rcs": {"card_width": "MEDIUM", "category": "promotion"}},
        id="rcs-carousel",
    ),
    pytest.param(
        {"channel": "rcs", "from": "acmeagent", "custom": {"contentMessage": {"text": "raw"}}},
        {"channel": "rcs", "message_type": "custom", "from": "acmeagent", "custom": {"contentMessage": {"text": "raw"}}},
        id="rcs-custom",
    ),
]


@pytest.mark.parametrize(("body", "fields"), CASES)
def test_each_message_type_reaches_vonage_as_its_definition_says(send_stack, body, fields):
    send_stack.configure(SEND_WHATSAPP_WINDOW_CHECK="false")
    response = send_stack.http.post({"to": GB_MOBILE, **body})
    assert response.status_code == 202, response.get_json()
    wire = only_body(send_stack)
    assert wire == {"to": TO, **fields}
    sdk = sdk_dump(wire)
    if sdk is not None:
        assert sdk == wire  # exactly what the official SDK would put on the wire
    result = response.get_json()
    assert result["message_type"] == (body.keys() & {"location", "sticker", "reaction", "interactive", "custom", "vcard",
                                                     "video", "text", "card", "carousel"}).pop()
    record = send_stack.http.get(f"/{result['id']}").get_json()
    assert record["status"] in ("submitted", "delivered", "read")
    assert record["message_type"] == result["message_type"]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"channel": "whatsapp", "location": {"lat": 91, "long": 0}}, "location.lat", "invalid_field"),
        ({"channel": "whatsapp", "location": {"lat": 1}}, "location.long", "missing_field"),
        ({"channel": "whatsapp", "location": {"lat": 1, "long": 2, "address": "x"}}, "location.name", "missing_field"),
        ({"channel": "whatsapp", "sticker": {"url": "https://example.com/s.png"}}, "sticker.url", "invalid_field"),
        ({"channel": "whatsapp", "sticker": {"url": "https://example.com/s.webp", "id": "x"}}, "sticker", "missing_field"),
        ({"channel": "whatsapp", "reaction": {"action": "react", "emoji": "👍"}}, "context", "missing_field"),
        ({"channel": "whatsapp", "reaction": {"action": "love"}, "context": CONTEXT}, "reaction.action", "invalid_field"),
        ({"channel": "whatsapp", "custom": {}}, "custom", "invalid_field"),
        ({"channel": "whatsapp", "interactive": {**BUTTONS, "action": {"buttons": BUTTONS["action"]["buttons"] * 2}}},
         "interactive.action.buttons", "invalid_field"),
        ({"channel": "whatsapp", "interactive": {**BUTTONS, "action": {"buttons": [
            {"type": "reply", "reply": {"id": "a", "title": "x" * 21}}]}}},
         "interactive.action.buttons[0].reply.title", "text_too_long"),
        ({"channel": "whatsapp", "interactive": {**LIST, "action": {"button": "Go", "sections": [
            {"rows": [{"id": f"r{i}", "title": "t"} for i in range(11)]}]}}},
         "interactive.action.sections", "invalid_field"),
        ({"channel": "whatsapp", "interactive": {**LIST, "type": "carousel"}}, "interactive.type", "invalid_field"),
        ({"channel": "sms", "location": {"lat": 1, "long": 2}}, "location", "unsupported_content"),
        ({"channel": "mms", "vcard": {"url": "https://example.com/ann.txt"}, "from": "14155550100"}, "vcard.url", "invalid_field"),
        ({"channel": "viber", "from": "acme", "video": {"url": "https://example.com/v.mp4",
                                                       "thumb_url": "https://example.com/t.jpg", "duration": 601,
                                                       "file_size": 1}}, "video.duration", "invalid_field"),
        ({"channel": "rcs", "from": "a", "text": "x", "suggestions": [{"type": "dial", "text": "Call", "postback_data": "d"}]},
         "suggestions[0].phone_number", "missing_field"),
        ({"channel": "rcs", "from": "a", "text": "x", "suggestions": [{"type": "reply", "text": "y" * 26,
                                                                       "postback_data": "d"}]},
         "suggestions[0].text", "text_too_long"),
        ({"channel": "rcs", "from": "a", "text": "x", "suggestions": SUGGESTIONS * 2}, "suggestions", "invalid_field"),
        ({"channel": "rcs", "from": "a", "carousel": {"cards": [CARD]}, "rcs": {"card_width": "SMALL"}}, "carousel.cards",
         "invalid_field"),
        ({"channel": "rcs", "from": "a", "carousel": {"cards": [CARD, CARD]}}, "rcs.card_width", "missing_field"),
        ({"channel": "rcs", "from": "a", "card": CARD, "rcs": {"card_orientation": "HORIZONTAL"}}, "rcs.image_alignment",
         "missing_field"),
        ({"channel": "rcs", "from": "a", "card": {**CARD, "suggestions": CARD["suggestions"] * 5}}, "card.suggestions",
         "invalid_field"),
        ({"channel": "sms", "text": "x", "context": CONTEXT}, "context", "invalid_field"),
        ({"channel": "whatsapp", "text": "x", "suggestions": SUGGESTIONS[:1]}, "suggestions", "invalid_field"),
    ],
)
def test_malformed_content_is_a_422_naming_the_field_and_nothing_is_sent(send_stack, body, field, code):
    response = send_stack.http.post({"to": GB_MOBILE, **body})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert (error["code"], error["details"]["field"]) == (code, field), error
    assert send_stack.vonage_requests() == []


def test_the_send_function_answers_a_failover_send_and_serves_its_record(send_stack):
    """Over HTTP: the WhatsApp-then-SMS recipe to a number with no WhatsApp, then GET /send/<id>."""
    send_stack.sandbox_config(no_whatsapp=[TO])
    recipe = {"to": GB_MOBILE, "channel": "whatsapp",
              "template": {"name": "table_ready", "parameters": ["Ann"], "locale": "en_GB"},
              "failover": [{"channel": "sms", "from": "Acme", "text": "Ann, your table is ready"}]}
    response = send_stack.http.post(recipe, key="table-17")
    assert response.status_code == 202, response.get_json()
    answer = response.get_json()
    assert answer["workflow_id"] and [i["channel"] for i in answer["items"]] == ["whatsapp", "sms"]
    assert send_stack.sandbox.wait_idle(10)
    send_stack.receiver.wait_for(3, where=lambda r: r.path == "/status")
    # The receipts went to the test's receiver, not to our status function: apply them as it would.
    from shared.deps import get_settings
    from shared.webhooks.status import receive_status

    for hook in send_stack.receiver.on("/status"):
        receive_status(hook.fields, settings=get_settings(), store=send_stack.store)
    record = send_stack.http.get(f"/{answer['id']}").get_json()
    assert (record["status"], record["delivered_item"], record["workflow_id"]) == ("delivered", 2, answer["workflow_id"])
    assert [item["status"] for item in record["items"]] == ["rejected", "delivered"]
    replay = send_stack.http.post(recipe, key="table-17")
    assert replay.headers.get("Idempotent-Replayed") == "true" and len(send_stack.vonage_requests("messages")) == 1
