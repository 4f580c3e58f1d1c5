"""verify-start / verify-check bodies: every bad input is a 4xx with a field, never a 500."""

from __future__ import annotations

import pytest

from shared.errors import BadRequestError, ValidationError
from shared.verify.inputs import parse_check, parse_start
from tests.fixtures.verify import GB_MOBILE

GOOD = {"number": GB_MOBILE, "brand": "Acme"}


def test_defaults(verify_settings):
    start = parse_start(GOOD, verify_settings())
    assert start.channels == ("sms", "voice")
    assert start.phone.e164 == GB_MOBILE
    assert (start.locale, start.client_ref, start.email, start.client_ip) == (None,) * 4
    # Regression (issue 15): Vonage's default is 4 digits; ours is 6, so a guess is 100 times harder.
    assert start.code_length == 6


def test_everything_given(verify_settings):
    body = {**GOOD, "channels": ["whatsapp", "sms", "email"], "code_length": 8, "locale": "ES-MX",
            "client_ref": "order123", "email": "a@example.com", "client_ip": " 2001:db8::1 "}
    start = parse_start(body, verify_settings(brand_number="+447400000001"))
    assert start.channels == ("whatsapp", "sms", "email")
    assert (start.code_length, start.locale, start.client_ref) == (8, "es-mx", "order123")
    assert start.email == "a@example.com" and start.client_ip == "2001:db8::1"


def test_national_number_with_default_region(verify_settings):
    start = parse_start({**GOOD, "number": "07400 123456"}, verify_settings(default_region="GB"))
    assert start.phone.e164 == GB_MOBILE


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"number": None}, "number", "invalid_phone"),
        ({"number": "12"}, "number", "invalid_phone"),
        ({"number": 447400123456}, "number", "invalid_phone"),
        ({"brand": None}, "brand", "invalid_field"),
        ({"brand": "x" * 19}, "brand", "invalid_field"),
        ({"brand": "a/b"}, "brand", "invalid_field"),
        ({"channels": []}, "channels", "invalid_field"),
        ({"channels": ["sms", "sms"]}, "channels", "invalid_field"),
        ({"channels": ["pigeon"]}, "channels", "invalid_field"),
        ({"channels": [1]}, "channels", "invalid_field"),
        ({"channels": ["whatsapp"]}, "channels", "channel_not_available"),
        ({"channels": ["email"]}, "email", "invalid_field"),
        ({"channels": ["email"], "email": "nope"}, "email", "invalid_field"),
        ({"code_length": 3}, "code_length", "invalid_field"),
        ({"code_length": 11}, "code_length", "invalid_field"),
        ({"code_length": True}, "code_length", "invalid_field"),
        ({"code_length": "6"}, "code_length", "invalid_field"),
        ({"locale": "english"}, "locale", "invalid_field"),
        ({"client_ref": "has space"}, "client_ref", "invalid_field"),
        ({"client_ref": "x" * 41}, "client_ref", "invalid_field"),
        ({"client_ip": "not-an-ip"}, "client_ip", "invalid_field"),
    ],
)
def test_bad_start_fields(verify_settings, change, field, code):
    with pytest.raises(BadRequestError) as info:
        parse_start({**GOOD, **change}, verify_settings())
    assert info.value.status == 422
    assert (info.value.details.get("field"), info.value.code) == (field, code)


@pytest.mark.parametrize(
    ("channels", "workflow_ok"),
    [(["sms"], True), (["voice"], True), (["sms", "voice"], True), (["voice", "sms"], False), (["whatsapp"], False), (["email"], False)],
)
def test_legacy_api_takes_only_its_workflows(verify_settings, channels, workflow_ok):
    settings = verify_settings(verify_api="legacy", brand_number="447400000001")
    body = {**GOOD, "channels": channels, "email": "a@example.com"}
    if workflow_ok:
        assert parse_start(body, settings).channels == tuple(channels)
    else:
        with pytest.raises(BadRequestError) as info:
            parse_start(body, settings)
        assert info.value.code == "channel_not_supported"


def test_legacy_code_length_is_4_or_6(verify_settings):
    settings = verify_settings(verify_api="legacy")
    assert parse_start({**GOOD, "code_length": 6}, settings).code_length == 6
    with pytest.raises(BadRequestError):
        parse_start({**GOOD, "code_length": 8}, settings)


