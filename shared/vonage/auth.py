"""Credentials for calls to Vonage: Basic auth and the application JWT (RS256).

- ``basic_auth_header()``: ``Authorization: Basic base64(key:secret)`` for the SMS API, Messages
  and Verify v2 without an application (vonage-api.md sections 1.2, 5.2, 9.1).
- ``load_private_key()``: reads ``VONAGE_PRIVATE_KEY`` in every shape secret stores hand it over.
- ``ApplicationJWT``: signs one application JWT and reuses it until shortly before it expires.
  The Python SDK signs a new JWT for every request (section 7); RSA signing costs about a
  millisecond and the token is good for 15 minutes, so we cache it.
- ``verify_application_jwt()``: the other side of the check, for the local Vonage sandbox.

``cryptography`` is imported inside the functions that need it, so importing this module
(for ``basic_auth_header``) costs nothing at cold start.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError, SignatureError
from shared.vonage._jws import b64url_encode, encode_segments, split_token

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "ApplicationJWT",
    "basic_auth_header",
    "load_private_key",
    "verify_application_jwt",
]

_VAR = "VONAGE_PRIVATE_KEY"
# Vonage documents a JWT lifetime between 30 seconds and 24 hours (vonage-api.md section 7).
_MIN_TTL = 30
_MAX_TTL = 24 * 3600
# RS256 tokens we verify may be a little ahead of our clock (another machine signed them).
_IAT_FUTURE_LEEWAY = 300.0

_PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----(?P<body>.*?)-----END (?P=label)-----",
    re.DOTALL,
)
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
# The key is the operator's own secret, not attacker input: skip OpenSSL's RSA consistency check
# (primality tests on p and q), which costs 100+ ms of every cold start that signs a JWT
# (bench/RESULTS.md). A damaged key still fails to parse; an inconsistent one gets a 401 from Vonage.
_SKIP_KEY_CHECK = True


def basic_auth_header(api_key: str, api_secret: str) -> str:
    """The ``Authorization`` value for HTTP Basic auth: ``"Basic " + base64(key:secret)``."""
    token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode("ascii")
    return f"Basic {token}"


# ---- private key ---------------------------------------------------------------


def load_private_key(value: str) -> RSAPrivateKey:
    """Parse ``VONAGE_PRIVATE_KEY`` into an RSA private key.

    Accepts PEM text, PEM whose newlines were stored as literal ``\\n`` (how many secret stores
    keep multi-line values), base64 of the PEM, or a path to a key file. PKCS#8
    (``BEGIN PRIVATE KEY``, what the Vonage dashboard downloads) and PKCS#1
    (``BEGIN RSA PRIVATE KEY``) both work.

    Raises ConfigError naming ``VONAGE_PRIVATE_KEY`` and the problem. Neither the message nor the
    exception chain ever carries the value: it is a secret (or points at one).
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{_VAR} is empty")
    text = value.strip().strip("'\"").strip()  # .env files and consoles often keep the quotes
    if "-----BEGIN" in text:
        return _parse_pem_text(text, source="value")
    if _looks_like_file(text):
        return _parse_key_bytes(_read_key_file(text), source="file")
    # A short value with a slash or a key-file extension is a path; a key in base64 is over 1,000
    # characters long, so the two cannot be confused.
    if len(text) < 512 and ("/" in text or "\\" in text or text.endswith((".key", ".pem", ".txt", ".der"))):
        raise ConfigError(f"{_VAR} looks like a file path, but no readable file exists there")
    decoded = _b64decode(text)
    if decoded:
        return _parse_key_bytes(decoded, source="base64 value")
    raise ConfigError(
        f"{_VAR} is not a PEM private key, base64 of one, or a path to a key file "
        "(expected text starting with -----BEGIN PRIVATE KEY-----)"
    )


def _b64decode(text: str) -> bytes | None:
    compact = re.sub(r"\s+", "", text)
    if not _BASE64_TEXT.fullmatch(compact):
        return None
    padded = compact.rstrip("=") + "=" * (-len(compact.rstrip("=")) % 4)
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _looks_like_file(text: str) -> bool:
    # A long base64 value is not a path; os.stat() on it would fail with ENAMETOOLONG anyway.
    if len(text) > 4096 or "\n" in text:
        return False
    try:
        return os.path.isfile(os.path.expanduser(text))
    except (OSError, ValueError):  # ValueError: embedded NUL
        return False


