"""Basic auth, the private-key loader, ApplicationJWT and its verifier."""

from __future__ import annotations

import base64
import json
import threading

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from shared.errors import ConfigError, SignatureError
from shared.vonage.auth import ApplicationJWT, basic_auth_header, load_private_key, verify_application_jwt

APP_ID = "11111111-2222-4333-8444-555555555555"


class FakeClock:
    """A settable clock for token caching tests."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_basic_auth_header_matches_the_sdk_vector():
    # vonage-api.md section 12: qwerasdf:1234qwerasdfzxcv
    assert basic_auth_header("qwerasdf", "1234qwerasdfzxcv") == "Basic cXdlcmFzZGY6MTIzNHF3ZXJhc2Rmenhjdg=="


# ---- load_private_key ---------------------------------------------------------------------------


def _same_key(key: RSAPrivateKey, pem: str) -> bool:
    return key.private_numbers() == load_private_key(pem).private_numbers()


def test_loads_pkcs8_pem(rsa_private_pem, rsa_private_key):
    key = load_private_key(rsa_private_pem)
    assert isinstance(key, RSAPrivateKey)
    assert key.private_numbers() == rsa_private_key.private_numbers()


def test_loads_pkcs1_pem(rsa_private_pem_pkcs1, rsa_private_key):
    assert load_private_key(rsa_private_pem_pkcs1).private_numbers() == rsa_private_key.private_numbers()


@pytest.mark.parametrize("fixture", ["rsa_private_pem", "rsa_private_pem_pkcs1"])
def test_loads_pem_with_literal_backslash_n(fixture, request, rsa_private_key):
    escaped = request.getfixturevalue(fixture).replace("\n", "\\n")
    assert "\n" not in escaped
    assert load_private_key(escaped).private_numbers() == rsa_private_key.private_numbers()


def test_loads_pem_with_crlf_escapes_spaces_and_quotes(rsa_private_pem, rsa_private_key):
    for mangled in (
        rsa_private_pem.replace("\n", "\\r\\n"),
        rsa_private_pem.replace("\n", "\r\n"),
        rsa_private_pem.replace("\n", " "),
        f'"{rsa_private_pem.strip()}"',
        "  \n" + rsa_private_pem + "\n\n",
    ):
        assert load_private_key(mangled).private_numbers() == rsa_private_key.private_numbers()


@pytest.mark.parametrize("fixture", ["rsa_private_pem", "rsa_private_pem_pkcs1"])
def test_loads_base64_of_the_pem(fixture, request, rsa_private_key):
    encoded = base64.b64encode(request.getfixturevalue(fixture).encode()).decode()
    assert load_private_key(encoded).private_numbers() == rsa_private_key.private_numbers()
    # Wrapped base64 (as `base64` prints it) works too.
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert load_private_key(wrapped).private_numbers() == rsa_private_key.private_numbers()


@pytest.mark.parametrize("fixture", ["rsa_private_pem", "rsa_private_pem_pkcs1"])
def test_loads_a_key_file_path(fixture, request, tmp_path, rsa_private_key):
    path = tmp_path / "private.key"
    path.write_text(request.getfixturevalue(fixture))
    assert load_private_key(str(path)).private_numbers() == rsa_private_key.private_numbers()


GARBAGE = [
    "not a key at all",
    "-----BEGIN PRIVATE KEY-----\nAAAAsecretGarbage\n-----END PRIVATE KEY-----\n",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",  # truncated, no END line
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    base64.b64encode(b"just some bytes, not a key at all").decode(),
    "/no/such/dir/vonage-private.key",
    "private.key",
    "%%%%",
]


@pytest.mark.parametrize("value", GARBAGE)
def test_garbage_raises_config_error_naming_the_variable_not_the_value(value):
    with pytest.raises(ConfigError) as info:
        load_private_key(value)
    text = str(info.value)
    assert "VONAGE_PRIVATE_KEY" in text
    assert value.strip() not in text
    for fragment in ("secretGarbage", "MIIEvQ", "vonage-private", "bm90"):
        assert fragment not in text
    # The chain would show up in tracebacks: it must not carry the value either.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_empty_value_says_empty(value):
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY is empty"):
        load_private_key(value)


def test_encrypted_key_says_so(rsa_private_key):
    from cryptography.hazmat.primitives import serialization

    pem = rsa_private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ).decode()
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY .*passphrase"):
        load_private_key(pem)


def test_non_rsa_key_is_refused():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY .*not an RSA key"):
        load_private_key(pem)


# ---- ApplicationJWT ---------------------------------------------------------------------------------


def test_token_is_rs256_with_the_documented_claims(rsa_private_pem, rsa_public_pem):
    clock = FakeClock()
    token = ApplicationJWT(APP_ID, rsa_private_pem, clock=clock).token()
    assert pyjwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}
    # Verified by PyJWT, an implementation independent of ours.
    claims = pyjwt.decode(
        token, rsa_public_pem, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert set(claims) == {"application_id", "iat", "jti", "exp"}
    assert claims["application_id"] == APP_ID
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] == int(clock.now) + 900
    assert len(claims["jti"]) == 36 and claims["jti"].count("-") == 4


def test_token_accepts_a_key_object_and_pkcs1_text(rsa_private_key, rsa_private_pem_pkcs1, rsa_public_pem):
    for key in (rsa_private_key, rsa_private_pem_pkcs1):
        token = ApplicationJWT(APP_ID, key).token()
        pyjwt.decode(token, rsa_public_pem, algorithms=["RS256"])


def test_authorization_is_bearer_token(rsa_private_pem):
    app = ApplicationJWT(APP_ID, rsa_private_pem, clock=FakeClock())
    assert app.authorization() == f"Bearer {app.token()}"


def test_token_is_cached_until_refresh_margin_before_expiry(rsa_private_pem):
    clock = FakeClock()
    app = ApplicationJWT(APP_ID, rsa_private_pem, ttl=900, refresh_margin=60, clock=clock)
    first = app.token()
    clock.now += 839  # 61 s before exp
    assert app.token() == first
    clock.now += 1  # exactly refresh_margin before exp
    second = app.token()
    assert second != first
    decoded = pyjwt.decode(second, options={"verify_signature": False})
    assert decoded["iat"] == int(clock.now)
    assert decoded["jti"] != pyjwt.decode(first, options={"verify_signature": False})["jti"]
    assert app.token() == second


def test_token_is_resigned_when_the_clock_goes_backwards(rsa_private_pem):
    clock = FakeClock()
    app = ApplicationJWT(APP_ID, rsa_private_pem, clock=clock)
    first = app.token()
    clock.now -= 120
    assert app.token() != first


def test_token_is_signed_once_across_threads(rsa_private_pem, monkeypatch):
    app = ApplicationJWT(APP_ID, rsa_private_pem, clock=FakeClock())
    calls = []
    original = app._sign

    def counting_sign(now):
        calls.append(now)
        return original(now)

    monkeypatch.setattr(app, "_sign", counting_sign)
    tokens = []
    threads = [threading.Thread(target=lambda: tokens.append(app.token())) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(set(tokens)) == 1


def test_bad_private_key_surfaces_as_config_error_on_first_token():
    app = ApplicationJWT(APP_ID, "definitely not a key")
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY"):
        app.token()


def test_repr_hides_the_key(rsa_private_pem):
    app = ApplicationJWT(APP_ID, rsa_private_pem)
    app.token()
    assert "PRIVATE" not in repr(app) and app.token() not in repr(app)


@pytest.mark.parametrize(("ttl", "margin"), [(10, 0), (100_000, 60), (900, 900), (900, -1)])
def test_ttl_and_margin_are_validated(ttl, margin, rsa_private_pem):
    with pytest.raises(ValueError):
        ApplicationJWT(APP_ID, rsa_private_pem, ttl=ttl, refresh_margin=margin)


def test_missing_application_id_is_a_config_error(rsa_private_pem):
    with pytest.raises(ConfigError, match="VONAGE_APPLICATION_ID"):
        ApplicationJWT("", rsa_private_pem)


# ---- verify_application_jwt -------------------------------------------------------------------


def test_verify_application_jwt_round_trip(rsa_private_pem, rsa_public_pem):
    clock = FakeClock()
    token = ApplicationJWT(APP_ID, rsa_private_pem, clock=clock).token()
    claims = verify_application_jwt(token, rsa_public_pem, application_id=APP_ID, now=clock.now + 10)
    assert claims["application_id"] == APP_ID
    # With the Bearer prefix, and with a key object.
    verify_application_jwt(f"Bearer {token}", rsa_public_pem, now=clock.now)


def test_verify_application_jwt_accepts_pyjwt_tokens(rsa_private_pem, rsa_public_pem):
    token = pyjwt.encode(
        {"application_id": APP_ID, "iat": 100, "jti": "x", "exp": 1000}, rsa_private_pem, algorithm="RS256"
    )
    assert verify_application_jwt(token, rsa_public_pem, now=500)["jti"] == "x"


def test_verify_application_jwt_wrong_public_key(rsa_private_pem, rsa_other_public_pem):
    token = ApplicationJWT(APP_ID, rsa_private_pem, clock=FakeClock()).token()
    with pytest.raises(SignatureError) as info:
        verify_application_jwt(token, rsa_other_public_pem, now=FakeClock().now)
    assert info.value.reason == "bad_signature"


def test_verify_application_jwt_expired_and_future(rsa_private_pem, rsa_public_pem):
    clock = FakeClock()
    token = ApplicationJWT(APP_ID, rsa_private_pem, ttl=900, clock=clock).token()
    with pytest.raises(SignatureError) as info:
        verify_application_jwt(token, rsa_public_pem, now=clock.now + 900)
    assert info.value.reason == "stale" and "expired" in str(info.value)
    with pytest.raises(SignatureError) as info:
        verify_application_jwt(token, rsa_public_pem, now=clock.now - 3600)
    assert info.value.reason == "stale" and "future" in str(info.value)


def test_verify_application_jwt_other_application(rsa_private_pem, rsa_public_pem):
    clock = FakeClock()
    token = ApplicationJWT(APP_ID, rsa_private_pem, clock=clock).token()
    with pytest.raises(SignatureError) as info:
        verify_application_jwt(token, rsa_public_pem, application_id="another-app", now=clock.now)
    assert info.value.reason == "wrong_key"


def test_verify_application_jwt_refuses_hs256_and_none(rsa_public_pem):
    # An HS256 token "signed" with the public key must not pass as RS256.
    def seg(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"application_id": APP_ID, "iat": 1, "jti": "x"}
    for header in ({"alg": "HS256", "typ": "JWT"}, {"alg": "none"}):
        token = f"{seg(header)}.{seg(claims)}.c2ln"
        with pytest.raises(SignatureError) as info:
            verify_application_jwt(token, rsa_public_pem, now=2)
        assert info.value.reason == "unsupported_method"


@pytest.mark.parametrize("token", ["", "Bearer ", "abc", "a.b.c"])
def test_verify_application_jwt_missing_or_malformed(token, rsa_public_pem):
    with pytest.raises(SignatureError) as info:
        verify_application_jwt(token, rsa_public_pem)
    assert info.value.reason in ("missing", "malformed")
    assert info.value.reason == ("missing" if not token.replace("Bearer", "").strip() else "malformed")


def test_verify_application_jwt_requires_application_id_and_iat(rsa_private_pem, rsa_public_pem):
    for claims in ({"iat": 1, "jti": "x"}, {"application_id": APP_ID, "jti": "x"}):
        token = pyjwt.encode(claims, rsa_private_pem, algorithm="RS256")
        with pytest.raises(SignatureError) as info:
            verify_application_jwt(token, rsa_public_pem, now=2)
        assert info.value.reason == "malformed"
