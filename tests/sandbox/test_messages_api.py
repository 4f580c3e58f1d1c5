"""The Messages API as the sandbox serves it: credentials, problems, money, limits, status webhooks."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from shared.vonage.signatures import verify_webhook_jwt
from tests.fixtures.sandbox import APPLICATION_ID, SANDBOX_API_KEY, SANDBOX_SIGNATURE_SECRET
from tests.sandbox._helpers import TO, app_token, client, post_json, sms_message


def test_application_jwt_is_accepted(sandbox, rsa_private_pem) -> None:
    response = post_json(sandbox.url, "/v1/messages", sms_message(), authorization=app_token(rsa_private_pem))
    assert response.status_code == 202
    assert set(response.json()) == {"message_uuid"}
    assert sandbox.messages()[0]["auth"] == "jwt"


def test_basic_auth_is_accepted(sandbox) -> None:
    assert post_json(sandbox.url, "/v1/messages", sms_message()).status_code == 202


def test_expired_jwt_is_401_jwt_expired(sandbox, rsa_private_pem) -> None:
    old = app_token(rsa_private_pem, issued=time.time() - 3600)
    response = post_json(sandbox.url, "/v1/messages", sms_message(), authorization=old)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("#jwt-expired")


def test_jwt_of_another_key_or_application_is_401(sandbox, rsa_private_pem) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    for token in (app_token(other_pem), app_token(rsa_private_pem, application_id="another-app")):
        response = post_json(sandbox.url, "/v1/messages", sms_message(), authorization=token)
        assert response.status_code == 401
        assert response.json()["type"] == "https://developer.nexmo.com/api-errors/#unathorized"


def test_no_credentials_is_401(sandbox) -> None:
    with client() as http:
        assert http.post(f"{sandbox.url}/v1/messages", json=sms_message()).status_code == 401


@pytest.mark.parametrize(
    ("body", "invalid"),
    [
        (sms_message(to="+447700900001"), "to"),
        (sms_message(to="12"), "to"),
        (sms_message(text="y" * 3201), "text"),
        (sms_message(text=None), "text"),
        (sms_message(channel="whatsapp", message_type="image"), "image"),
        (sms_message(**{"from": ""}), "from"),
    ],
)
def test_invalid_messages_are_422_with_invalid_parameters(sandbox, body, invalid: str) -> None:
    response = post_json(sandbox.url, "/v1/messages", body)
    assert response.status_code == 422
    assert response.json()["title"] == "Invalid params"
    assert invalid in [p["name"] for p in response.json()["invalid_parameters"]]
    assert sandbox.messages() == []


def test_unknown_channel_and_bad_json_are_422(sandbox) -> None:
    assert post_json(sandbox.url, "/v1/messages", sms_message(channel="pigeon")).json()["type"].endswith("#1100")
    bad = post_json(sandbox.url, "/v1/messages", None, content=b"{oops", headers={"Content-Type": "application/json"})
    assert bad.status_code == 422 and bad.json()["type"].endswith("#invalid-json")


def test_credentials_are_checked_before_the_body(sandbox) -> None:
    headers = {"Authorization": "Basic eDp5", "Content-Type": "application/json"}
    with client() as http:
        assert http.post(f"{sandbox.url}/v1/messages", content=b"{oops", headers=headers).status_code == 401


def test_low_balance_is_402(sandbox_factory) -> None:
    poor = sandbox_factory(balance=Decimal("0.01"))
    response = post_json(poor.url, "/v1/messages", sms_message())
    assert response.status_code == 402
    assert response.json()["title"] == "Low balance"
    assert poor.balance == "0.01000000"


def test_rate_limit_is_429_with_headers(sandbox_factory) -> None:
    frozen = time.time()
    limited = sandbox_factory(rate_limit=1, clock=lambda: frozen)
    assert post_json(limited.url, "/v1/messages", sms_message()).status_code == 202
    response = post_json(limited.url, "/v1/messages", sms_message())
    assert response.status_code == 429
    assert response.json()["title"] == "Rate Limit Hit"
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-RateLimit-Limit"] == "1"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) >= int(frozen)


def test_sms_gets_submitted_then_delivered_signed_with_payload_hash(sandbox, webhook_receiver, rsa_private_pem) -> None:
    answer = post_json(
        sandbox.url, "/v1/messages", sms_message(client_ref="c-9"), authorization=app_token(rsa_private_pem)
    ).json()
    hooks = webhook_receiver.wait_for(2)
    assert [h.json["status"] for h in hooks] == ["submitted", "delivered"]
    for hook in hooks:
        claims = verify_webhook_jwt(
            hook.body, hook.headers["authorization"], secret=SANDBOX_SIGNATURE_SECRET, api_key=SANDBOX_API_KEY
        )
        assert claims["application_id"] == APPLICATION_ID
        body = hook.json
        assert body["message_uuid"] == answer["message_uuid"]
        assert body["to"] == TO and body["from"] == "447700900000" and body["channel"] == "sms"
        assert body["client_ref"] == "c-9"
        assert body["usage"] == {"currency": "EUR", "price": "0.0333"}
        assert body["sms"] == {"count_total": "1"}
        assert body["timestamp"].endswith("Z")


def test_whatsapp_also_gets_read(sandbox, webhook_receiver) -> None:
    post_json(sandbox.url, "/v1/messages", sms_message(channel="whatsapp", text="hola"))
    hooks = webhook_receiver.wait_for(3)
    assert [h.json["status"] for h in hooks] == ["submitted", "delivered", "read"]
    assert sandbox.balance == "9.99000000"


def test_webhook_url_of_the_message_overrides_the_status_url(sandbox, webhook_receiver) -> None:
    post_json(sandbox.url, "/v1/messages", sms_message(webhook_url=f"{webhook_receiver.url}/own"))
    assert {h.path for h in webhook_receiver.wait_for(2)} == {"/own"}


def test_trial_account_accepts_then_rejects_with_1160(sandbox_factory, webhook_receiver) -> None:
    trial = sandbox_factory(trial=True, status_webhook_url=f"{webhook_receiver.url}/status")
    response = post_json(trial.url, "/v1/messages", sms_message())
    assert response.status_code == 202
    hook = webhook_receiver.wait_for(1)[0].json
    assert trial.wait_idle()
    assert len(webhook_receiver.requests) == 1
    assert hook["status"] == "rejected"
    assert hook["error"]["title"] == "1160"
    assert hook["error"]["type"].endswith("#1160")
    assert trial.balance == "10.00000000"
    assert trial.inbox(TO) == []


def test_long_unicode_sms_is_priced_per_part(sandbox, webhook_receiver) -> None:
    post_json(sandbox.url, "/v1/messages", sms_message(text="ç" * 100))  # ç is not GSM-7: UCS-2, 2 parts
    hook = webhook_receiver.wait_for(2)[0].json
    assert hook["sms"] == {"count_total": "2"}
    assert hook["usage"]["price"] == "0.0666"


def test_failover_answers_a_workflow_id(sandbox) -> None:
    body = sms_message(failover=[sms_message(channel="whatsapp")])
    assert set(post_json(sandbox.url, "/v1/messages", body).json()) == {"message_uuid", "workflow_id"}


def test_message_log_keeps_the_json_body(sandbox) -> None:
    post_json(sandbox.url, "/v1/messages", sms_message(sms={"encoding_type": "unicode"}))
    record = sandbox.messages(api="messages")[0]
    assert record["fields"]["sms"] == {"encoding_type": "unicode"}
    assert record["content_type"] == "application/json"