def _read_key_file(path: str) -> bytes:
    try:
        with open(os.path.expanduser(path), "rb") as handle:
            return handle.read(1024 * 1024)
    except OSError as exc:
        # The errno name says why (EACCES, EISDIR) without repeating the path.
        reason = os.strerror(exc.errno) if exc.errno else "cannot be read"
        raise ConfigError(f"{_VAR} names a key file that cannot be read ({reason})") from None


def _parse_key_bytes(data: bytes, *, source: str) -> RSAPrivateKey:
    if b"-----BEGIN" in data:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise ConfigError(f"{_VAR} ({source}) contains PEM with non-ASCII characters") from None
        return _parse_pem_text(text, source=source)
    # Not PEM: perhaps DER (a .der file, or base64 of the PEM body without its header lines).
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    try:
        key = load_der_private_key(data, password=None, unsafe_skip_rsa_key_validation=_SKIP_KEY_CHECK)
    except TypeError:
        raise ConfigError(f"{_VAR} ({source}) is encrypted with a passphrase; export it without one") from None
    except Exception:  # ValueError, or cryptography's UnsupportedAlgorithm
        raise ConfigError(
            f"{_VAR} ({source}) is not a private key: expected PEM text starting with -----BEGIN PRIVATE KEY-----"
        ) from None
    return _require_rsa(key, source=source)


def _parse_pem_text(text: str, *, source: str) -> RSAPrivateKey:
    # Secret stores and CI variables mangle newlines: literal "\n" escapes, CRLF, or all the
    # whitespace collapsed into spaces. Rebuild a clean PEM from the label and the base64 body.
    text = text.replace("\\r", "").replace("\\n", "\n")
    match = _PEM_BLOCK.search(text)
    if match is None:
        raise ConfigError(f"{_VAR} ({source}) has a -----BEGIN line but no matching -----END line")
    label = match.group("label")
    body = match.group("body")
    if "ENCRYPTED" in label or "Proc-Type:" in body:
        raise ConfigError(f"{_VAR} ({source}) is encrypted with a passphrase; export it without one")
    if "PRIVATE KEY" not in label:
        raise ConfigError(f"{_VAR} ({source}) holds a {label}, not a private key")
    compact = re.sub(r"\s+", "", body)
    lines = [compact[i : i + 64] for i in range(0, len(compact), 64)]
    pem = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode("ascii"), password=None, unsafe_skip_rsa_key_validation=_SKIP_KEY_CHECK)
    except TypeError:
        raise ConfigError(f"{_VAR} ({source}) is encrypted with a passphrase; export it without one") from None
    except Exception:  # ValueError, UnicodeEncodeError, or cryptography's UnsupportedAlgorithm
        raise ConfigError(f"{_VAR} ({source}) is not a valid PEM private key (damaged or truncated)") from None
    return _require_rsa(key, source=source)


def _require_rsa(key: Any, *, source: str) -> RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{_VAR} ({source}) is not an RSA key; Vonage application keys are RSA")
    return key


# ---- application JWT ---------------------------------------------------------------


