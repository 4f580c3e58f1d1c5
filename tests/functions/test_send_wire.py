"""The exact fields Vonage receives per API and channel, and how we authenticate, as the local
sandbox recorded them over HTTP (vonage-api.md 1.2, 1.3, 5.2-5.4).

The sandbox checks the credentials the way Vonage does: ``auth == "basic"`` means it verified
``Authorization: Basic base64(key:secret)``; ``auth == "jwt"`` means it verified an RS256
application JWT against the application's public key.
"""

from __future__ import annotations

import pytest

from tests.fixtures.send import BRAND, GB_MOBILE

IMAGE = "https://cdn.example/cat.jpg"


def only_request(stack, api):
    requests = stack.vonage_requests(api=api)
    assert len(requests) == 1, requests
    return requests[0]


def test_sms_api_gsm_text_sends_form_fields_without_type_and_with_basic_auth(send_stack):
    response = send_stack.http.post({"to": "+44 7911 123456", "text": "Hello {you} €5", "api": "sms"})
    assert response.status_code == 202
    request = only_request(send_stack, "sms")
    assert request["content_type"] == "application/x-www-form-urlencoded"
    assert request["auth"] == "basic"
    assert request["fields"] == {
        "from": BRAND,
        "to": "447911123456",
        "text": "Hello {you} €5",
        "status-report-req": "true",
    }


def test_sms_api_sets_type_unicode_only_when_needed_and_converts_ttl_to_milliseconds(send_stack):
    send_stack.configure(STATUS_WEBHOOK_URL=f"{send_stack.receiver.url}/status")
    response = send_stack.http.post(
        {"to": GB_MOBILE, "text": "Olá, ça va? 😀", "api": "sms", "ttl": 3600, "client_ref": "ref-1", "from": "Acme"}
    )
    assert response.status_code == 202
    result = response.get_json()
    assert result["encoding"] == "UCS-2"
    assert [(c["char"], c["position"]) for c in result["unicode_characters"]] == [("á", 2), ("ç", 5), ("😀", 12)]
    assert only_request(send_stack, "sms")["fields"] == {
        "from": "Acme",
        "to": "447911123456",
        "text": "Olá, ça va? 😀",
        "type": "unicode",
        "client-ref": "ref-1",
        "ttl": "3600000",
        "callback": f"{send_stack.receiver.url}/status",
        "status-report-req": "true",
    }


def test_messages_api_sms_sends_json_with_a_jwt_and_ttl_in_seconds(send_stack):
    send_stack.configure(STATUS_WEBHOOK_URL=f"{send_stack.receiver.url}/status")
    response = send_stack.http.post({"to": GB_MOBILE, "text": "Hi ç", "ttl": 3600, "client_ref": "ref-2"})
    assert response.status_code == 202
    body = response.get_json()
    request = only_request(send_stack, "messages")
    assert request["content_type"] == "application/json"
    assert request["auth"] == "jwt"
    assert request["fields"] == {
        "channel": "sms",
        "message_type": "text",
        "to": "447911123456",
        "from": BRAND,
        "text": "Hi ç",
        "client_ref": "ref-2",
        "ttl": 3600,
        "webhook_url": f"{send_stack.receiver.url}/status",
    }
    assert body["message_uuid"] == send_stack.sandbox.messages(api="messages")[0]["id"]


def test_without_an_application_the_default_is_the_sms_api(send_stack):
    send_stack.configure(VONAGE_APPLICATION_ID=None, VONAGE_PRIVATE_KEY=None)
    assert send_stack.http.post({"to": GB_MOBILE, "text": "hi"}).get_json()["api"] == "sms"
    assert only_request(send_stack, "sms")["auth"] == "basic"


def test_the_messages_api_without_an_application_uses_basic_auth(send_stack):
    send_stack.configure(VONAGE_APPLICATION_ID=None, VONAGE_PRIVATE_KEY=None)
    assert send_stack.http.post({"to": GB_MOBILE, "text": "hi", "api": "messages"}).status_code == 202
    assert only_request(send_stack, "messages")["auth"] == "basic"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param(
            {"channel": "mms", "image": {"url": IMAGE, "caption": "A cat"}, "ttl": 600, "from": "14155550100"},
            {"channel": "mms", "message_type": "image", "image": {"url": IMAGE, "caption": "A cat"}, "ttl": 600,
             "from": "14155550100"},
            id="mms-image",
        ),
        pytest.param(
            {"channel": "whatsapp", "text": "Your table is ready"},
            {"channel": "whatsapp", "message_type": "text", "text": "Your table is ready", "from": BRAND},
            id="whatsapp-text",
        ),
        pytest.param(
            {"channel": "whatsapp", "template": {"name": "order_update", "parameters": ["17", "Monday"], "locale": "en_GB"}},
            {"channel": "whatsapp", "message_type": "template",
             "template": {"name": "order_update", "parameters": ["17", "Monday"]},
             "whatsapp": {"locale": "en_GB"}, "from": BRAND},
            id="whatsapp-template",
        ),
        pytest.param(
            {"channel": "whatsapp", "audio": {"url": "https://cdn.example/a.mp3"}},
            {"channel": "whatsapp", "message_type": "audio", "audio": {"url": "https://cdn.example/a.mp3"}, "from": BRAND},
            id="whatsapp-audio",
        ),
        pytest.param(
            {"channel": "viber", "text": "Hi", "from": "acme", "ttl": 600},
            {"channel": "viber_service", "message_type": "text", "text": "Hi", "from": "acme", "viber_service": {"ttl": 600}},
            id="viber-text",
        ),
        pytest.param(
            {"channel": "viber", "file": {"url": "https://cdn.example/m.pdf", "name": "menu.pdf"}, "from": "acme"},
            {"channel": "viber_service", "message_type": "file", "file": {"url": "https://cdn.example/m.pdf", "name": "menu.pdf"},
             "from": "acme"},
            id="viber-file",
        ),
        pytest.param(
            {"channel": "rcs", "text": "Hi", "from": "acmeagent", "ttl": 60},
            {"channel": "rcs", "message_type": "text", "text": "Hi", "from": "acmeagent", "ttl": 60},
            id="rcs-text",
        ),
        pytest.param(
            {"channel": "rcs", "video": {"url": "https://cdn.example/v.mp4"}, "from": "acmeagent"},
            {"channel": "rcs", "message_type": "video", "video": {"url": "https://cdn.example/v.mp4"}, "from": "acmeagent"},
            id="rcs-video",
        ),
    ],
)
def test_messages_api_fields_per_channel(send_stack, body, fields):
    # Wire fields only: the WhatsApp 24-hour window is tested in test_failover.py.
    send_stack.configure(SEND_WHATSAPP_WINDOW_CHECK="false")
    response = send_stack.http.post({"to": GB_MOBILE, **body})
    assert response.status_code == 202, response.get_json()
    request = only_request(send_stack, "messages")
    assert request["auth"] == "jwt"
    assert request["fields"] == {"to": "447911123456", **fields}
    result = response.get_json()
    assert result["channel"] == body["channel"] and result["api"] == "messages"
    assert "encoding" not in result  # the SMS analysis is for SMS only


def test_messenger_sends_to_a_page_scoped_id(send_stack):
    response = send_stack.http.post({"to": "24681357902468", "channel": "messenger", "text": "Hi", "from": "1357924680"})
    assert response.status_code == 202
    assert only_request(send_stack, "messages")["fields"] == {
        "channel": "messenger",
        "message_type": "text",
        "to": "24681357902468",
        "from": "1357924680",
        "text": "Hi",
    }
