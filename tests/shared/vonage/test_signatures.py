"""SMS API `sig` and webhook JWT: known-answer vectors, round trips and one test per failure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings

import jwt as pyjwt
import pytest

from shared.errors import ConfigError, SignatureError
from shared.vonage.signatures import (
    SIGNATURE_LEEWAY,
    sign_params,
    sign_sms_params,
    sign_webhook_jwt,
    verify_sms_signature,
    verify_webhook_jwt,
)

METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")

# ---- known-answer vectors: vonage-api.md section 4.2, all three sets --------------------------

SET_1 = {"a": "1", "b": "2", "timestamp": "1461605396"}
SET_1_SECRET = "secret"
SET_1_EXPECTED = {
    "md5hash": "6af838ef94998832dbfc29020b564830",
    "md5": "c15c21ced558c93a226c305f58f902f2",
    "sha1": "3e19a4e6880fdc2c1426bfd0587c98b9532f0210",
    "sha256": "a321e824b9b816be7c3f28859a31749a098713d39f613c80d455bbaffae1cd24",
    "sha512": "812a18f76680fa0fe1b8bd9ee1625466ceb1bd96242e4d050d2cfd9a7b40166c"
    "63ed26ec9702168781b6edcf1633db8ff95af9341701004eec3fcf9550572ee8",
}

SET_2 = {
    "message-timestamp": "2013-11-21 15:27:30",
    "messageId": "020000001B0FE827",
    "msisdn": "14843472194",
    "text": "Test again",
    "timestamp": "1385047698",
    "to": "13239877404",
    "type": "text",
}
SET_2_SECRET = "my_secret_key_for_testing"
SET_2_EXPECTED = {  # upper-case as published
    "md5hash": "d2e7b1dc968737c5998ad624e02f90b7",
    "md5": "DDEBD46008C2D4E93CCE578A332A52D5",
    "sha1": "27D0D05C2876C7CB1720DBCDBA4D492E1E55C09A",
    "sha256": "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330",
}
# The doc gives only the ends of the SHA-512 value; its full value is the one vector we skip.
SET_2_SHA512_PREFIX, SET_2_SHA512_SUFFIX = "e0d3c650", "94fe82"

SET_3 = {"param1": "value1", "param2": "value2", "timestamp": "1234567890"}
SET_3_SECRET = "signature_secret"
SET_3_EXPECTED = {
    "sha256": "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287",
    "md5": "724c2bf6ca423c36e20631b11d1c5753",
}
SET_3_ESCAPED = {"param1": "value&1", "param2": "value=2", "timestamp": "1234567890"}
SET_3_ESCAPED_MD5 = "2bbf0abafb2c55e5af6231513896a2ac"

ALL_VECTORS = (
    [("set1", SET_1, SET_1_SECRET, m, v) for m, v in SET_1_EXPECTED.items()]
    + [("set2", SET_2, SET_2_SECRET, m, v) for m, v in SET_2_EXPECTED.items()]
    + [("set3", SET_3, SET_3_SECRET, m, v) for m, v in SET_3_EXPECTED.items()]
    + [("set3-escaped", SET_3_ESCAPED, SET_3_SECRET, "md5", SET_3_ESCAPED_MD5)]
)


@pytest.mark.parametrize(
    ("params", "secret", "method", "expected"),
    [v[1:] for v in ALL_VECTORS],
    ids=[f"{v[0]}-{v[3]}" for v in ALL_VECTORS],
)
def test_sign_params_matches_published_vector(params, secret, method, expected):
    assert sign_params(params, secret, method) == expected.lower()


def test_sign_params_matches_the_known_ends_of_the_node_sha512_vector():
    value = sign_params(SET_2, SET_2_SECRET, "sha512")
    assert len(value) == 128
    assert value.startswith(SET_2_SHA512_PREFIX) and value.endswith(SET_2_SHA512_SUFFIX)


@pytest.mark.parametrize(
    ("params", "secret", "method", "expected"),
    [v[1:] for v in ALL_VECTORS],
    ids=[f"{v[0]}-{v[3]}" for v in ALL_VECTORS],
)
def test_verify_accepts_published_vector_in_either_case(params, secret, method, expected):
    now = float(params["timestamp"]) + 1
    for sig in (expected.upper(), expected.lower()):
        verify_sms_signature({**params, "sig": sig}, secret=secret, method=method, now=now)


def test_signing_string_is_built_as_documented():
    # Our own construction of the documented string, hashed independently.
    string = "&a=1&b=2&timestamp=1461605396"
    assert sign_params(SET_1, SET_1_SECRET, "md5hash") == hashlib.md5((string + "secret").encode()).hexdigest()
    assert sign_params(SET_1, SET_1_SECRET, "sha256") == hmac.new(b"secret", string.encode(), "sha256").hexdigest()


def test_sign_params_ignores_an_existing_sig_and_sorts_by_code_point():
    with_sig = {**SET_2, "sig": "whatever"}
    assert sign_params(with_sig, SET_2_SECRET, "md5hash") == SET_2_EXPECTED["md5hash"]
    # "message-timestamp" < "messageId" < "msisdn" only in code-point order ('-' < 'I' < 's').
    reordered = dict(reversed(list(SET_2.items())))
    assert sign_params(reordered, SET_2_SECRET, "md5hash") == SET_2_EXPECTED["md5hash"]


def test_sign_params_rejects_unknown_method_naming_the_variable():
    with pytest.raises(ConfigError, match="VONAGE_SIGNATURE_METHOD"):
        sign_params(SET_1, "secret", "sha3")


# ---- SMS round trips and failures ---------------------------------------------------------------

SECRET = "a-long-signature-secret-for-tests-0123456789"
INBOUND = {
    "msisdn": "447700900001",
    "to": "447700900000",
    "messageId": "0A0000001",
    "text": "Hi & bye = ok",
    "type": "text",
}
NOW = 1_700_000_000.0


@pytest.mark.parametrize("method", METHODS)
def test_sms_round_trip_for_every_method(method):
    signed = sign_sms_params(INBOUND, secret=SECRET, method=method, now=NOW)
    assert signed["timestamp"] == str(int(NOW))
    assert signed["text"] == INBOUND["text"]  # values are transmitted unchanged
    verify_sms_signature(signed, secret=SECRET, method=method, now=NOW)


def test_sign_sms_params_keeps_given_timestamp_and_does_not_mutate_input():
    params = {**INBOUND, "timestamp": "1461605396"}
    signed = sign_sms_params(params, secret=SECRET, method="md5hash", now=NOW)
    assert signed["timestamp"] == "1461605396"
    assert "sig" not in params


@pytest.mark.parametrize("method", METHODS)
def test_sms_tampered_value_is_bad_signature(method):
    signed = sign_sms_params(INBOUND, secret=SECRET, method=method, now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_sms_signature({**signed, "text": "Hi & bye = OK"}, secret=SECRET, method=method, now=NOW)
    assert info.value.reason == "bad_signature"


def test_sms_wrong_secret_is_bad_signature_and_message_keeps_secrets_out():
    signed = sign_sms_params(INBOUND, secret=SECRET, method="sha256", now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_sms_signature(signed, secret="another-secret-entirely", method="sha256", now=NOW)
    assert info.value.reason == "bad_signature"
    text = str(info.value)
    for leaked in (SECRET, "another-secret-entirely", signed["sig"], INBOUND["msisdn"]):
        assert leaked not in text


def test_sms_missing_sig():
    with pytest.raises(SignatureError) as info:
        verify_sms_signature({**INBOUND, "timestamp": str(int(NOW))}, secret=SECRET, method="md5hash", now=NOW)
    assert info.value.reason == "missing"


@pytest.mark.parametrize("timestamp", [None, "", "abc", "1.5e9", "-5", "1_700_000_000"])
def test_sms_missing_or_invalid_timestamp_is_malformed(timestamp):
    signed = sign_sms_params(INBOUND, secret=SECRET, method="md5hash", now=NOW)
    params = dict(signed)
    if timestamp is None:
        del params["timestamp"]
    else:
        params["timestamp"] = timestamp
    with pytest.raises(SignatureError) as info:
        verify_sms_signature(params, secret=SECRET, method="md5hash", now=NOW)
    assert info.value.reason == "malformed"


def test_sms_non_hex_sig_is_malformed():
    signed = sign_sms_params(INBOUND, secret=SECRET, method="md5hash", now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_sms_signature({**signed, "sig": "é" * 32}, secret=SECRET, method="md5hash", now=NOW)
    assert info.value.reason == "malformed"


@pytest.mark.parametrize(("offset", "word"), [(SIGNATURE_LEEWAY + 1, "old"), (-(SIGNATURE_LEEWAY + 1), "future")])
def test_sms_stale_and_future_timestamps(offset, word):
    signed = sign_sms_params(INBOUND, secret=SECRET, method="sha1", now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_sms_signature(signed, secret=SECRET, method="sha1", now=NOW + offset)
    assert info.value.reason == "stale"
    assert word in str(info.value)


def test_sms_timestamp_exactly_at_the_limit_passes_and_max_skew_is_configurable():
    signed = sign_sms_params(INBOUND, secret=SECRET, method="sha1", now=NOW)
    verify_sms_signature(signed, secret=SECRET, method="sha1", now=NOW + SIGNATURE_LEEWAY)
    verify_sms_signature(signed, secret=SECRET, method="sha1", now=NOW - SIGNATURE_LEEWAY)
    with pytest.raises(SignatureError):
        verify_sms_signature(signed, secret=SECRET, method="sha1", now=NOW + 11, max_skew=10)


def test_sms_signature_made_with_another_method_says_so():
    # HMAC-SHA256 sig, configured for md5hash: different length.
    signed = sign_sms_params(INBOUND, secret=SECRET, method="sha256", now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_sms_signature(signed, secret=SECRET, method="md5hash", now=NOW)
    assert info.value.reason == "unsupported_method"
    assert "HMAC-SHA256" in str(info.value) and "md5hash" in str(info.value)

    # HMAC-MD5 vs MD5 hash: same length, told apart by recomputing.
    signed = sign_sms_params(INBOUND, secret=SECRET, method="md5", now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_sms_signature(signed, secret=SECRET, method="md5hash", now=NOW)
    assert info.value.reason == "unsupported_method"
    assert "HMAC-MD5" in str(info.value)


def test_sms_stale_is_reported_only_for_genuine_signatures():
    # Wrong secret AND old: the secret is the problem to report first.
    signed = sign_sms_params(INBOUND, secret=SECRET, method="sha1", now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_sms_signature(signed, secret="wrong-secret", method="sha1", now=NOW + 10_000)
    assert info.value.reason == "bad_signature"


def test_sms_empty_secret_is_a_config_error_not_an_open_door():
    # MD5 of the string with nothing appended can be computed by anyone.
    forged = sign_sms_params(INBOUND, secret="", method="md5hash", now=NOW)
    with pytest.raises(ConfigError, match="VONAGE_SIGNATURE_SECRET"):
        verify_sms_signature(forged, secret="", method="md5hash", now=NOW)


# ---- webhook JWT (Messages API / Verify v2) ------------------------------------------------------

BODY = json.dumps({"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "status": "delivered"}).encode()
API_KEY = "abcd1234"
APP_ID = "11111111-2222-4333-8444-555555555555"


def _bearer(token: str) -> str:
    return f"Bearer {token}"


def _hs256(claims: dict, secret: str = SECRET, header: dict | None = None) -> str:
    """A token made with PyJWT, independent of our encoder."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about short HMAC keys in some tests
        return pyjwt.encode(claims, secret, algorithm="HS256", headers=header)


