"""Every Vonage webhook format becomes the same normalised shapes."""

from __future__ import annotations

import json

import pytest

from shared.errors import BadRequestError
from shared.webhooks.formats import (
    KIND_MESSAGES_INBOUND,
    KIND_MESSAGES_STATUS,
    KIND_SMS_INBOUND,
    KIND_SMS_RECEIPT,
    KIND_VERIFY,
    classify,
    normalise_address,
    parse_inbound,
    parse_status,
)
from tests.fixtures.webhooks import (
    messages_inbound,
    messages_status,
    sms_inbound,
    sms_receipt,
    verify_event,
    verify_summary,
)


def test_classify_tells_every_kind_apart():
    assert classify(sms_inbound()) == KIND_SMS_INBOUND
    assert classify(sms_receipt("abc")) == KIND_SMS_RECEIPT
    assert classify(messages_inbound()) == KIND_MESSAGES_INBOUND
    assert classify(messages_status("u-1")) == KIND_MESSAGES_STATUS
    assert classify(verify_event("r-1")) == KIND_VERIFY
    assert classify(verify_summary("r-1")) == KIND_VERIFY
    with pytest.raises(BadRequestError) as info:
        classify({"hello": "world"})
    assert info.value.code == "invalid_webhook"


def test_sms_inbound_is_normalised_with_e164_numbers_and_iso_time():
    params = sms_inbound("Hi there", message_id="0A0000001", sig="abc")
    event = parse_inbound(params)
    assert (event.api, event.channel, event.vonage_id) == ("sms", "sms", "0A0000001")
    assert event.sender == "+447700900123" and event.recipient == "+447700900000"
    assert event.text == "Hi there" and event.message_type == "text"
    assert event.timestamp == "2026-01-30T12:00:00Z"
    assert event.details["keyword"] == "HI"
    assert event.concat is None
    raw = json.loads(event.raw)
    assert raw["messageId"] == "0A0000001" and "sig" not in raw
    assert event.dedupe_key == "in:sms:0A0000001"


def test_sms_inbound_part_carries_its_concat_position():
    event = parse_inbound(sms_inbound("part", concat=("7A", 3, 2)))
    assert (event.concat.ref, event.concat.total, event.concat.part) == ("7A", 3, 2)


@pytest.mark.parametrize(
    "concat",
    [{"concat": "true", "concat-ref": "1", "concat-total": "3"}, {"concat-ref": "1", "concat-total": "x", "concat-part": "1"},
     {"concat-ref": "1", "concat-total": "3", "concat-part": "4"}, {"concat-ref": "1", "concat-total": "3", "concat-part": "0"}],
)
def test_broken_concat_fields_are_a_400(concat):
    with pytest.raises(BadRequestError):
        parse_inbound({**sms_inbound(), **concat})


def test_a_one_part_concat_is_a_plain_message():
    assert parse_inbound(sms_inbound(concat=("1", 1, 1))).concat is None


@pytest.mark.parametrize("missing", ["msisdn", "to", "messageId"])
def test_sms_inbound_without_required_field_is_a_400_naming_it(missing):
    params = sms_inbound("secret text 123")
    del params[missing]
    with pytest.raises(BadRequestError) as info:
        parse_inbound(params)
    assert missing in info.value.message and "secret text" not in info.value.message


@pytest.mark.parametrize(
    ("channel", "expected"),
    [("sms", "sms"), ("mms", "mms"), ("whatsapp", "whatsapp"), ("messenger", "messenger"),
     ("viber_service", "viber"), ("rcs", "rcs")],
)
def test_messages_inbound_text_on_every_channel(channel, expected):
    sender = "1234567890123456" if channel == "messenger" else "447700900123"
    event = parse_inbound(messages_inbound(channel, text="Yo", sender=sender, to="447700900000" if channel != "rcs" else "AcmeAgent"))
    assert event.api == "messages" and event.channel == expected and event.text == "Yo"
    if channel == "messenger":
        assert event.sender == "1234567890123456"  # a page-scoped id, not a phone number
    else:
        assert event.sender == "+447700900123"
    if channel == "rcs":
        assert event.recipient == "AcmeAgent"


@pytest.mark.parametrize(
    ("channel", "sender", "to", "expected_sender", "expected_to"),
    [
        # Viber: `from` is the user's number, `to` our Viber service id (spec ToId, example "0123456789").
        ("viber_service", "447700900123", "0123456789", "+447700900123", "0123456789"),
        # Messenger: page-scoped ids both ways, even when they are all digits.
        ("messenger", "9876543210", "0123456789", "9876543210", "0123456789"),
        # RCS: `to` is our agent id.
        ("rcs", "447700900123", "0123456789", "+447700900123", "0123456789"),
        # WhatsApp and SMS/MMS: phone numbers both ways.
        ("whatsapp", "447700900123", "447700900000", "+447700900123", "+447700900000"),
        # WhatsApp's business-scoped user id (BSUID) is not a number: kept as given.
        ("whatsapp", "US.13491208655302741918", "447700900000", "US.13491208655302741918", "+447700900000"),
        ("mms", "447700900123", "447700900000", "+447700900123", "+447700900000"),
    ],
)
def test_channel_ids_are_kept_as_the_channel_gives_them(channel, sender, to, expected_sender, expected_to):
    event = parse_inbound(messages_inbound(channel, text="hi", sender=sender, to=to))
    assert (event.sender, event.recipient) == (expected_sender, expected_to)


