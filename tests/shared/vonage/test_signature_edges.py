"""Signature and JWS edges that mutation testing found unguarded (issue 19).

- compact JWS: the 16 KiB size limit (exactly at it and one over), exactly three parts, and
  strict base64url (no padding, no ``+``/``/``, no whitespace, one canonical form);
- SMS ``sig``: parameter names sorted by code point, with a vector whose names are in mixed
  case, so a case-insensitive sort gives a different string (and a different signature);
- every secret comparison really goes through ``hmac.compare_digest``, shown by what it is
  called with (a behaviour a test can fail on, not a reading of the source).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from shared.errors import SignatureError
from shared.vonage import _jws
from shared.vonage._jws import b64url_decode, b64url_encode, encode_segments, split_token
from shared.vonage.signatures import sign_params, sign_sms_params, sign_webhook_jwt, verify_sms_signature, verify_webhook_jwt

SECRET = "a-long-signature-secret-for-tests-0123456789"
LIMIT = _jws._MAX_TOKEN_CHARS


def _token_of_length(length: int, secret: str = SECRET) -> tuple[str, bytes]:
    """A genuine HS256 webhook token of exactly ``length`` characters, and the body it signs."""
    body = b'{"ok":true}'
    for filler in range(length, 0, -1):
        claims = {"iat": 1_800_000_000, "iss": "Vonage", "payload_hash": hashlib.sha256(body).hexdigest(), "pad": "x" * filler}
        signing_input = encode_segments({"alg": "HS256", "typ": "JWT"}, claims)
        signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{b64url_encode(signature)}"
        if len(token) == length:
            return token, body
    raise AssertionError("no filler gives that length")


# ---- JWS size, parts and base64url -----------------------------------------------------------


def test_a_token_exactly_at_the_size_limit_is_parsed():
    token, body = _token_of_length(LIMIT)
    assert len(token) == LIMIT == 16 * 1024
    assert verify_webhook_jwt(body, f"Bearer {token}", secret=SECRET, now=1_800_000_000)["iss"] == "Vonage"


def test_a_genuine_token_one_character_over_the_limit_is_refused_before_decoding():
    token, body = _token_of_length(LIMIT + 1)
    with pytest.raises(SignatureError) as info:
        verify_webhook_jwt(body, f"Bearer {token}", secret=SECRET, now=1_800_000_000)
    assert info.value.reason == "malformed"
    assert f"longer than {LIMIT} characters" in info.value.message


def test_a_token_with_a_fourth_part_is_refused_even_when_the_first_three_verify():
    token, body = _token_of_length(400)
    assert verify_webhook_jwt(body, f"Bearer {token}", secret=SECRET, now=1_800_000_000)
    for extra in (".e30", ".", "..x"):
        with pytest.raises(SignatureError) as info:
            verify_webhook_jwt(body, f"Bearer {token}{extra}", secret=SECRET, now=1_800_000_000)
        assert info.value.reason == "malformed"
        assert "three dot-separated parts" in info.value.message and f"found {3 + extra.count('.')}" in info.value.message


def test_a_token_with_two_parts_is_refused():
    with pytest.raises(SignatureError) as info:
        split_token("e30.e30", what="webhook JWT")
    assert info.value.reason == "malformed" and "found 2" in info.value.message


@pytest.mark.parametrize(
    "segment",
    [
        "QQ==",  # padding
        "QQ=",
        "+/8",  # the standard alphabet, not base64url
        "Q Q",  # whitespace
        "QQ\n",
        "QR",  # non-canonical: the unused trailing bits of "QQ" set
        "QUJ",  # non-canonical form of "AB" ("QUI")
        "Q",  # one character cannot encode a byte
        "QQ.",
    ],
)
def test_b64url_decode_accepts_only_strict_unpadded_canonical_base64url(segment):
    with pytest.raises(ValueError):
        b64url_decode(segment)


@pytest.mark.parametrize(("segment", "data"), [("", b""), ("QQ", b"A"), ("QUI", b"AB"), ("QUJD", b"ABC"), ("-_8", b"\xfb\xff")])
def test_b64url_decode_round_trips_canonical_input(segment, data):
    assert b64url_decode(segment) == data
    assert b64url_encode(data) == segment


def test_a_signature_segment_in_a_non_canonical_or_padded_form_is_malformed():
    token, body = _token_of_length(400)
    signing_input, _, signature = token.rpartition(".")
    padded = f"{signing_input}.{signature}="
    last = signature[-1]
    # A 32-byte HMAC is 43 characters: the last one carries 2 unused bits; set one of them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    non_canonical = f"{signing_input}.{signature[:-1]}{twin}"
    assert base64_of(non_canonical.rpartition(".")[2]) == base64_of(signature), "the twin decodes to the same bytes"
    forgeries = [padded, non_canonical]
    standard = f"{signing_input}.{signature.replace('-', '+').replace('_', '/')}"
    if standard != token:  # the signature had a - or _ to swap
        forgeries.append(standard)
    for forged in forgeries:
        with pytest.raises(SignatureError) as info:
            verify_webhook_jwt(body, f"Bearer {forged}", secret=SECRET, now=1_800_000_000)
        assert info.value.reason == "malformed", forged


def base64_of(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@pytest.mark.parametrize("part", ["header", "payload"])
def test_a_padded_header_or_payload_is_malformed(part):
    header, payload = b64url_encode(b'{"alg":"HS256"}'), b64url_encode(json.dumps({"a": 1}).encode())
    segments = {"header": header, "payload": payload}
    segments[part] += "=" * (-len(segments[part]) % 4 or 4)
    with pytest.raises(SignatureError) as info:
        split_token(f"{segments['header']}.{segments['payload']}.", what="webhook JWT")
    assert info.value.reason == "malformed" and f"webhook JWT {part} is not base64url" in info.value.message


# ---- SMS sig: code-point order with mixed-case names ------------------------------------------

MIXED = {"a": "1", "c": "3", "msisdn": "447700900001", "Zed": "z", "B": "2", "timestamp": "1461605396"}
# Code-point order puts every upper-case name first: B, Zed, a, c, msisdn, timestamp.
# A case-insensitive sort would give a, B, c, msisdn, timestamp, Zed.
MIXED_STRING = "&B=2&Zed=z&a=1&c=3&msisdn=447700900001&timestamp=1461605396"
MIXED_EXPECTED = {
    "md5hash": "313f7e2ffbfb0ebe3655d3645bab275c",
    "sha256": "d2914c2885dd3690a60203b5996cb7f7ed5c6f9468664a4bda6ea08ed0f4b795",
}


@pytest.mark.parametrize("method", sorted(MIXED_EXPECTED))
def test_mixed_case_parameter_names_sort_by_code_point(method):
    assert sign_params(MIXED, "secret", method) == MIXED_EXPECTED[method]
    # the vector is our own construction of the documented string, hashed independently
    if method == "md5hash":
        assert MIXED_EXPECTED[method] == hashlib.md5((MIXED_STRING + "secret").encode()).hexdigest()
    else:
        assert MIXED_EXPECTED[method] == hmac.new(b"secret", MIXED_STRING.encode(), "sha256").hexdigest()
    # and the vector tells the orders apart: case-insensitive sorting signs another string
    folded = "".join(f"&{name}={MIXED[name]}" for name in sorted(MIXED, key=str.lower))
    assert folded != MIXED_STRING
    assert hashlib.md5((folded + "secret").encode()).hexdigest() != MIXED_EXPECTED["md5hash"]


def test_a_webhook_signed_over_mixed_case_names_verifies_in_any_order():
    signed = {**dict(reversed(list(MIXED.items()))), "sig": MIXED_EXPECTED["sha256"].upper()}
    verify_sms_signature(signed, secret="secret", method="sha256", now=1461605396)


def test_values_with_ampersand_and_equals_are_replaced_before_signing():
    params = {"text": "a&b=c", "timestamp": "1"}
    expected = hashlib.md5(("&text=a_b_c&timestamp=1" + "s").encode()).hexdigest()
    assert sign_params(params, "s", "md5hash") == expected


# ---- constant-time comparison, shown by behaviour ---------------------------------------------


class _Recorder:
    """Stands in for hmac.compare_digest: the same answer, and a record of its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self._real = hmac.compare_digest

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls.append((a, b))
        return self._real(a, b)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    spy = _Recorder()
    monkeypatch.setattr(hmac, "compare_digest", spy)
    return spy


