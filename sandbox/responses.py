"""Response helpers: Vonage's JSON answers and RFC 7807 problem bodies, with their real texts.

Problem ``type`` URLs and titles are the ones Vonage answers with (SDK test fixtures,
vonage-api.md §5.5 and §9.3); each body carries a fresh ``instance`` id as Vonage's do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Response

from sandbox.state import RateDecision
from sandbox.webhooks import Delivery

__all__ = [
    "ApiResult",
    "ERRORS",
    "VERIFY_ERRORS",
    "invalid_params",
    "json_response",
    "low_balance",
    "problem",
    "rate_limited",
    "unauthorized",
]

ERRORS = "https://developer.nexmo.com/api-errors"
VERIFY_ERRORS = "https://www.developer.vonage.com/api-errors"
MESSAGES_ERRORS = "https://developer.nexmo.com/api-errors/messages-olympus"


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response (``application/json``)."""
    return Response(json.dumps(body), status=status, headers=dict(headers or {}), content_type="application/json")


def problem(
    status: int,
    type_: str,
    title: str,
    detail: str,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An ``application/problem+json`` response with ``type, title, detail, instance``."""
    body: dict[str, Any] = {"type": type_, "title": title, "detail": detail, "instance": str(uuid.uuid4())}
    body.update(extra or {})
    return Response(
        json.dumps(body), status=status, headers=dict(headers or {}), content_type="application/problem+json"
    )


def unauthorized(*, expired: bool = False) -> Response:
    """401 for missing/wrong credentials, or an expired application JWT."""
    if expired:
        return problem(401, f"{ERRORS}#jwt-expired", "Unauthorized", "The JWT has expired.")
    return problem(
        401,
        f"{ERRORS}/#unathorized",  # sic: Vonage's own spelling
        "You did not provide correct credentials.",
        "Check that you're using the correct credentials, and that your account has this feature enabled",
    )


def low_balance() -> Response:
    """402 when the account cannot pay for the request."""
    return problem(
        402,
        f"{ERRORS}/#low-balance",
        "Low balance",
        "This request could not be performed due to your account balance being low.",
    )


def rate_limited(decision: RateDecision | None, now: float, *, type_: str | None = None) -> Response:
    """429 "Rate Limit Hit" with Retry-After and X-RateLimit-* headers (OAS-MSG)."""
    headers = {"Retry-After": "1"}
    if decision is not None:
        headers = {
            "Retry-After": str(decision.retry_after(now)),
            "X-RateLimit-Limit": str(decision.limit),
            "X-RateLimit-Remaining": str(decision.remaining),
            "X-RateLimit-Reset": str(int(-(-decision.reset_at // 1))),
        }
    return problem(
        429,
        type_ or f"{ERRORS}/#rate-limit",
        "Rate Limit Hit",
        "Please wait, then retry your request",
        headers=headers,
    )


def invalid_params(
    problems: Iterable[tuple[str, str]], *, type_: str = f"{MESSAGES_ERRORS}#1150", title: str = "Invalid params"
) -> Response:
    """422 listing each invalid parameter as ``{name, reason}``."""
    items = [{"name": name, "reason": reason} for name, reason in problems]
    return problem(
        422,
        type_,
        title,
        "The value of one or more parameters is invalid.",
        extra={"invalid_parameters": items},
    )


@dataclass
class ApiResult:
    """What an API handler produced: the response, the webhooks it causes, and a log summary."""

    response: Response
    deliveries: list[Delivery] = field(default_factory=list)
    outcome: str = ""  # Vonage's status code or problem anchor, for the request log
    auth: str | None = None
