"""Who is calling: the credential checks each Vonage API makes, and nothing more.

- SMS API: HTTP Basic, or ``api_key`` + ``api_secret`` fields, or ``api_key`` + ``sig``
  (+ ``timestamp``) signed with the signature secret; ``sig`` together with ``api_secret``
  is refused with status 32 (vonage-api.md §1.2).
- Messages API and Verify v2: HTTP Basic, or an RS256 application JWT that verifies with
  the public key of the configured application (§5.2, §7).
- Legacy Verify: HTTP Basic, or ``api_key`` + ``api_secret`` fields (§8.1).

Signature and JWT checks are ``shared.vonage``'s; secrets are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.config import SandboxConfig
from shared.errors import ConfigError, SignatureError
from shared.vonage.auth import basic_auth_header, verify_application_jwt
from shared.vonage.signatures import verify_sms_signature

__all__ = ["Caller", "CredentialError", "application_caller", "key_secret_caller", "sms_api_caller"]


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: how it proved itself, and the application when it used a JWT."""

    method: str  # basic | body | signature | jwt
    application_id: str | None = None


class CredentialError(Exception):
    """The caller is not authenticated. ``status`` is the SMS/legacy Verify status code to answer."""

    def __init__(self, status: str, text: str, *, expired: bool = False) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.expired = expired


def sms_api_caller(
    config: SandboxConfig, fields: Mapping[str, str], authorization: str | None, *, now: float
) -> Caller:
    """Authenticate an SMS API request (status 2, 4, 14 or 32 on failure)."""
    if "sig" in fields:
        if "api_secret" in fields:
            raise CredentialError("32", "Signature and API secret disallowed")
        _require_key(config, fields)
        try:
            verify_sms_signature(fields, secret=config.signature_secret, method=config.signature_method, now=now)
        except (SignatureError, ConfigError) as exc:
            raise CredentialError("14", "Invalid Signature") from exc
        return Caller("signature")
    if config.require_signed_requests:
        # The account requires signed requests: anything else is refused as unsigned.
        raise CredentialError("14", "Invalid Signature")
    return key_secret_caller(config, fields, authorization)


def key_secret_caller(config: SandboxConfig, fields: Mapping[str, str], authorization: str | None) -> Caller:
    """Authenticate with Basic or ``api_key``/``api_secret`` fields (status 2 or 4 on failure)."""
    if authorization and authorization.strip()[:6].lower() == "basic ":
        if not _same(authorization.strip(), basic_auth_header(config.api_key, config.api_secret)):
            raise CredentialError("4", "Bad Credentials")
        return Caller("basic")
    if not fields.get("api_key"):
        raise CredentialError("2", "Missing api_key")
    if not fields.get("api_secret"):
        raise CredentialError("2", "Missing api_secret")
    _require_key(config, fields)
    if not _same(fields["api_secret"], config.api_secret):
        raise CredentialError("4", "Bad Credentials")
    return Caller("body")


def application_caller(
    config: SandboxConfig, authorization: str | None, *, public_key: Any, now: float
) -> Caller:
    """Authenticate a Messages / Verify v2 request: Basic, or a Bearer application JWT."""
    header = (authorization or "").strip()
    scheme = header.split(" ", 1)[0].lower()
    if scheme == "basic":
        if not _same(header, basic_auth_header(config.api_key, config.api_secret)):
            raise CredentialError("401", "Bad Credentials")
        return Caller("basic")
    if scheme == "bearer":
        if public_key is None:
            raise CredentialError("401", "no application is configured in the sandbox")
        try:
            claims = verify_application_jwt(header, public_key, application_id=config.application_id, now=now)
        except SignatureError as exc:
            expired = exc.reason == "stale"  # exp passed (or iat in the future): Vonage's #jwt-expired
            raise CredentialError("401", f"application JWT refused: {exc.reason}", expired=expired) from exc
        return Caller("jwt", application_id=str(claims["application_id"]))
    raise CredentialError("401", "no credentials")


def _require_key(config: SandboxConfig, fields: Mapping[str, str]) -> None:
    if not fields.get("api_key"):
        raise CredentialError("2", "Missing api_key")
    if not _same(fields["api_key"], config.api_key):
        raise CredentialError("4", "Bad Credentials")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
