"""Conformance: the official Vonage Python SDK (4.x) works against the sandbox unchanged.

The SDK always builds ``https://{host}`` URLs, so the sandbox serves HTTPS with its generated
CA, and ``REQUESTS_CA_BUNDLE`` makes the SDK's requests session trust it. Hosts are set
through the SDK's own ``HttpClientOptions(api_host=..., rest_host=...)``.
"""

from __future__ import annotations

import pytest

from shared.vonage.signatures import verify_webhook_jwt
from tests.fixtures.sandbox import (
    APPLICATION_ID,
    SANDBOX_API_KEY,
    SANDBOX_API_SECRET,
    SANDBOX_SIGNATURE_SECRET,
)

vonage = pytest.importorskip("vonage", reason="the official SDK is a test-only dependency (requirements-dev.txt)")

TO = "447700900001"
SENDER = "447700900000"


@pytest.fixture
def sdk(sandbox_factory, webhook_receiver, rsa_private_pem, monkeypatch):  # type: ignore[no-untyped-def]
    box = sandbox_factory(
        tls=True,
        application_id=APPLICATION_ID,
        private_key=rsa_private_pem,
        status_webhook_url=f"{webhook_receiver.url}/status",
        verify_callback_url=f"{webhook_receiver.url}/verify",
    )
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", box.ca_file)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    from vonage import Auth, HttpClientOptions, Vonage

    client = Vonage(
        Auth(
            api_key=SANDBOX_API_KEY,
            api_secret=SANDBOX_API_SECRET,
            application_id=APPLICATION_ID,
            private_key=rsa_private_pem,
        ),
        HttpClientOptions(api_host=box.host, rest_host=box.host, timeout=10),
    )
    return client, box


def test_sdk_sends_an_sms_with_the_sms_api(sdk, webhook_receiver) -> None:
    from vonage_sms import SmsMessage

    client, box = sdk
    response = client.sms.send(SmsMessage(to=TO, from_="ACME", text="Hello from the SDK", client_ref="sdk-1"))
    assert response.message_count == "1"
    assert response.messages[0].status == "0"
    assert response.messages[0].client_ref == "sdk-1"
    record = box.messages(api="sms")[0]
    assert record["auth"] == "basic"
    assert record["fields"]["client-ref"] == "sdk-1"
    receipt = webhook_receiver.wait_for(1)[0].fields
    assert receipt["messageId"] == response.messages[0].message_id


def test_sdk_sends_messages_api_sms_and_whatsapp(sdk, webhook_receiver) -> None:
    from vonage_messages import Sms, WhatsappText

    client, box = sdk
    sms = client.messages.send(Sms(to=TO, from_=SENDER, text="Hello over Messages"))
    whatsapp = client.messages.send(WhatsappText(to=TO, from_=SENDER, text="Hello on WhatsApp"))
    assert sms.message_uuid != whatsapp.message_uuid
    records = box.messages(api="messages")
    assert [(r["channel"], r["auth"]) for r in records] == [("sms", "jwt"), ("whatsapp", "jwt")]
    hooks = webhook_receiver.wait_for(5)  # sms: submitted, delivered; whatsapp: + read
    statuses = {(h.json["message_uuid"], h.json["status"]) for h in hooks}
    assert (whatsapp.message_uuid, "read") in statuses
    for hook in hooks:
        verify_webhook_jwt(hook.body, hook.headers["authorization"], secret=SANDBOX_SIGNATURE_SECRET)


def test_sdk_starts_and_checks_a_verify_v2_request(sdk, webhook_receiver) -> None:
    from vonage_verify import SmsChannel, VerifyRequest

    client, box = sdk
    started = client.verify.start_verification(VerifyRequest(brand="ACME", workflow=[SmsChannel(to=TO)]))
    code = box.last_code(TO)
    assert code is not None
    checked = client.verify.check_code(started.request_id, code)
    assert checked.request_id == started.request_id
    assert checked.status == "completed"
    summary = webhook_receiver.wait_for(1, where=lambda r: r.json.get("type") == "summary")[0].json
    assert summary["request_id"] == started.request_id and summary["status"] == "completed"


def test_sdk_sees_vonage_errors(sdk) -> None:
    from vonage_http_client.errors import HttpRequestError
    from vonage_verify import SmsChannel, VerifyRequest

    client, box = sdk
    started = client.verify.start_verification(VerifyRequest(brand="ACME", workflow=[SmsChannel(to=TO)]))
    with pytest.raises(HttpRequestError) as caught:
        client.verify.check_code(started.request_id, "0000" if box.last_code(TO) != "0000" else "1111")
    assert caught.value.response.status_code == 400
