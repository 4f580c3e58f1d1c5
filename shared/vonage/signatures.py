"""Vonage webhook and request signatures, as plain functions of bytes, dicts, secrets and time.

Two schemes (vonage-api.md sections 4 and 6.3):

- SMS API ``sig``: a digest of the sorted parameters with the account *signature secret*,
  by MD5 hash (``md5hash``, the dashboard default) or HMAC-MD5/SHA1/SHA256/SHA512. Used on
  signed inbound SMS and delivery receipts (and optionally on outbound SMS requests).
- Messages API and Verify v2 webhooks: ``Authorization: Bearer <JWT>``, HS256 with the same
  signature secret, claims ``iat``, ``jti``, ``iss``, ``payload_hash`` (SHA-256 hex of the raw
  body), ``api_key`` and ``application_id``.

Every check raises ``SignatureError`` whose ``reason`` says what failed, so a user can tell a
wrong secret from a wrong algorithm, an altered body or a skewed clock:

    missing             no signature at all
    malformed           no/invalid timestamp, token not a JWT, claim missing or of the wrong type
    unsupported_method  signed with another algorithm than the one configured (or JWT alg not HS256)
    bad_signature       right shape, wrong value: another secret, or the parameters were altered
    body_hash_mismatch  JWT genuine but the body is not the one it was issued for
    stale               timestamp / iat too old or too far in the future (clock skew or replay)
    wrong_key           signed for a different API key

Messages never contain a secret, a signature value or the signed parameters. No Flask here,
and no PyJWT: HS256 is the standard library's ``hmac`` (see ``shared.vonage._jws``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from shared.config import SIGNATURE_METHODS
from shared.errors import ConfigError, SignatureError
from shared.vonage._jws import b64url_encode, encode_segments, split_token

__all__ = [
    "SIGNATURE_LEEWAY",
    "sign_params",
    "sign_sms_params",
    "sign_webhook_jwt",
    "verify_sms_signature",
    "verify_webhook_jwt",
]

# Java SDK's RequestSigning allows +-5 minutes; Vonage documents no window (vonage-api.md 4.4).
SIGNATURE_LEEWAY = 300

# method name -> hashlib constructor; "md5hash" is plain MD5 of the string with the secret appended.
_HMAC_DIGESTS: dict[str, Any] = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
_METHOD_NAMES = {
    "md5hash": "MD5 hash",
    "md5": "HMAC-MD5",
    "sha1": "HMAC-SHA1",
    "sha256": "HMAC-SHA256",
    "sha512": "HMAC-SHA512",
}
# Hex length of each digest: a signature of another length cannot come from the configured method.
_HEX_LENGTHS = {"md5hash": 32, "md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-fA-F]+")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


# ---- SMS API `sig` -------------------------------------------------------------------


def sign_params(params: Mapping[str, str], secret: str, method: str) -> str:
    """The SMS API ``sig`` for ``params``, as lower-case hex (vonage-api.md section 4.2).

    Drops ``sig``; sorts names by code point; in values replaces ``&`` and ``=`` with ``_``;
    joins ``&name=value`` pairs (the string starts with ``&``). ``md5hash`` is MD5 of the string
    with the secret appended; ``md5``/``sha1``/``sha256``/``sha512`` are HMACs keyed by the secret.
    Values are used as given: pass decoded (not URL-encoded) strings. Raises ConfigError for an
    unknown method.
    """
    method = _normalise_method(method)
    message = _string_to_sign(params)
    if method == "md5hash":
        return hashlib.md5((message + secret).encode("utf-8")).hexdigest()
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), _HMAC_DIGESTS[method]).hexdigest()


def _string_to_sign(params: Mapping[str, str]) -> str:
    pairs = []
    for name in sorted(params):  # str ordering is code-point ordering, as the docs require
        if name == "sig":
            continue
        value = str(params[name]).replace("&", "_").replace("=", "_")
        pairs.append(f"&{name}={value}")
    return "".join(pairs)


def _normalise_method(method: str) -> str:
    normalised = (method or "").strip().lower()
    if normalised not in _HEX_LENGTHS:
        raise ConfigError(f"VONAGE_SIGNATURE_METHOD must be one of {', '.join(SIGNATURE_METHODS)}")
    return normalised


def sign_sms_params(
    params: Mapping[str, str],
    *,
    secret: str,
    method: str,
    now: float | None = None,
) -> dict[str, str]:
    """A copy of ``params`` with ``timestamp`` (unix seconds, when absent) and ``sig`` added.

    Used by the local sandbox to sign webhooks the way Vonage does, and by tests.
    """
    signed = {name: str(value) for name, value in params.items() if name != "sig"}
    if not signed.get("timestamp"):
        signed["timestamp"] = str(int(time.time() if now is None else now))
    signed["sig"] = sign_params(signed, secret, method)
    return signed


def verify_sms_signature(
    params: Mapping[str, str],
    *,
    secret: str,
    method: str,
    max_skew: float = SIGNATURE_LEEWAY,
    now: float | None = None,
) -> None:
    """Check the ``sig`` of a signed SMS API webhook (inbound SMS or delivery receipt).

    ``params`` are the decoded webhook parameters, whether they came as a query string, a form
    or JSON. Raises SignatureError (reasons: missing, malformed, unsupported_method,
    bad_signature, stale) or ConfigError when the secret or method is not configured.
    The signature is checked before the timestamp, so ``stale`` means "genuine but too old or
    too new": a clock problem or a replay, not a wrong secret.
    """
    if not secret:
        # An empty HMAC key (or MD5 with nothing appended) can be computed by anyone.
        raise ConfigError("VONAGE_SIGNATURE_SECRET is not set: signed SMS webhooks cannot be checked")
    method = _normalise_method(method)
    received = params.get("sig")
    if received is None or not str(received).strip():
        raise SignatureError("missing", "the webhook has no sig parameter (signed webhooks may not be enabled)")
    received = str(received).strip()
    timestamp = params.get("timestamp")
    if timestamp is None or not str(timestamp).strip():
        raise SignatureError("malformed", "the signed webhook has no timestamp parameter")
    if not _TIMESTAMP.fullmatch(str(timestamp).strip()):
        raise SignatureError("malformed", "the webhook timestamp is not unix seconds")
    if not _HEX.fullmatch(received):
        raise SignatureError("malformed", "the webhook sig is not a hex digest")

    expected = sign_params(params, secret, method)
    # Vonage may send upper-case hex (spec example); compare as lower-case ASCII bytes in constant time.
    if not hmac.compare_digest(expected.encode("ascii"), received.lower().encode("ascii")):
        raise _explain_sms_mismatch(params, received, secret=secret, method=method)

    age = (time.time() if now is None else now) - int(str(timestamp).strip())
    if age > max_skew:
        raise SignatureError(
            "stale", f"the webhook timestamp is {age:.0f} s old (limit {max_skew:.0f} s): a replay or a slow clock"
        )
    if -age > max_skew:
        raise SignatureError(
            "stale",
            f"the webhook timestamp is {-age:.0f} s in the future (limit {max_skew:.0f} s): check this server's clock",
        )


def _explain_sms_mismatch(params: Mapping[str, str], received: str, *, secret: str, method: str) -> SignatureError:
    """Say whether a wrong method or a wrong secret / altered parameters made the sig differ."""
    configured = _METHOD_NAMES[method]
    if len(received) != _HEX_LENGTHS[method]:
        others = [_METHOD_NAMES[m] for m, n in _HEX_LENGTHS.items() if n == len(received)]
        made_with = " or ".join(dict.fromkeys(others)) if others else "no known method"
        return SignatureError(
            "unsupported_method",
            f"the sig has {len(received)} hex digits, which fits {made_with}, "
            f"but VONAGE_SIGNATURE_METHOD is {method} ({configured})",
        )
    # Same length (md5hash vs HMAC-MD5 are both 32): see whether the other method matches.
    for other in SIGNATURE_METHODS:
        if other != method and _HEX_LENGTHS[other] == len(received):
            candidate = sign_params(params, secret, other)
            if hmac.compare_digest(candidate.encode("ascii"), received.lower().encode("ascii")):
                return SignatureError(
                    "unsupported_method",
                    f"the sig was made with {_METHOD_NAMES[other]}, "
                    f"but VONAGE_SIGNATURE_METHOD is {method} ({configured})",
                )
    return SignatureError(
        "bad_signature",
        f"the sig does not match ({configured}): VONAGE_SIGNATURE_SECRET differs from the account's "
        "signature secret, or the parameters were altered or URL-encoded twice",
    )


# ---- Messages API / Verify v2 JWT ---------------------------------------------------------


def sign_webhook_jwt(
    body: bytes,
    *,
    secret: str,
    api_key: str | None = None,
    application_id: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 JWT like the one Vonage puts in ``Authorization: Bearer`` on signed webhooks.

    Claims: ``iat``, ``jti``, ``iss`` = ``"Vonage"``, ``payload_hash`` = SHA-256 hex of ``body``,
    and ``api_key`` / ``application_id`` when given. Returns the token without ``Bearer``.
    """
    if not secret:
        raise ConfigError("VONAGE_SIGNATURE_SECRET is not set: webhooks cannot be signed")
    claims: dict[str, Any] = {
        "iat": int(time.time() if now is None else now),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }
    if api_key is not None:
        claims["api_key"] = api_key
    if application_id is not None:
        claims["application_id"] = application_id
    signing_input = encode_segments({"alg": "HS256", "typ": "JWT"}, claims)
    signature = hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(signature)}"