def _claims(**overrides):
    claims = {
        "iat": int(NOW),
        "jti": "c0ffee00-0000-4000-8000-000000000000",
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(BODY).hexdigest(),
        "api_key": API_KEY,
        "application_id": APP_ID,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_sign_webhook_jwt_is_a_standard_hs256_token_with_the_vonage_claims():
    token = sign_webhook_jwt(BODY, secret=SECRET, api_key=API_KEY, application_id=APP_ID, now=NOW)
    assert pyjwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = pyjwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_iat": False})
    assert claims["iat"] == int(NOW)
    assert claims["iss"] == "Vonage"
    assert claims["payload_hash"] == hashlib.sha256(BODY).hexdigest()
    assert claims["api_key"] == API_KEY and claims["application_id"] == APP_ID
    assert len(claims["jti"]) == 36
    other = sign_webhook_jwt(BODY, secret=SECRET, now=NOW)
    assert pyjwt.decode(other, options={"verify_signature": False})["jti"] != claims["jti"]
    assert "api_key" not in pyjwt.decode(other, options={"verify_signature": False})


def test_webhook_round_trip_returns_claims():
    token = sign_webhook_jwt(BODY, secret=SECRET, api_key=API_KEY, application_id=APP_ID, now=NOW)
    claims = verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, api_key=API_KEY, now=NOW + 5)
    assert claims["application_id"] == APP_ID


