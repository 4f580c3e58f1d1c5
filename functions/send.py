"""The ``send`` function: ``POST`` sends SMS/MMS/WhatsApp/Messenger/Viber/RCS, ``GET`` reads a record.

``POST /send`` (JSON, ``Authorization: Bearer``, optional ``Idempotency-Key``) sends to one
recipient or a list; ``GET /send/<id>`` (or ``?id=``) returns the message record with its
Vonage ids and status history. The logic lives in ``shared.messages.service``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.deps import get_settings, get_store, get_vonage
from shared.web import authorize_caller, bearer_token, endpoint, json_response, path_id, read_json, require_method

if TYPE_CHECKING:
    import flask

__all__ = ["send"]


@endpoint("send")
def send(request: flask.Request) -> flask.Response:
    """HTTP entry point of the send function."""
    from shared.messages.service import caller_scope, get_message, send_messages

    settings = get_settings()
    method = require_method(request, "POST", "GET")
    caller = authorize_caller(request, settings, "send")
    if method == "GET":
        return json_response(get_message(get_store(), path_id(request), caller=caller))
    body = read_json(request, settings.max_body_bytes)
    outcome = send_messages(
        body,
        idempotency_key=request.headers.get("Idempotency-Key"),
        scope=caller_scope(bearer_token(request)),
        settings=settings,
        store=get_store(),
        vonage=get_vonage(),
        tenant=caller.name,
    )
    return json_response(outcome.body, status=outcome.status, headers=outcome.headers)
