"""Webhook authentication modes: signature, JWT, URL token, explicit unsigned; every refusal has a reason."""

from __future__ import annotations

import json
import time

import pytest

from shared.config import Settings
from shared.errors import ConfigError, SignatureError
from shared.webhooks.auth import authenticate_webhook, describe_modes
from tests.fixtures.webhooks import API_KEY, SIGNATURE_SECRET, WEBHOOK_TOKEN, sms_sig, webhook_jwt

NOW = 1_800_000_000

# Known-answer vector of vonage-api.md 4.2 (inbound-SMS-like parameters).
VECTOR_PARAMS = {
    "message-timestamp": "2013-11-21 15:27:30",
    "messageId": "020000001B0FE827",
    "msisdn": "14843472194",
    "text": "Test again",
    "timestamp": "1385047698",
    "to": "13239877404",
    "type": "text",
}
VECTOR_SECRET = "my_secret_key_for_testing"
VECTORS = {
    "md5hash": "d2e7b1dc968737c5998ad624e02f90b7",
    "md5": "DDEBD46008C2D4E93CCE578A332A52D5",
    "sha1": "27D0D05C2876C7CB1720DBCDBA4D492E1E55C09A",
    "sha256": "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330",
}
SHA512_PARAMS = {"a": "1", "b": "2", "timestamp": "1461605396"}
SHA512_SIG = (
    "812a18f76680fa0fe1b8bd9ee1625466ceb1bd96242e4d050d2cfd9a7b40166c"
    "63ed26ec9702168781b6edcf1633db8ff95af9341701004eec3fcf9550572ee8"
)


def settings(**overrides):
    base = {"api_key": API_KEY, "signature_secret": SIGNATURE_SECRET, "signature_method": "md5hash"}
    base.update(overrides)
    return Settings(**base)


def auth(settings_, *, body=b"", authorization=None, params=None, token=None, now=NOW):
    return authenticate_webhook(body=body, authorization=authorization, params=params, token=token, settings=settings_, now=now)


@pytest.mark.parametrize("method", sorted(VECTORS))
def test_known_answer_vectors_verify_for_each_method(method):
    params = {**VECTOR_PARAMS, "sig": VECTORS[method]}
    result = auth(settings(signature_secret=VECTOR_SECRET, signature_method=method), params=params, now=1385047698)
    assert result.mode == "signature"


def test_sha512_known_answer_vector():
    result = auth(settings(signature_secret="secret", signature_method="sha512"),
                  params={**SHA512_PARAMS, "sig": SHA512_SIG}, now=1461605396)
    assert result.mode == "signature"


def test_our_test_signer_agrees_with_the_vectors():
    for method, expected in VECTORS.items():
        assert sms_sig(VECTOR_PARAMS, VECTOR_SECRET, method) == expected.lower()


def test_a_tampered_sms_parameter_is_refused():
    params = {**VECTOR_PARAMS, "text": "Test agaim", "sig": VECTORS["md5hash"]}
    with pytest.raises(SignatureError) as info:
        auth(settings(signature_secret=VECTOR_SECRET), params=params, now=1385047698)
    assert info.value.reason == "bad_signature"


def test_a_replayed_sms_webhook_is_stale():
    params = {**VECTOR_PARAMS, "sig": VECTORS["md5hash"]}
    with pytest.raises(SignatureError) as info:
        auth(settings(signature_secret=VECTOR_SECRET), params=params, now=1385047698 + 301)
    assert info.value.reason == "stale"


def test_the_wrong_method_is_named():
    params = {**VECTOR_PARAMS, "sig": VECTORS["sha256"]}
    with pytest.raises(SignatureError) as info:
        auth(settings(signature_secret=VECTOR_SECRET, signature_method="md5hash"), params=params, now=1385047698)
    assert info.value.reason == "unsupported_method"


def jwt_header(body, **kwargs):
    return "Bearer " + webhook_jwt(body, **kwargs)


def test_a_valid_webhook_jwt_is_accepted_with_its_claims():
    body = json.dumps({"message_uuid": "u"}).encode()
    result = auth(settings(), body=body, authorization=jwt_header(body, iat=NOW))
    assert result.mode == "jwt" and result.claims["api_key"] == API_KEY


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda body: jwt_header(body + b" ", iat=NOW), "body_hash_mismatch"),
        (lambda body: jwt_header(body, iat=NOW, secret="another-secret-entirely-0123456789abcdef"), "bad_signature"),
        (lambda body: jwt_header(body, iat=NOW - 301), "stale"),
        (lambda body: jwt_header(body, iat=NOW + 301), "stale"),
        (lambda body: jwt_header(body, iat=NOW, api_key="otherkey"), "wrong_key"),
        (lambda body: "Bearer not-a-jwt", "malformed"),
    ],
    ids=["altered-body", "wrong-secret", "too-old", "too-new", "other-api-key", "garbage"],
)
def test_jwt_failures_have_precise_reasons(make, reason):
    body = b'{"message_uuid":"u"}'
    with pytest.raises(SignatureError) as info:
        auth(settings(), body=body, authorization=make(body))
    assert info.value.reason == reason
    assert SIGNATURE_SECRET not in info.value.message


def test_token_mode_accepts_the_right_token_only():
    configured = settings(signature_secret=None, webhook_token=WEBHOOK_TOKEN)
    assert auth(configured, params={"msisdn": "1"}, token=WEBHOOK_TOKEN).mode == "token"
    with pytest.raises(SignatureError) as info:
        auth(configured, params={"msisdn": "1"}, token=WEBHOOK_TOKEN + "x")
    assert info.value.reason == "bad_token"
    with pytest.raises(SignatureError) as info:
        auth(configured, params={"msisdn": "1"})
    assert info.value.reason == "missing"


def test_a_valid_token_accepts_a_request_whose_signature_cannot_be_checked():
    configured = settings(webhook_token=WEBHOOK_TOKEN)
    params = {**VECTOR_PARAMS, "sig": "0" * 32}
    assert auth(configured, params=params, token=WEBHOOK_TOKEN).mode == "token"


def test_unsigned_requests_are_refused_by_default():
    with pytest.raises(SignatureError) as info:
        auth(settings(), params={"msisdn": "1"})
    assert info.value.reason == "missing"


def test_no_mode_configured_is_a_config_error_not_an_open_door():
    with pytest.raises(ConfigError):
        auth(settings(signature_secret=None), params={"msisdn": "1"})


def test_allow_unsigned_accepts_bare_requests_but_not_wrong_credentials():
    local = settings(webhook_allow_unsigned=True, webhook_token=WEBHOOK_TOKEN)
    assert auth(local, params={"msisdn": "1"}).mode == "unsigned"
    with pytest.raises(SignatureError):
        auth(local, params={"msisdn": "1"}, token="wrong")
    body = b"{}"
    with pytest.raises(SignatureError):
        auth(local, body=body, authorization=jwt_header(body, iat=NOW, secret="nope-nope-nope-nope-nope-nope-nope-nope"))


def test_modes_are_described_without_secrets():
    words = " ".join(describe_modes(settings(webhook_token=WEBHOOK_TOKEN, webhook_allow_unsigned=True)))
    assert "signature" in words and "token" in words and "local use only" in words
    assert SIGNATURE_SECRET not in words and WEBHOOK_TOKEN not in words


def test_real_clock_is_used_when_now_is_not_given():
    body = b"{}"
    assert authenticate_webhook(body=body, authorization=jwt_header(body, iat=time.time()), params=None, token=None,
                                settings=settings()).mode == "jwt"
