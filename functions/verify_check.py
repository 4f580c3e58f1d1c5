"""verify-check: check the code the user typed (POST JSON ``{request_id, code}``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.deps import get_settings, get_store, get_vonage
from shared.verify.access import admit_caller, browser_access
from shared.web import endpoint, json_response, read_json, require_method

if TYPE_CHECKING:
    import flask

__all__ = ["verify_check"]


@browser_access
@endpoint("verify_check")
def verify_check(request: flask.Request) -> flask.Response:
    """Check a code; 200 ``{request_id, status: "verified"}`` or a stable error code."""
    from shared.verify.service import check_code

    settings = get_settings()
    require_method(request, "POST")
    caller = admit_caller(request, settings, public_allowed=True)
    body = read_json(request, settings.max_body_bytes)
    result = check_code(body, settings=settings, store=get_store(), vonage=get_vonage(), caller=caller)
    return json_response(result, status=200)