def test_v01_viber_to_is_an_id_not_a_number():
    payload = {"message_uuid": "u-v01", "timestamp": "2026-01-30T12:00:00Z",
               "from": {"type": "viber_service", "number": "447700900123"},
               "to": {"type": "viber_service", "id": "0123456789"},
               "message": {"content": {"type": "text", "text": "old viber"}}}
    event = parse_inbound(payload)
    assert (event.channel, event.sender, event.recipient) == ("viber", "+447700900123", "0123456789")


@pytest.mark.parametrize("kind", ["image", "audio", "video", "file", "vcard", "sticker"])
def test_messages_inbound_media(kind):
    payload = messages_inbound("whatsapp", kind, text=None, **{kind: {"url": f"https://api.nexmo.com/v3/media/{kind}", "caption": "look"}})
    event = parse_inbound(payload)
    assert event.message_type == kind
    assert event.media == ({"type": kind, "url": f"https://api.nexmo.com/v3/media/{kind}", "caption": "look"},)
    assert event.text == "look"


def test_mms_with_several_attachments():
    payload = messages_inbound("mms", "content", text=None, content=[
        {"type": "image", "url": "https://x/1.jpg"}, {"type": "video", "url": "https://x/2.mp4", "caption": "clip"}])
    event = parse_inbound(payload)
    assert [item["type"] for item in event.media] == ["image", "video"]


def test_location_reply_and_button_messages():
    location = parse_inbound(messages_inbound("whatsapp", "location", text=None,
                                              location={"lat": 51.5, "long": -0.12, "name": "Office"}))
    assert location.details["location"] == {"lat": 51.5, "long": -0.12, "name": "Office"}
    assert location.text is None
    reply = parse_inbound(messages_inbound("whatsapp", "reply", text=None,
                                           reply={"id": "opt-1", "title": "Yes please"}, context={"message_uuid": "m-0"}))
    assert reply.text == "Yes please" and reply.details["reply"]["id"] == "opt-1"
    assert reply.details["context"] == {"message_uuid": "m-0"}
    button = parse_inbound(messages_inbound("whatsapp", "button", text=None, button={"payload": "P1", "text": "Confirm"}))
    assert button.text == "Confirm" and button.details["button"]["payload"] == "P1"


def test_messages_inbound_sms_keeps_usage_and_keyword():
    event = parse_inbound(messages_inbound("sms", text="Hello long message", sms={"num_messages": "2", "keyword": "HELLO"},
                                           usage={"price": "0.0057", "currency": "EUR"}))
    assert event.details["num_messages"] == "2" and event.details["keyword"] == "HELLO"
    assert event.details["usage"] == {"price": "0.0057", "currency": "EUR"}


def test_messages_inbound_values_are_made_store_safe():
    event = parse_inbound(messages_inbound("whatsapp", "order", text=None,
                                           order={"catalog_id": 2**70, "": "x", "__name__": 1}))
    assert event.details["order"] == {"catalog_id": str(2**70), "~": "x", "~__name__": 1}
    from shared.store.base import _check_document

    _check_document({"details": dict(event.details)})  # what every store accepts


def test_v01_messages_inbound_shape():
    payload = {"message_uuid": "u-01", "timestamp": "2020-01-01T00:00:00Z",
               "from": {"type": "messenger", "id": "1234"}, "to": {"type": "messenger", "id": "5678"},
               "message": {"content": {"type": "text", "text": "old format"}}}
    event = parse_inbound(payload)
    assert (event.channel, event.sender, event.text) == ("messenger", "1234", "old format")


def test_a_status_payload_at_the_inbound_function_is_a_400():
    with pytest.raises(BadRequestError) as info:
        parse_inbound(sms_receipt("abc"))
    assert "status" in info.value.message


def test_sms_receipt_becomes_a_status_event_with_error_meaning():
    event = parse_status(sms_receipt("part-1", "failed", err_code="6", price="0.03330000"))
    assert (event.vonage_id, event.status, event.error_code) == ("part-1", "failed", "6")
    assert event.error_text == "Anti-spam rejection"
    assert event.price == "0.03330000" and event.source == "sms"
    assert event.timestamp == "2026-01-30 12:00:05"
    assert event.extra["network_code"] == "23410"


def test_delivered_receipt_has_no_error():
    event = parse_status(sms_receipt("part-1", "delivered"))
    assert event.error_text is None and event.error_code == "0"


def test_messages_status_with_error_usage_and_read():
    event = parse_status(messages_status("u-9", "rejected", error_code="1160", price="0.0333"))
    assert event.error_code == "1160" and event.error_text.startswith("Non-whitelisted destination")
    assert event.extra["error_detail"] == "The message could not be delivered"
    assert (event.price, event.currency, event.source) == ("0.0333", "EUR", "messages")
    read = parse_status(messages_status("u-9", "read", channel="viber_service", price=None))
    assert read.status == "read" and read.extra["channel"] == "viber" and read.price is None


def test_an_inbound_payload_at_the_status_function_is_a_400():
    with pytest.raises(BadRequestError):
        parse_status(sms_inbound())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("447700900123", "+447700900123"), ("+44 7700 900123", "+447700900123"), ("0044 7700900123", "+447700900123"),
     ("Acme", "Acme"), ("12345", "12345")],
)
def test_normalise_address(raw, expected):
    assert normalise_address(raw) == expected
