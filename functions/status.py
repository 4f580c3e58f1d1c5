"""status: delivery receipts (SMS API), message statuses (Messages API) and Verify v2 callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.deps import get_settings, get_store
from shared.web import endpoint, json_response, require_method

if TYPE_CHECKING:
    import flask

__all__ = ["status"]


@endpoint("status")
def status(request: flask.Request) -> flask.Response:
    """200 ``{result: applied|parked|duplicate, ...}`` once the event is stored; 503 if it cannot be."""
    # Imported here: the one-process app (app.py) imports every function module, and send need not load webhook code.
    from shared.webhooks.receive import read_webhook
    from shared.webhooks.status import receive_status

    settings = get_settings()
    require_method(request, "GET", "POST")
    webhook = read_webhook(request, settings)
    return json_response(receive_status(webhook.fields, settings=settings, store=get_store()))
