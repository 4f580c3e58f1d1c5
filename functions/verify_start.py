"""verify-start: send a one-time code to a number (POST JSON ``{number, brand, channels?, ...}``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.deps import get_settings, get_store, get_vonage
from shared.verify.access import admit_caller, browser_access
from shared.web import client_ip, endpoint, json_response, read_json, require_method

if TYPE_CHECKING:
    import flask

__all__ = ["verify_start"]


@browser_access
@endpoint("verify_start")
def verify_start(request: flask.Request) -> flask.Response:
    """Start a verification; 202 ``{request_id, status: "pending", channels}``."""
    from shared.verify.service import start_verification

    settings = get_settings()
    require_method(request, "POST")
    caller = admit_caller(request, settings, public_allowed=True)
    body = read_json(request, settings.max_body_bytes)
    result = start_verification(
        body,
        settings=settings,
        store=get_store(),
        vonage=get_vonage(),
        ip=client_ip(request, settings.trusted_proxy_hops, settings.trusted_proxies),
        trusted_caller=caller is not None,
        caller=caller,
    )
    return json_response(result, status=202)
