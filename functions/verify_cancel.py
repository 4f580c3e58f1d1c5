"""verify-cancel: cancel a verification in flight (``POST {request_id}``, or DELETE/POST ``/<request_id>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.deps import get_settings, get_store, get_vonage
from shared.verify.access import admit_caller
from shared.web import endpoint, json_response, path_id, read_json, require_method

if TYPE_CHECKING:
    import flask

__all__ = ["verify_cancel"]


@endpoint("verify_cancel")
def verify_cancel(request: flask.Request) -> flask.Response:
    """Cancel; 200 ``{request_id, status: "cancelled"}``, 409 ``cancel_not_allowed`` explains Vonage's window."""
    from shared.verify.service import cancel_verification

    settings = get_settings()
    require_method(request, "POST", "DELETE")
    caller = admit_caller(request, settings, public_allowed=False)
    request_id = path_id(request)
    if request_id is None:
        request_id = read_json(request, settings.max_body_bytes).get("request_id")
    result = cancel_verification(request_id, settings=settings, store=get_store(), vonage=get_vonage(), caller=caller)
    return json_response(result, status=200)