def test_webhook_token_made_by_pyjwt_verifies():
    verify_webhook_jwt(BODY, _bearer(_hs256(_claims())), secret=SECRET, api_key=API_KEY, now=NOW)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_webhook_missing_authorization(header):
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, header, secret=SECRET, now=NOW)
    assert info.value.reason == "missing"


@pytest.mark.parametrize(
    "header",
    [
        "Basic YWJjOmRlZg==",
        "Bearer",
        "Bearer not-a-jwt",
        "Bearer a.b",
        "Bearer !!!.???.***",
        "Bearer " + base64.urlsafe_b64encode(b"[1]").decode().rstrip("=") + ".e30.sig",
    ],
)
def test_webhook_malformed_authorization(header):
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, header, secret=SECRET, now=NOW)
    assert info.value.reason == "malformed"


def test_webhook_scheme_is_case_insensitive():
    token = sign_webhook_jwt(BODY, secret=SECRET, now=NOW)
    verify_webhook_jwt(BODY, f"bearer {token}", secret=SECRET, now=NOW)


def test_webhook_wrong_secret_is_bad_signature():
    token = sign_webhook_jwt(BODY, secret="someone-elses-signature-secret-xx", api_key=API_KEY, now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, api_key=API_KEY, now=NOW)
    assert info.value.reason == "bad_signature"
    assert SECRET not in str(info.value) and token not in str(info.value)