class ApplicationJWT:
    """Signs the RS256 application JWT for Messages / Verify v2 and reuses it.

    Claims: ``application_id``, ``iat``, ``jti`` (uuid4), ``exp`` = ``iat + ttl``. The token is
    cached and handed out again until ``refresh_margin`` seconds before ``exp``; then a new one
    is signed. Safe to share between threads. The private key is parsed on first use, so a bad
    ``VONAGE_PRIVATE_KEY`` raises ConfigError from ``token()`` (the first call that needs it).
    """

    def __init__(
        self,
        application_id: str,
        private_key: str | RSAPrivateKey,
        *,
        ttl: int = 900,
        refresh_margin: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not application_id:
            raise ConfigError("VONAGE_APPLICATION_ID is not set")
        if not _MIN_TTL <= ttl <= _MAX_TTL:
            raise ValueError(f"ttl must be between {_MIN_TTL} and {_MAX_TTL} seconds")
        if not 0 <= refresh_margin < ttl:
            raise ValueError("refresh_margin must be at least 0 and less than ttl")
        self.application_id = application_id
        self._key_source = private_key
        self._key: RSAPrivateKey | None = None
        self._ttl = int(ttl)
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._issued_at = 0
        self._expires_at = 0

    def __repr__(self) -> str:
        # Never show the key or the token.
        return f"ApplicationJWT(application_id={self.application_id!r}, ttl={self._ttl})"

    def token(self) -> str:
        """The current JWT, signing a fresh one when none is cached or it is about to expire."""
        with self._lock:
            now = self._clock()
            if (
                self._token is None
                or now >= self._expires_at - self._refresh_margin
                # The clock went backwards past iat: Vonage would see a token from the future.
                or now < self._issued_at - 1
            ):
                self._token = self._sign(now)
            return self._token

    def authorization(self) -> str:
        """The ``Authorization`` header value: ``"Bearer <token>"``."""
        return f"Bearer {self.token()}"

    def _sign(self, now: float) -> str:
        if self._key is None:
            source = self._key_source
            self._key = load_private_key(source) if isinstance(source, str) else source
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        iat = int(now)
        claims = {
            "application_id": self.application_id,
            "iat": iat,
            "jti": str(uuid.uuid4()),
            "exp": iat + self._ttl,
        }
        signing_input = encode_segments({"alg": "RS256", "typ": "JWT"}, claims)
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        self._issued_at = iat
        self._expires_at = iat + self._ttl
        return f"{signing_input}.{b64url_encode(signature)}"


def verify_application_jwt(
    token: str,
    public_key: str | bytes | RSAPublicKey,
    *,
    application_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Check an RS256 application JWT the way Vonage does; return its claims.

    ``token`` may carry a ``"Bearer "`` prefix. ``public_key`` is PEM (SPKI or PKCS#1) or a
    key object. Checks: RS256 only, signature, ``exp`` not passed, ``iat`` present and not
    in the future, ``application_id`` present (and equal to ``application_id`` when given).

    Raises SignatureError with ``reason``: missing, malformed, unsupported_method (not RS256),
    bad_signature, stale (expired or issued in the future), wrong_key (other application).
    """
    token = (token or "").strip()
    scheme, _, rest = token.partition(" ")
    if scheme.lower() == "bearer":
        token = rest.strip()
    if not token:
        raise SignatureError("missing", "no application JWT was presented")
    parsed = split_token(token, what="application JWT")
    alg = parsed.header.get("alg")
    if alg != "RS256":
        raise SignatureError("unsupported_method", f"application JWT uses alg {alg!r}; Vonage accepts only RS256")

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key: Any = public_key
    if isinstance(public_key, (str, bytes)):
        raw = public_key.encode("ascii") if isinstance(public_key, str) else public_key
        try:
            key = load_pem_public_key(raw)
        except ValueError:
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            # Accept the private key too (it contains the public one): handy for the sandbox.
            try:
                key = load_pem_private_key(raw, password=None).public_key()
            except (ValueError, TypeError):
                raise ConfigError("the public key for application JWT verification is not valid PEM") from None
    if isinstance(key, rsa.RSAPrivateKey):
        key = key.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError("the key for application JWT verification is not an RSA key")
    try:
        key.verify(parsed.signature, parsed.signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignatureError(
            "bad_signature", "application JWT signature does not match the application's public key"
        ) from None

    claims = parsed.claims
    current = time.time() if now is None else now
    iat = _number(claims.get("iat"))
    if iat is None:
        raise SignatureError("malformed", "application JWT has no numeric iat claim")
    if iat - current > _IAT_FUTURE_LEEWAY:
        raise SignatureError(
            "stale", f"application JWT was issued {iat - current:.0f} s in the future: check the clock"
        )
    if "exp" in claims:
        exp = _number(claims["exp"])
        if exp is None:
            raise SignatureError("malformed", "application JWT exp claim is not a number")
        if current >= exp:
            raise SignatureError("stale", f"application JWT expired {current - exp:.0f} s ago")
    nbf = _number(claims.get("nbf"))
    if nbf is not None and nbf - current > _IAT_FUTURE_LEEWAY:
        raise SignatureError("stale", "application JWT is not valid yet (nbf)")
    claimed_app = claims.get("application_id")
    if not isinstance(claimed_app, str) or not claimed_app:
        raise SignatureError("malformed", "application JWT has no application_id claim")
    if application_id is not None and claimed_app != application_id:
        raise SignatureError("wrong_key", "application JWT was issued for a different application_id")
    return claims


def _number(value: Any) -> float | None:
    """A numeric claim as float; None when absent or not a number (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
