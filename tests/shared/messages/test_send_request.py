"""Validation of the send request: every bad input is a 4xx with a stable code and the field."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.errors import ConfigError, InvalidPhoneError, ValidationError
from shared.messages.request import parse_send_request
from tests.fixtures.send import BRAND, FR_MOBILE, GB_MOBILE

IMAGE = {"url": "https://cdn.example/cat.jpg"}


def settings(**overrides):
    base = {"brand_number": BRAND, "api_key": "key12345", "api_secret": "secret123456"}
    return Settings(**{**base, **overrides})


def refused(body, *, code="invalid_field", field=None, status=422, **overrides):
    with pytest.raises(ValidationError) as info:
        parse_send_request(body, settings(**overrides))
    assert info.value.code == code, info.value.message
    assert info.value.status == status
    if field is not None:
        assert info.value.details.get("field") == field
    return info.value


def test_a_minimal_sms_takes_every_default():
    request = parse_send_request({"to": "+44 7911 123456", "text": "hi"}, settings())
    assert (request.channel, request.api, request.bulk) == ("sms", "sms", False)
    assert request.recipients[0].address == GB_MOBILE and request.recipients[0].wire == "447911123456"
    assert request.sender == BRAND
    assert request.max_segments == 6 and request.dry_run is False
    assert request.analysis.encoding == "GSM-7"


def test_the_messages_api_is_the_default_where_an_application_is_configured():
    with_app = settings(application_id="app", private_key="pem")
    assert parse_send_request({"to": GB_MOBILE, "text": "hi"}, with_app).api == "messages"
    assert parse_send_request({"to": GB_MOBILE, "text": "hi", "api": "sms"}, with_app).api == "sms"
    assert parse_send_request({"to": GB_MOBILE, "text": "hi", "api": "messages"}, settings()).api == "messages"


def test_other_channels_always_use_the_messages_api():
    request = parse_send_request({"to": GB_MOBILE, "text": "hi", "channel": "whatsapp"}, settings())
    assert request.api == "messages"
    refused({"to": GB_MOBILE, "text": "hi", "channel": "whatsapp", "api": "sms"}, code="invalid_api", field="api")


@pytest.mark.parametrize("channel", ["telegram", "SMSS", "", "email"])
def test_an_unknown_channel_is_422(channel):
    refused({"to": GB_MOBILE, "text": "hi", "channel": channel}, code="invalid_channel", field="channel")


def test_viber_service_is_accepted_as_the_viber_channel():
    request = parse_send_request({"to": GB_MOBILE, "text": "hi", "channel": "viber_service", "from": "acme"}, settings())
    assert request.channel == "viber"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"text": "hi"}, "missing_field", "to"),
        ({"to": GB_MOBILE}, "missing_field", "text"),
        ({"to": GB_MOBILE, "text": "   "}, "missing_field", "text"),
        ({"to": 447911123456, "text": "hi"}, "invalid_field", "to"),
        ({"to": GB_MOBILE, "text": 42}, "invalid_field", "text"),
        ({"to": GB_MOBILE, "text": "hi", "channel": 1}, "invalid_field", "channel"),
        ({"to": GB_MOBILE, "text": "hi", "dry_run": "yes"}, "invalid_field", "dry_run"),
        ({"to": GB_MOBILE, "text": "hi", "ttl": "600"}, "invalid_field", "ttl"),
        ({"to": GB_MOBILE, "text": "hi", "ttl": True}, "invalid_field", "ttl"),
        ({"to": GB_MOBILE, "text": "hi", "max_segments": 0}, "invalid_field", "max_segments"),
        ({"to": GB_MOBILE, "text": "hi", "client_ref": "x" * 101}, "invalid_field", "client_ref"),
        ({"to": GB_MOBILE, "text": "hi", "txt": "typo"}, "unknown_field", "txt"),
        ({"to": [], "text": "hi"}, "missing_field", "to"),
        ({"to": GB_MOBILE, "text": "hi", "image": IMAGE}, "invalid_field", "image"),
        ({"to": GB_MOBILE, "image": IMAGE}, "unsupported_content", "image"),
    ],
)
def test_bad_fields_are_422_naming_the_field(body, code, field):
    refused(body, code=code, field=field)


def test_a_bad_single_number_is_422_invalid_phone():
    error = refused({"to": "+44 12", "text": "hi"}, code="invalid_phone", field="to")
    assert isinstance(error, InvalidPhoneError)


def test_numbers_in_any_human_format_normalise_to_e164():
    request = parse_send_request({"to": "0044 (7911) 123-456", "text": "hi"}, settings())
    assert request.recipients[0].address == GB_MOBILE
    local = parse_send_request({"to": "07911 123456", "text": "hi"}, settings(default_region="GB"))
    assert local.recipients[0].address == GB_MOBILE


def test_a_bulk_list_keeps_bad_numbers_and_repeats_as_entries():
    request = parse_send_request({"to": [GB_MOBILE, "nope", "447911123456", FR_MOBILE], "text": "hi"}, settings())
    assert request.bulk
    first, bad, repeat, other = request.recipients
    assert first.address == GB_MOBILE and first.duplicate_of is None
    assert bad.address is None and bad.error.code == "invalid_phone" and bad.error.details["field"] == "to[1]"
    assert repeat.address == GB_MOBILE and repeat.duplicate_of == 0
    assert other.address == FR_MOBILE


def test_a_bulk_list_is_limited():
    refused({"to": [GB_MOBILE] * 3, "text": "hi"}, code="too_many_recipients", bulk_max_recipients=2)


def test_text_over_the_channel_limit_is_422_text_too_long():
    error = refused({"to": GB_MOBILE, "text": "a" * 3201}, code="text_too_long", field="text")
    assert error.details["limit"] == 3200
    refused({"to": "1234567890", "text": "a" * 641, "channel": "messenger", "from": "page1"}, code="text_too_long")


def test_a_text_over_max_segments_is_refused_with_the_analysis():
    error = refused({"to": GB_MOBILE, "text": "a" * 161, "max_segments": 1}, code="too_many_segments", field="text")
    assert error.details["segments"] == 2 and error.details["max_segments"] == 1
    # The default comes from SEND_MAX_SEGMENTS (6 parts = 912 GSM-7 characters).
    parse_send_request({"to": GB_MOBILE, "text": "a" * 912}, settings())
    refused({"to": GB_MOBILE, "text": "a" * 913}, code="too_many_segments")
    error = refused({"to": GB_MOBILE, "text": "ç" * 400}, code="too_many_segments")
    assert "UCS-2" in error.message and error.details["unicode_characters"][0]["char"] == "ç"


def test_a_dry_run_is_not_refused_for_its_length():
    request = parse_send_request({"to": GB_MOBILE, "text": "a" * 2000, "dry_run": True}, settings())
    assert request.analysis.segments == 14


@pytest.mark.parametrize(
    ("channel", "api", "low", "high"),
    [("sms", "sms", 20, 604800), ("sms", "messages", 20, 604800), ("mms", "messages", 300, 259200),
     ("rcs", "messages", 20, 259200), ("viber", "messages", 30, 259200)],
)
def test_ttl_is_seconds_within_the_channels_range(channel, api, low, high):
    body = {"to": GB_MOBILE, "text": "hi", "channel": channel, "api": api, "from": "14155550100" if channel == "mms" else "acme"}
    if channel == "sms":
        body["from"] = "Acme"
    assert parse_send_request({**body, "ttl": low}, settings()).ttl == low
    assert parse_send_request({**body, "ttl": high}, settings()).ttl == high
    refused({**body, "ttl": low - 1}, field="ttl")
    refused({**body, "ttl": high + 1}, field="ttl")


@pytest.mark.parametrize("channel", ["whatsapp", "messenger"])
def test_channels_without_a_ttl_refuse_one(channel):
    to = "1234567890" if channel == "messenger" else GB_MOBILE
    refused({"to": to, "text": "hi", "channel": channel, "ttl": 600}, field="ttl")


@pytest.mark.parametrize(
    ("channel", "sender", "wire"),
    [
        ("sms", "+44 7700 900000", "447700900000"),
        ("sms", "Acme Ltd", "Acme Ltd"),
        ("sms", "12345", "12345"),
        ("whatsapp", "+1 415 555 0100", "14155550100"),
        ("messenger", "1234567890", "1234567890"),
        ("viber", "acme_service", "acme_service"),
        ("rcs", "acme-agent", "acme-agent"),
    ],
)
def test_senders_are_normalised_per_channel(channel, sender, wire):
    to = "1234567890" if channel == "messenger" else GB_MOBILE
    request = parse_send_request({"to": to, "text": "hi", "channel": channel, "from": sender}, settings())
    assert request.sender == wire


@pytest.mark.parametrize(
    ("channel", "sender"),
    [("sms", "Acme Limited Co"), ("sms", "Ac!me"), ("sms", "12"), ("whatsapp", "Acme"), ("rcs", "has space")],
)
def test_bad_senders_are_422(channel, sender):
    refused({"to": GB_MOBILE, "text": "hi", "channel": channel, "from": sender}, code="invalid_sender", field="from")


def test_without_a_brand_number_from_is_required():
    error = refused({"to": GB_MOBILE, "text": "hi"}, code="missing_field", field="from", brand_number=None)
    assert "VONAGE_BRAND_NUMBER" in error.message


def test_media_objects_follow_each_channels_rules():
    ok = parse_send_request({"to": GB_MOBILE, "channel": "mms", "image": {**IMAGE, "caption": "A cat"}}, settings())
    assert ok.content.kind == "image" and ok.content.media == {**IMAGE, "caption": "A cat"}
    refused({"to": GB_MOBILE, "channel": "rcs", "from": "agent", "image": {**IMAGE, "caption": "x"}}, field="image.caption")
    refused({"to": GB_MOBILE, "channel": "mms", "image": {"url": "ftp://x/y.jpg"}}, field="image.url")
    refused({"to": GB_MOBILE, "channel": "mms", "image": {}}, code="missing_field", field="image.url")
    refused({"to": GB_MOBILE, "channel": "mms", "image": {**IMAGE, "size": 3}}, code="unknown_field")
    # A Viber video needs its thumbnail, duration and size (it was refused outright before issue 16).
    refused({"to": GB_MOBILE, "channel": "viber", "from": "acme", "video": IMAGE}, code="missing_field",
            field="video.thumb_url")
    refused({"to": GB_MOBILE, "channel": "viber", "from": "acme", "file": IMAGE}, code="missing_field", field="file.name")
    refused({"to": GB_MOBILE, "channel": "mms", "text": "hi", "image": IMAGE}, field="image")


def test_a_whatsapp_template_needs_a_name_and_a_locale():
    body = {"to": GB_MOBILE, "channel": "whatsapp", "template": {"name": "otp", "parameters": ["1234"], "locale": "en_GB"}}
    request = parse_send_request(body, settings())
    assert request.content.template == {"name": "otp", "parameters": ["1234"], "locale": "en_GB"}
    refused({**body, "template": {"name": "otp"}}, code="missing_field", field="template.locale")
    refused({**body, "template": {"locale": "en"}}, code="missing_field", field="template.name")
    refused({**body, "template": {"name": "otp", "locale": "en", "parameters": [1]}}, field="template.parameters")
    refused({**body, "channel": "sms"}, code="unsupported_content", field="template")


def test_the_fingerprint_ignores_spelling_but_not_content():
    a = parse_send_request({"to": "+44 7911 123456", "text": "hi"}, settings())
    b = parse_send_request({"to": "447911123456", "text": "hi", "dry_run": False, "from": "+447700900000"}, settings())
    c = parse_send_request({"to": GB_MOBILE, "text": "hi!"}, settings())
    d = parse_send_request({"to": [GB_MOBILE], "text": "hi"}, settings())
    assert a.fingerprint == b.fingerprint
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3


def test_a_status_webhook_url_too_long_for_the_sms_api_is_a_config_error():
    with pytest.raises(ConfigError):
        parse_send_request({"to": GB_MOBILE, "text": "hi"}, settings(status_webhook_url="https://x.example/" + "a" * 100))
