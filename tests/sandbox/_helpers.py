"""Small helpers for the sandbox tests: HTTP calls with each kind of Vonage credential."""

from __future__ import annotations

import time
from typing import Any

import httpx

from shared.vonage.auth import ApplicationJWT, basic_auth_header
from shared.vonage.signatures import sign_sms_params
from tests.fixtures.sandbox import APPLICATION_ID, SANDBOX_API_KEY, SANDBOX_API_SECRET, SANDBOX_SIGNATURE_SECRET

BASIC = basic_auth_header(SANDBOX_API_KEY, SANDBOX_API_SECRET)
TO = "447700900001"


def client(**kwargs: Any) -> httpx.Client:
    """An httpx client that never uses a proxy from the environment."""
    return httpx.Client(trust_env=False, timeout=kwargs.pop("timeout", 10.0), **kwargs)


def send_sms(url: str, *, auth: str = "basic", headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    """POST /sms/json with form fields; ``auth`` is basic, body, signature or none."""
    form = {"from": "ACME", "to": TO, "text": "Hello from the sandbox"}
    form.update(fields)
    form = {name: value for name, value in form.items() if value is not None}
    all_headers = dict(headers or {})
    if auth == "basic":
        all_headers["Authorization"] = BASIC
    elif auth == "body":
        form.update(api_key=SANDBOX_API_KEY, api_secret=SANDBOX_API_SECRET)
    elif auth == "signature":
        form["api_key"] = SANDBOX_API_KEY
        form = sign_sms_params(form, secret=SANDBOX_SIGNATURE_SECRET, method="md5hash")
    with client() as http:
        return http.post(f"{url}/sms/json", data=form, headers=all_headers)


def app_token(private_pem: str, *, application_id: str = APPLICATION_ID, issued: float | None = None) -> str:
    """``Bearer <RS256 application JWT>``; ``issued`` in the past makes an expired one (15 min ttl)."""
    at = time.time() if issued is None else issued
    return ApplicationJWT(application_id, private_pem, clock=lambda: at).authorization()


def post_json(url: str, path: str, body: Any, *, authorization: str = BASIC, **kwargs: Any) -> httpx.Response:
    """POST a JSON body with an Authorization header."""
    headers = {"Authorization": authorization, **kwargs.pop("headers", {})}
    with client() as http:
        return http.post(f"{url}{path}", json=body, headers=headers, **kwargs)


def sms_message(**overrides: Any) -> dict[str, Any]:
    """A Messages API SMS body."""
    body = {"channel": "sms", "message_type": "text", "to": TO, "from": "447700900000", "text": "Hi"}
    body.update(overrides)
    return body
