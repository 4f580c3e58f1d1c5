"""verify-next: move a verification to its next channel now (``POST {request_id}`` or ``POST /<request_id>``).

For the "call me instead" / "send it another way" button: Vonage tries the next channel of the
workflow without waiting for the current one to time out. Authenticated like verify-check (a
bearer token; browsers too when VERIFY_PUBLIC=true): it only moves a verification that was
already started and paid for, and Vonage allows at most the channels its workflow names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.deps import get_settings, get_store, get_vonage
from shared.verify.access import admit_caller, browser_access
from shared.web import endpoint, json_response, path_id, read_json, require_method

if TYPE_CHECKING:
    import flask

__all__ = ["verify_next"]


@browser_access
@endpoint("verify_next")
def verify_next(request: flask.Request) -> flask.Response:
    """Move on; 200 ``{request_id, status: "pending", moved_on: true}``, 409 ``next_workflow_not_allowed``."""
    from shared.verify.service import next_workflow

    settings = get_settings()
    require_method(request, "POST")
    caller = admit_caller(request, settings, public_allowed=True)
    request_id = path_id(request)
    if request_id is None:
        request_id = read_json(request, settings.max_body_bytes).get("request_id")
    result = next_workflow(request_id, settings=settings, store=get_store(), vonage=get_vonage(), caller=caller)
    return json_response(result, status=200)