def verify_webhook_jwt(
    body: bytes,
    authorization: str | None,
    *,
    secret: str,
    api_key: str | None = None,
    max_age: float = SIGNATURE_LEEWAY,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a signed Messages API / Verify v2 webhook; return the JWT claims.

    ``authorization`` is the ``Authorization`` header value (``"Bearer <jwt>"``); ``body`` the raw
    request bytes exactly as received (never re-serialised JSON). Checks, in order: HS256 only
    (``none`` and RS256 are refused, so a public key can never be used as an HMAC secret), the
    signature with ``secret``, ``payload_hash`` against SHA-256 of ``body`` (constant time),
    ``iat`` within ``max_age`` seconds either way, and the ``api_key`` claim when ``api_key``
    is given.

    Raises SignatureError (reasons: missing, malformed, unsupported_method, bad_signature,
    body_hash_mismatch, stale, wrong_key) or ConfigError when no secret is configured.
    """
    if not secret:
        # HMAC with an empty key is forgeable by anyone: refuse rather than accept everything.
        raise ConfigError("VONAGE_SIGNATURE_SECRET is not set: signed webhooks cannot be checked")
    if authorization is None or not authorization.strip():
        raise SignatureError("missing", "the webhook has no Authorization header (is webhook signing enabled?)")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise SignatureError("malformed", "the Authorization header is not 'Bearer <JWT>'")
    parsed = split_token(token, what="webhook JWT")

    alg = parsed.header.get("alg")
    if alg != "HS256":
        raise SignatureError(
            "unsupported_method",
            f"the webhook JWT uses alg {alg!r}; Vonage signs webhooks with HS256 and the signature secret",
        )
    expected = hmac.new(secret.encode("utf-8"), parsed.signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, parsed.signature):
        claimed_key = parsed.claims.get("api_key")
        if api_key is not None and isinstance(claimed_key, str) and claimed_key != api_key:
            # Likely a webhook for another account (e.g. a sub-account): its secret differs.
            raise SignatureError(
                "wrong_key",
                "the webhook JWT was signed for a different API key than VONAGE_API_KEY, "
                "so it was signed with that key's signature secret",
            )
        raise SignatureError(
            "bad_signature",
            "the webhook JWT signature does not match VONAGE_SIGNATURE_SECRET "
            "(a different signature secret, or the token was altered)",
        )

    claims = parsed.claims
    payload_hash = claims.get("payload_hash")
    if not isinstance(payload_hash, str) or not payload_hash:
        # Without it the token could be replayed with any body: treat it as not covering this body.
        raise SignatureError("body_hash_mismatch", "the webhook JWT has no payload_hash claim")
    actual = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(actual.encode("ascii"), payload_hash.strip().lower().encode("utf-8")):
        raise SignatureError(
            "body_hash_mismatch",
            "the request body does not match the JWT payload_hash: hash the raw body bytes "
            "(not re-serialised JSON), and make sure nothing rewrote the body in transit",
        )

    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool):
        raise SignatureError("malformed", "the webhook JWT has no numeric iat claim")
    age = (time.time() if now is None else now) - iat
    if age > max_age:
        raise SignatureError(
            "stale", f"the webhook JWT was issued {age:.0f} s ago (limit {max_age:.0f} s): a replay or a slow clock"
        )
    if -age > max_age:
        raise SignatureError(
            "stale",
            f"the webhook JWT was issued {-age:.0f} s in the future (limit {max_age:.0f} s): check this server's clock",
        )

    if api_key is not None and claims.get("api_key") != api_key:
        raise SignatureError("wrong_key", "the webhook JWT api_key claim does not match VONAGE_API_KEY")
    return claims
