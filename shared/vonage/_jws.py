"""Compact JWS (JWT) encoding and splitting, shared by the RS256 and HS256 code.

We build and parse the three ``header.payload.signature`` segments by hand instead of
importing PyJWT: it costs ~50 ms of cold start on every webhook and send function, and
parsing by hand lets each failure say exactly which part was wrong. The cryptography is
not hand-made: HS256 is ``hmac`` from the standard library, RS256 is ``cryptography``.
Tests check tokens made here against PyJWT as an independent implementation.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from shared.errors import SignatureError

__all__ = ["ParsedToken", "b64url_decode", "b64url_encode", "encode_segments", "split_token"]

# A token bigger than this is not something Vonage sends; refuse before decoding it.
_MAX_TOKEN_CHARS = 16 * 1024


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url (RFC 7515 section 2); raise ValueError on anything else.

    Strict: no padding, no standard-alphabet ``+``/``/``, no whitespace, and no non-canonical
    form (unused trailing bits set), so one byte string has exactly one accepted encoding.
    """
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    # The decoder skips characters outside its alphabet and ignores unused bits; re-encoding and
    # comparing refuses all of that (and "=" padding) in one check. "" stays b"" (the empty
    # signature part of an unsecured, alg "none", token).
    if b64url_encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


def _json_segment(value: dict[str, Any]) -> str:
    # Compact separators: the usual JWT form, and what PyJWT produces.
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def encode_segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """The signing input ``b64(header).b64(claims)``; the caller appends ``.b64(signature)``."""
    return f"{_json_segment(header)}.{_json_segment(claims)}"


@dataclass(frozen=True)
class ParsedToken:
    """A compact JWS split into its parts. Nothing here has been verified yet."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def split_token(token: str, *, what: str) -> ParsedToken:
    """Split and decode a compact JWS; raise SignatureError("malformed") naming the broken part.

    ``what`` names the token in messages ("webhook JWT", "application JWT").
    """
    if len(token) > _MAX_TOKEN_CHARS:
        raise SignatureError("malformed", f"{what} is longer than {_MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise SignatureError(
            "malformed", f"{what} must have three dot-separated parts (header.payload.signature), found {len(parts)}"
        )
    header = _decode_json_part(parts[0], what=what, part="header")
    claims = _decode_json_part(parts[1], what=what, part="payload")
    try:
        signature = b64url_decode(parts[2])
    except ValueError:
        raise SignatureError("malformed", f"{what} signature is not base64url") from None
    return ParsedToken(
        header=header,
        claims=claims,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )


def _decode_json_part(segment: str, *, what: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(segment))
    except (ValueError, UnicodeDecodeError):
        raise SignatureError("malformed", f"{what} {part} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise SignatureError("malformed", f"{what} {part} is not a JSON object")
    return value