def test_webhook_altered_claims_are_bad_signature():
    token = sign_webhook_jwt(BODY, secret=SECRET, now=NOW)
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["iat"] += 1
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(f"{header}.{forged_payload}.{sig}"), secret=SECRET, now=NOW)
    assert info.value.reason == "bad_signature"


def test_webhook_altered_body_is_body_hash_mismatch():
    token = sign_webhook_jwt(BODY, secret=SECRET, now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY + b" ", _bearer(token), secret=SECRET, now=NOW)
    assert info.value.reason == "body_hash_mismatch"


def test_webhook_hash_is_of_raw_bytes_not_reserialised_json():
    raw = b'{"status":  "delivered",\n "message_uuid": "x"}'
    token = sign_webhook_jwt(raw, secret=SECRET, now=NOW)
    verify_webhook_jwt(raw, _bearer(token), secret=SECRET, now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(json.dumps(json.loads(raw)).encode(), _bearer(token), secret=SECRET, now=NOW)
    assert info.value.reason == "body_hash_mismatch"


def test_webhook_without_payload_hash_is_refused():
    token = _hs256(_claims(payload_hash=None))
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, now=NOW)
    assert info.value.reason == "body_hash_mismatch"


def test_webhook_payload_hash_in_upper_case_is_accepted():
    token = _hs256(_claims(payload_hash=hashlib.sha256(BODY).hexdigest().upper()))
    verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, now=NOW)


