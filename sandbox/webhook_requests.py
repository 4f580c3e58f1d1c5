"""Build the signed HTTP requests Vonage sends to webhooks, in each wire format.

- SMS API (inbound SMS, delivery receipts): flat string fields as a GET query, a POST form
  or a POST JSON body (the account's "webhook format"); with SMS signing on, ``nonce``,
  ``timestamp`` and ``sig`` are added (vonage-api.md §2, §3, §4).
- Messages API and Verify v2: a POST JSON body with ``Authorization: Bearer <JWT>``, HS256
  with the signature secret and a ``payload_hash`` of the exact body bytes (§6.3).

Signing uses ``shared.vonage.signatures``; nothing here re-implements it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sandbox.config import SandboxConfig
from sandbox.webhooks import OutgoingRequest
from shared.vonage.signatures import sign_sms_params, sign_webhook_jwt

__all__ = ["USER_AGENT", "json_webhook", "sms_api_webhook"]

USER_AGENT = "Vonage-Sandbox/1.0"


def sms_api_webhook(
    url: str,
    fields: Mapping[str, str],
    *,
    fmt: str,
    config: SandboxConfig,
    now: float,
) -> OutgoingRequest:
    """An SMS API webhook carrying ``fields`` in format ``fmt`` (GET, POST or POST-JSON)."""
    params = {name: str(value) for name, value in fields.items()}
    if config.sms_signing:
        params["nonce"] = str(uuid.uuid4())
        params = sign_sms_params(params, secret=config.signature_secret, method=config.signature_method, now=now)
    headers = {"User-Agent": USER_AGENT}
    if fmt == "GET":
        return OutgoingRequest("GET", _with_query(url, params), headers, b"", params)
    if fmt == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return OutgoingRequest("POST", url, headers, urlencode(params).encode("ascii"), params)
    headers["Content-Type"] = "application/json"
    return OutgoingRequest("POST", url, headers, json.dumps(params).encode("utf-8"), params)


def json_webhook(
    url: str,
    payload: Mapping[str, Any],
    *,
    config: SandboxConfig,
    application_id: str | None,
    now: float,
) -> OutgoingRequest:
    """A Messages API / Verify v2 webhook: POST JSON signed with an HS256 bearer JWT."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    token = sign_webhook_jwt(
        body, secret=config.signature_secret, api_key=config.api_key, application_id=application_id, now=now
    )
    headers = {
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
    }
    return OutgoingRequest("POST", url, headers, body, dict(payload))


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = urlencode(params)
    return urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))
