"""Is this webhook really from Vonage? The authentication modes and the one decision.

Modes (any configured check that passes accepts the request):

``signature``  SMS API ``sig`` parameter, checked with ``VONAGE_SIGNATURE_METHOD`` and
               ``VONAGE_SIGNATURE_SECRET`` (signed SMS webhooks must be switched on by Vonage support).
``jwt``        Messages API / Verify v2 ``Authorization: Bearer`` HS256 JWT with ``payload_hash``
               over the raw body (always on at Vonage's side); its ``api_key`` claim must match
               ``VONAGE_API_KEY`` when that is set.
``token``      ``?token=`` in the webhook URL equal to ``WEBHOOK_TOKEN`` (constant-time compare):
               the fallback for accounts whose SMS webhooks are not signed.
``unsigned``   ``WEBHOOK_ALLOW_UNSIGNED=true``: requests that present no credential at all are
               accepted. Local use only; logged loudly. A credential that is presented and wrong
               is still refused.

Both signature checks include freshness (``SIGNATURE_MAX_SKEW_SECONDS``), so a genuine signed
webhook replayed later is refused as ``stale``. The token has no freshness: it is weaker, and
the README says so. Nothing here reads Flask objects; the caller passes bytes and strings.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config import Settings
from shared.errors import ConfigError, SignatureError
from shared.log import get_logger

__all__ = ["AuthResult", "authenticate_webhook", "describe_modes", "log_modes_once"]

log = get_logger("shared.webhooks.auth")

_logged = False
_logged_lock = threading.Lock()


@dataclass(frozen=True)
class AuthResult:
    """Which check vouched for the request (``signature``, ``jwt``, ``token`` or ``unsigned``)."""

    mode: str
    claims: Mapping[str, Any] = field(default_factory=dict)


def describe_modes(settings: Settings) -> list[str]:
    """The active authentication modes, in words safe to log (no secret, no token)."""
    modes = []
    if settings.signature_secret:
        modes.append(f"signature (SMS sig with {settings.signature_method}; Messages/Verify JWT HS256)")
    if settings.webhook_token:
        modes.append("token (?token= in the webhook URL)")
    if settings.webhook_allow_unsigned:
        modes.append("unsigned requests ACCEPTED (WEBHOOK_ALLOW_UNSIGNED=true: local use only)")
    return modes


def log_modes_once(settings: Settings) -> None:
    """Log the active modes the first time a webhook arrives in this process."""
    global _logged
    with _logged_lock:
        if _logged:
            return
        _logged = True
    modes = describe_modes(settings)
    if settings.webhook_allow_unsigned:
        log.warning(
            "webhook authentication is OFF for requests without credentials: never deploy this",
            extra={"modes": modes},
        )
    elif modes:
        log.info("webhook authentication", extra={"modes": modes})
    else:
        log.error(
            "no webhook authentication configured: every webhook is refused",
            extra={"fix": "set VONAGE_SIGNATURE_SECRET and/or WEBHOOK_TOKEN"},
        )


def authenticate_webhook(
    *,
    body: bytes,
    authorization: str | None,
    params: Mapping[str, str] | None,
    token: str | None,
    settings: Settings,
    now: float | None = None,
) -> AuthResult:
    """Accept the request when a configured check passes; raise otherwise.

    ``body`` is the raw request body; ``authorization`` the Authorization header;
    ``params`` the decoded SMS API fields (None for a JSON-only webhook); ``token`` the
    ``?token=`` query value. Raises SignatureError (401; ``reason`` says which check failed and
    why) or ConfigError (500) when no mode is configured, so a deployment that forgot its secret
    is told, and Vonage keeps retrying until it is fixed instead of losing the events.
    """
    log_modes_once(settings)
    secret = settings.signature_secret
    failure: SignatureError | None = None
    signed = False

    if authorization is not None and authorization.strip().lower().startswith("bearer"):
        signed = True
        if secret:
            from shared.vonage.signatures import verify_webhook_jwt

            try:
                claims = verify_webhook_jwt(
                    body,
                    authorization,
                    secret=secret,
                    api_key=settings.api_key,
                    max_age=settings.signature_max_skew,
                    now=now,
                )
                return AuthResult("jwt", claims)
            except SignatureError as exc:
                failure = exc
    elif params is not None and str(params.get("sig") or "").strip():
        signed = True
        if secret:
            from shared.vonage.signatures import verify_sms_signature

            try:
                verify_sms_signature(
                    params,
                    secret=secret,
                    method=settings.signature_method,
                    max_skew=settings.signature_max_skew,
                    now=now,
                )
                return AuthResult("signature")
            except SignatureError as exc:
                failure = exc

    if token is not None and settings.webhook_token:
        if hmac.compare_digest(token.encode("utf-8"), settings.webhook_token.encode("utf-8")):
            return AuthResult("token")
        failure = failure or SignatureError("bad_token", "the ?token= in the webhook URL does not match WEBHOOK_TOKEN")

    if failure is not None:
        raise failure
    if settings.webhook_allow_unsigned:
        # A signature we cannot check (no secret) is treated as no credential: checks are off.
        return AuthResult("unsigned")
    if not secret and not settings.webhook_token:
        raise ConfigError(
            "webhooks cannot be authenticated: set VONAGE_SIGNATURE_SECRET and/or WEBHOOK_TOKEN "
            "(or WEBHOOK_ALLOW_UNSIGNED=true for local use only)"
        )
    if signed and not secret:
        raise SignatureError(
            "missing",
            "the webhook is signed but VONAGE_SIGNATURE_SECRET is not set, and it carries no valid ?token=",
        )
    raise SignatureError(
        "missing",
        "the webhook carries no signature (Authorization JWT or sig parameter) and no ?token=: "
        + ("add ?token=<WEBHOOK_TOKEN> to the webhook URL" if settings.webhook_token else "is signing enabled?"),
    )