@pytest.mark.parametrize(("offset", "word"), [(SIGNATURE_LEEWAY + 1, "ago"), (-(SIGNATURE_LEEWAY + 1), "future")])
def test_webhook_stale_and_future_iat(offset, word):
    token = sign_webhook_jwt(BODY, secret=SECRET, now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, now=NOW + offset)
    assert info.value.reason == "stale"
    assert word in str(info.value)


def test_webhook_max_age_is_configurable():
    token = sign_webhook_jwt(BODY, secret=SECRET, now=NOW)
    verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, now=NOW + SIGNATURE_LEEWAY)
    with pytest.raises(SignatureError):
        verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, now=NOW + 31, max_age=30)


@pytest.mark.parametrize("iat", [None, "1700000000", True])
def test_webhook_missing_or_non_numeric_iat_is_malformed(iat):
    token = _hs256(_claims(iat=iat))
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, now=NOW)
    assert info.value.reason == "malformed"


def test_webhook_api_key_claim_must_match_when_given():
    token = sign_webhook_jwt(BODY, secret=SECRET, api_key="otherkey", now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, api_key=API_KEY, now=NOW)
    assert info.value.reason == "wrong_key"
    # Not checked when we do not say which key we expect.
    verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, now=NOW)
    # A token with no api_key claim cannot match an expected key.
    bare = sign_webhook_jwt(BODY, secret=SECRET, now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(bare), secret=SECRET, api_key=API_KEY, now=NOW)
    assert info.value.reason == "wrong_key"


def test_webhook_for_another_api_key_with_its_own_secret_is_wrong_key():
    token = sign_webhook_jwt(BODY, secret="sub-account-secret-0123456789abcdef", api_key="subacct1", now=NOW)
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, api_key=API_KEY, now=NOW)
    assert info.value.reason == "wrong_key"


def _unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    def enc(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).decode().rstrip("=")

    return ".".join([enc(json.dumps(header).encode()), enc(json.dumps(claims).encode()), enc(signature)])


def test_webhook_alg_none_is_refused():
    token = _unsigned({"alg": "none", "typ": "JWT"}, _claims())
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, now=NOW)
    assert info.value.reason == "unsupported_method"


def test_webhook_rs256_token_is_refused(rsa_private_pem):
    token = pyjwt.encode(_claims(), rsa_private_pem, algorithm="RS256")
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, now=NOW)
    assert info.value.reason == "unsupported_method"
    assert "HS256" in str(info.value)


def test_webhook_key_confusion_with_public_key_as_secret_is_refused(rsa_public_pem):
    # Classic attack: HMAC-sign with the (public) RSA key; we only ever use the signature secret.
    header = {"alg": "HS256", "typ": "JWT"}
    claims = _claims()
    unsigned = _unsigned(header, claims)
    signing_input = unsigned.rsplit(".", 1)[0].encode()
    mac = hmac.new(rsa_public_pem.encode(), signing_input, "sha256").digest()
    token = _unsigned(header, claims, mac)
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(BODY, _bearer(token), secret=SECRET, now=NOW)
    assert info.value.reason == "bad_signature"


def test_webhook_empty_secret_is_a_config_error():
    token = sign_webhook_jwt(BODY, secret="x", now=NOW)
    with pytest.raises(ConfigError, match="VONAGE_SIGNATURE_SECRET"):
        verify_webhook_jwt(BODY, _bearer(token), secret="", now=NOW)
    with pytest.raises(ConfigError):
        sign_webhook_jwt(BODY, secret="")


def test_signatures_module_does_not_import_httpx_or_pyjwt():
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[3]
    code = (
        "import sys; import shared.vonage.signatures, shared.vonage.auth, shared.vonage.errors;"
        "print(sorted(m for m in ('httpx', 'jwt', 'cryptography') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"
