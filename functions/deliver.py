"""The ``deliver`` function: runs one queued send task (docs/queue.md).

Cloud Tasks calls it with ``{"batch_id", "index"}`` for one recipient of a bulk or scheduled
send; the embedded queue runs the same core routine in-process. It answers as a queue target:
200 when the recipient's outcome is final (recorded once), 429/503 with ``Retry-After`` when
another attempt is worth it; on the last attempt (``QUEUE_MAX_ATTEMPTS``) it records the
recipient ``failed`` with the reason instead.

Only genuine tasks get in (:func:`shared.messages.task_auth.authorize_task`): deployed private,
IAM lets only the queue's service account invoke it, and where it runs elsewhere the OIDC token
Cloud Tasks attaches is verified here; the emulator sends no token, so a shared secret header
(``DELIVER_SECRET``) is accepted, and only when it is configured.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from shared.deps import get_queue, get_queue_pacer, get_settings, get_store, get_vonage
from shared.web import endpoint, json_response, read_json, require_method

if TYPE_CHECKING:
    import flask

__all__ = ["deliver"]


@endpoint("deliver")
def deliver(request: flask.Request) -> flask.Response:
    """HTTP entry point of the deliver function (the target of the Cloud Tasks queue)."""
    from shared.messages.batches import deliver_task
    from shared.messages.task_auth import authorize_task, task_attempt

    settings = get_settings()
    require_method(request, "POST")
    authorize_task(request, settings)
    payload = read_json(request, 16 * 1024)
    attempt = task_attempt(request)
    result = deliver_task(
        payload,
        attempt=attempt,
        last_attempt=attempt >= settings.queue_max_attempts,
        settings=settings,
        store=get_store(),
        vonage=get_vonage(),
        pacer=get_queue_pacer(),
        queue=get_queue(),
        now=time.time(),
    )
    body: dict[str, object] = {"status": "done" if not result.retry else "retry"}
    if result.error:
        body["reason"] = result.error
    headers = {}
    if result.retry and result.retry_after is not None:
        headers["Retry-After"] = str(max(0, math.ceil(result.retry_after)))
    return json_response(body, status=result.status if result.status != 400 else 422, headers=headers)
