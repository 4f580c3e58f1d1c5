"""The ``send`` function: ``POST`` sends SMS/MMS/WhatsApp/Messenger/Viber/RCS, ``GET`` reads a record.

``POST /send`` (JSON, ``Authorization: Bearer``, optional ``Idempotency-Key``) sends to one
recipient or a list; ``GET /send/<id>`` (or ``?id=``) returns the message record with its
Vonage ids and status history. With a queue configured (docs/queue.md) a list, or a send with
``send_at``, is queued: ``GET /send/<batch_id>?cursor=`` shows its progress and
``DELETE /send/<batch_id>`` cancels what has not been sent. The logic lives in
``shared.messages.service`` and ``shared.messages.batches``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from shared.deps import get_queue, get_settings, get_store, get_vonage
from shared.errors import MethodNotAllowedError, NotFoundError
from shared.web import authorize_caller, bearer_token, endpoint, json_response, path_id, read_json, require_method

if TYPE_CHECKING:
    import flask

__all__ = ["send"]


@endpoint("send")
def send(request: flask.Request) -> flask.Response:
    """HTTP entry point of the send function."""
    from shared.messages import batches
    from shared.messages.service import caller_scope, get_message, send_messages

    settings = get_settings()
    method = require_method(request, "POST", "GET", "DELETE")
    if method == "DELETE" and path_id(request) is None:
        # Only a batch can be cancelled (DELETE /send/<batch_id>): DELETE /send is no operation.
        raise MethodNotAllowedError(method, ("POST", "GET"))
    caller = authorize_caller(request, settings, "send")
    scope = caller_scope(bearer_token(request))
    if method in ("GET", "DELETE"):
        item = path_id(request)
        if method == "DELETE" and not batches.is_batch_id(item):
            raise NotFoundError("no batch with this id: only a batch (bat_...) can be cancelled")
        if batches.is_batch_id(item):
            if method == "DELETE":
                return json_response(
                    batches.cancel_batch(get_store(), get_queue(), str(item), scope=scope, now=time.time(), caller=caller)
                )
            return json_response(batches.get_batch(
                get_store(), str(item), scope=scope, cursor=request.args.get("cursor"), now=time.time(), caller=caller
            ))
        return json_response(get_message(get_store(), item, caller=caller))
    body = read_json(request, settings.send_max_body_bytes)
    outcome = send_messages(
        body,
        idempotency_key=request.headers.get("Idempotency-Key"),
        scope=scope,
        settings=settings,
        store=get_store(),
        vonage=get_vonage(),
        tenant=caller.name,
        queue=get_queue() if settings.queue_backend != "none" else None,
    )
    if "batch_id" in outcome.body and settings.queue_backend == "embedded":
        # Whatever serves this function (app.py starts it already; functions-framework run by
        # hand does not), a process that accepted an embedded batch also works on the queue.
        from shared.queue.worker import start_worker

        start_worker()
    return json_response(outcome.body, status=outcome.status, headers=outcome.headers)
