"""The wire format per API and channel (vonage-api.md 1.3, 5.3, 5.4).

These check the builders; tests/functions/test_send_wire.py checks the same fields as the
local Vonage sandbox received them over HTTP.
"""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.messages.payloads import messages_api_body, sms_api_arguments
from shared.messages.request import parse_send_request
from tests.fixtures.send import BRAND, GB_MOBILE

IMAGE = "https://cdn.example/cat.jpg"


def build(body, **overrides):
    settings = Settings(**{"brand_number": BRAND, "api_key": "k", "api_secret": "s", **overrides})
    request = parse_send_request(body, settings)
    return request, request.recipients[0]


def test_sms_api_gsm_text_leaves_type_out():
    request, recipient = build({"to": GB_MOBILE, "text": "Hello {world}"})
    assert sms_api_arguments(request, recipient) == {
        "to": "447911123456",
        "sender": BRAND,
        "text": "Hello {world}",
        "unicode": False,
    }


def test_sms_api_sets_unicode_only_when_the_text_needs_it_and_ttl_in_milliseconds():
    request, recipient = build(
        {"to": GB_MOBILE, "text": "Olá ç", "client_ref": "order-7", "ttl": 3600},
        status_webhook_url="https://hooks.example/status",
    )
    assert sms_api_arguments(request, recipient) == {
        "to": "447911123456",
        "sender": BRAND,
        "text": "Olá ç",
        "unicode": True,
        "client_ref": "order-7",
        "ttl_ms": 3_600_000,
        "callback": "https://hooks.example/status",
    }


def test_messages_api_sms_is_text_with_auto_encoding_and_ttl_in_seconds():
    request, recipient = build(
        {"to": GB_MOBILE, "text": "Hi ç", "api": "messages", "ttl": 3600, "client_ref": "r1"},
        status_webhook_url="https://hooks.example/status",
    )
    assert messages_api_body(request, recipient) == {
        "channel": "sms",
        "message_type": "text",
        "to": "447911123456",
        "from": BRAND,
        "text": "Hi ç",
        "client_ref": "r1",
        "ttl": 3600,
        "webhook_url": "https://hooks.example/status",
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"channel": "mms", "image": {"url": IMAGE, "caption": "A cat"}, "from": "14155550100", "ttl": 600},
            {"channel": "mms", "message_type": "image", "image": {"url": IMAGE, "caption": "A cat"},
             "from": "14155550100", "ttl": 600},
        ),
        (
            {"channel": "whatsapp", "template": {"name": "otp", "parameters": ["1234"], "locale": "en_GB"}},
            {
                "channel": "whatsapp",
                "message_type": "template",
                "template": {"name": "otp", "parameters": ["1234"]},
                "whatsapp": {"locale": "en_GB"},
                "from": BRAND,
            },
        ),
        (
            {"channel": "whatsapp", "file": {"url": IMAGE, "caption": "c", "name": "cat.jpg"}},
            {"channel": "whatsapp", "message_type": "file", "file": {"url": IMAGE, "caption": "c", "name": "cat.jpg"},
             "from": BRAND},
        ),
        (
            {"channel": "viber", "text": "hi", "from": "acme", "ttl": 600},
            {"channel": "viber_service", "message_type": "text", "text": "hi", "from": "acme", "viber_service": {"ttl": 600}},
        ),
        (
            {"channel": "rcs", "video": {"url": IMAGE}, "from": "acme-agent", "ttl": 60},
            {"channel": "rcs", "message_type": "video", "video": {"url": IMAGE}, "from": "acme-agent", "ttl": 60},
        ),
    ],
)
def test_messages_api_body_per_channel(body, expected):
    request, recipient = build({"to": GB_MOBILE, **body})
    assert messages_api_body(request, recipient) == {"to": "447911123456", **expected}


def test_messenger_addresses_a_page_scoped_id_as_is():
    request, recipient = build({"to": "1234567890123", "channel": "messenger", "text": "hi", "from": "998877"})
    assert messages_api_body(request, recipient) == {
        "channel": "messenger",
        "message_type": "text",
        "to": "1234567890123",
        "from": "998877",
        "text": "hi",
    }


def test_each_builder_refuses_the_other_api():
    request, recipient = build({"to": GB_MOBILE, "text": "hi"})
    with pytest.raises(ValueError):
        messages_api_body(request, recipient)
    request, recipient = build({"to": GB_MOBILE, "text": "hi", "api": "messages"})
    with pytest.raises(ValueError):
        sms_api_arguments(request, recipient)