def test_check_body():
    check = parse_check({"request_id": " abc-123 ", "code": " 0123 "})
    assert (check.request_id, check.code) == ("abc-123", "0123")
    assert "0123" not in repr(check)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "1234"}, "request_id"),
        ({"request_id": "../etc", "code": "1234"}, "request_id"),
        ({"request_id": "a" * 65, "code": "1234"}, "request_id"),
        ({"request_id": "abc"}, "code"),
        ({"request_id": "abc", "code": 1234}, "code"),
        ({"request_id": "abc", "code": "12"}, "code"),
        ({"request_id": "abc", "code": "12 34"}, "code"),
        ({"request_id": "abc", "code": "98765432101"}, "code"),
    ],
)
def test_bad_check_bodies_never_echo_the_code(body, field):
    with pytest.raises(BadRequestError) as info:
        parse_check(body)
    assert info.value.status == 422 and info.value.details["field"] == field
    code = str(body.get("code", "@@"))
    assert code not in info.value.message and code not in str(info.value.to_dict())


# ---- the limits of Vonage's definitions, refused before the call ------------------------------


@pytest.mark.parametrize(
    ("api", "change", "field"),
    [
        ("v2", {"brand": "b" * 17}, "brand"),  # the official SDK caps v2 at 16 (docs: 18)
        ("legacy", {"brand": "b" * 19}, "brand"),  # verify.yml maxLength 18
        ("v2", {"client_ref": "r" * 17}, "client_ref"),  # the official SDK caps it at 16 (docs: 40)
        ("v2", {"client_ref": "r" * 40}, "client_ref"),
        ("v2", {"locale": "xx-yy"}, "locale"),  # verify.v2.yml Language enum
        ("v2", {"locale": "ja-jp"}, "locale"),  # legacy-only language
        ("legacy", {"locale": "xx-yy"}, "locale"),  # verify.yml lg enum
        ("v2", {"channel_timeout": 59}, "channel_timeout"),  # verify.v2.yml ChannelTimeout 60-900
        ("v2", {"channel_timeout": 901}, "channel_timeout"),
        ("legacy", {"channel_timeout": 30}, "channel_timeout"),  # next_event_wait 60-900
        ("v2", {"channel_timeout": "300"}, "channel_timeout"),
        ("v2", {"channel_timeout": True}, "channel_timeout"),
        ("v2", {"code_length": 11}, "code_length"),
        ("v2", {"code_length": 3}, "code_length"),
        ("legacy", {"code_length": 5}, "code_length"),
    ],
)
def test_every_limit_of_vonages_definitions_is_refused_before_the_call(verify_settings, api, change, field):
    with pytest.raises(ValidationError) as info:
        parse_start({**GOOD, **change}, verify_settings(verify_api=api))
    assert (info.value.status, info.value.code, info.value.details.get("field")) == (422, "invalid_field", field)


@pytest.mark.parametrize(
    ("api", "change", "expected"),
    [
        ("v2", {"brand": "b" * 16}, ("brand", "b" * 16)),
        ("legacy", {"brand": "b" * 18}, ("brand", "b" * 18)),
        ("v2", {"client_ref": "r" * 16}, ("client_ref", "r" * 16)),
        ("v2", {"locale": "PT_BR"}, ("locale", "pt-br")),
        ("legacy", {"locale": "ja-jp"}, ("locale", "ja-jp")),
        ("v2", {"channel_timeout": 60}, ("channel_timeout", 60)),
        ("legacy", {"channel_timeout": 900}, ("channel_timeout", 900)),
    ],
)
def test_values_at_the_limits_are_accepted(verify_settings, api, change, expected):
    start = parse_start({**GOOD, **change}, verify_settings(verify_api=api))
    assert getattr(start, expected[0]) == expected[1]


def test_a_legacy_check_code_longer_than_6_is_refused_before_it_burns_an_attempt():
    with pytest.raises(ValidationError) as info:
        parse_check({"request_id": "abcdef0123456789abcdef0123456789", "code": "1234567"}, legacy=True)
    assert (info.value.code, info.value.details.get("field")) == ("invalid_field", "code")
    assert "1234567" not in info.value.message
    assert parse_check({"request_id": "abcdef0123456789abcdef0123456789", "code": "1234567"}).code == "1234567"
