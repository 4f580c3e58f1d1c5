"""Read one webhook request: raw body, authenticity, then the fields, in every Vonage wire format.

Order matters. The raw bytes are read first (bounded by ``MAX_BODY_BYTES``); a JWT-signed
request (Messages API, Verify v2) is verified over those exact bytes *before* any JSON parsing;
an SMS API request must be parsed to find its ``sig``, so it is parsed first, but a parse
failure is only reported (400) once the request has proved who sent it: an anonymous caller
gets 401, never a hint about our parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import BadRequestError
from shared.web import read_body, read_json, read_params
from shared.webhooks.auth import AuthResult, authenticate_webhook

if TYPE_CHECKING:
    import flask

    from shared.config import Settings

__all__ = ["TOKEN_PARAM", "Webhook", "read_webhook"]

# The query parameter that carries WEBHOOK_TOKEN; it is never part of the payload or its signature.
TOKEN_PARAM = "token"


@dataclass(frozen=True)
class Webhook:
    """An authenticated webhook: its fields (flat strings for the SMS API, nested JSON otherwise)."""

    fields: Mapping[str, Any]
    wire_format: str  # "query", "form" or "json"
    auth: AuthResult


def read_webhook(request: flask.Request, settings: Settings, *, now: float | None = None) -> Webhook:
    """Authenticate and parse a webhook request; raise 401/400/413 (or 500 when unconfigured)."""
    body = b"" if request.method == "GET" else read_body(request, settings.max_body_bytes)
    authorization = request.headers.get("Authorization")
    token = request.args.get(TOKEN_PARAM)
    is_json = request.method != "GET" and (
        (request.mimetype or "").lower() == "application/json"
        or (not request.mimetype and body.lstrip().startswith(b"{"))
    )

    if is_json and authorization and authorization.strip().lower().startswith("bearer"):
        # Messages API / Verify v2: verify the raw bytes, then parse.
        auth = authenticate_webhook(
            body=body, authorization=authorization, params=None, token=token, settings=settings, now=now
        )
        return Webhook(read_json(request, settings.max_body_bytes, body=body), "json", auth)

    fields: dict[str, Any] | None = None
    problem: BadRequestError | None = None
    try:
        if is_json:
            fields = read_json(request, settings.max_body_bytes, body=body)
        else:
            fields = read_params(request, settings.max_body_bytes, body=body)
            fields.pop(TOKEN_PARAM, None)  # read_params merges the query string into a form
    except BadRequestError as exc:
        problem = exc
    params = _flat(fields) if fields is not None else None
    auth = authenticate_webhook(
        body=body, authorization=authorization, params=params, token=token, settings=settings, now=now
    )
    if problem is not None:
        raise problem
    assert fields is not None
    if auth.mode == "signature" and params is not None:
        # Only what the sig covers is vouched for: a nested JSON value is left out of the
        # string to sign, so a replayed genuine request could carry any extra object in it.
        fields = {name: value for name, value in fields.items() if name in params}
    return Webhook(fields, "json" if is_json else ("query" if request.method == "GET" else "form"), auth)


def _flat(fields: Mapping[str, Any]) -> dict[str, str]:
    """SMS API fields as the decoded strings its ``sig`` was computed over."""
    flat: dict[str, str] = {}
    for name, value in fields.items():
        if isinstance(value, str):
            flat[name] = value
        elif isinstance(value, bool):
            flat[name] = "true" if value else "false"
        elif isinstance(value, (int, float)) or value is None:
            flat[name] = "" if value is None else str(value)
        # Nested values never occur in SMS API payloads; they cannot be part of a valid sig.
    return flat