def test_the_sms_sig_is_compared_with_compare_digest_as_lower_case_bytes(recorder):
    signed = sign_sms_params({"msisdn": "447700900001", "text": "hi"}, secret=SECRET, method="sha256", now=1000)
    signed["sig"] = signed["sig"].upper()
    verify_sms_signature(signed, secret=SECRET, method="sha256", now=1000)
    assert recorder.calls == [(signed["sig"].lower().encode(), signed["sig"].lower().encode())]


def test_a_wrong_sms_sig_and_the_other_method_check_are_compared_with_compare_digest(recorder):
    # md5hash configured, HMAC-MD5 used: both 32 hex digits, so the explanation tries HMAC-MD5
    signed = sign_sms_params({"msisdn": "447700900001", "text": "hi"}, secret=SECRET, method="md5", now=1000)
    with pytest.raises(SignatureError) as info:
        verify_sms_signature(signed, secret=SECRET, method="md5hash", now=1000)
    assert info.value.reason == "unsupported_method"
    received = signed["sig"].encode()
    assert len(recorder.calls) == 2 and all(b == received for _a, b in recorder.calls)
    assert recorder.calls[1][0] == received  # the HMAC-MD5 candidate matched, in constant time


def test_the_jwt_signature_and_payload_hash_are_compared_with_compare_digest(recorder):
    body = b'{"message_uuid":"x"}'
    token = sign_webhook_jwt(body, secret=SECRET, now=1000)
    verify_webhook_jwt(body, f"Bearer {token}", secret=SECRET, now=1000)
    signature = base64_of(token.rpartition(".")[2])
    digest = hashlib.sha256(body).hexdigest().encode()
    assert recorder.calls == [(signature, signature), (digest, digest)]


# ---- the default freshness window ---------------------------------------------------------------


def test_the_default_window_is_five_minutes_either_way():
    signed = sign_sms_params({"msisdn": "447700900001", "text": "hi"}, secret=SECRET, method="sha256", now=1000)
    verify_sms_signature(signed, secret=SECRET, method="sha256", now=1300)  # exactly 300 s old: fresh
    verify_sms_signature(signed, secret=SECRET, method="sha256", now=700)  # 300 s in the future: fresh
    for now in (1301, 699):
        with pytest.raises(SignatureError) as info:
            verify_sms_signature(signed, secret=SECRET, method="sha256", now=now)
        assert info.value.reason == "stale" and "(limit 300 s)" in info.value.message
    body = b"{}"
    token = sign_webhook_jwt(body, secret=SECRET, now=1000)
    assert verify_webhook_jwt(body, f"Bearer {token}", secret=SECRET, now=1300)["iat"] == 1000
    assert verify_webhook_jwt(body, f"Bearer {token}", secret=SECRET, now=700)["iat"] == 1000
    for now in (1301, 699):
        with pytest.raises(SignatureError) as info:
            verify_webhook_jwt(body, f"Bearer {token}", secret=SECRET, now=now)
        assert info.value.reason == "stale"
