"""Status webhooks: SMS API delivery receipts, Messages API statuses, Verify v2 callbacks.

Receipts are normalised into ``StatusEvent`` and applied by ``shared.messages.records``
(monotonic state machine per message, per-part aggregation, parking of receipts that arrive
before the send stored its Vonage ids, full history in arrival order). Dedupe is per *event*
(Vonage id, status, error code, timestamp), never per message: one message legitimately gets
several statuses. Verify v2 callbacks go to ``shared.verify.callbacks.apply_verify_callback``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from shared.config import Settings
from shared.events.builders import status_event, verify_completed_event
from shared.events.outbox import MarkRide, flush, maybe_sweep, publish_recorded
from shared.log import get_logger
from shared.messages.records import StatusEvent, record_status_event
from shared.store.base import StateStore, Update
from shared.webhooks.dedupe import EVENTS, DuplicateDelivery, begin_event, finish_event, finish_update
from shared.webhooks.formats import KIND_VERIFY, classify, parse_status

__all__ = ["receive_status", "status_event_key", "verify_event_key"]

log = get_logger("shared.webhooks.status")

# "Use the process's bus" (shared.deps.get_bus); pass None for no events.
DEFAULT_BUS: Any = object()


def status_event_key(event: StatusEvent) -> str:
    """Dedupe key of a receipt: one key per event, never per message.

    Messages API statuses carry the event's own time, so the key is (id, status, error code,
    timestamp). SMS API receipts are rendered afresh on every retry: their ``message-timestamp``
    is "when Vonage started pushing" and ``scts`` has minute precision, so a retried receipt
    can carry new times. Their key is (messageId, status, err-code): a second receipt saying
    the same thing about the same part adds nothing, and the history stays clean.
    """
    if event.source == "sms":
        return "st:sms:" + "|".join([event.vonage_id, event.status, event.error_code or ""])
    return "st:" + event.event_key


def verify_event_key(payload: Mapping[str, Any]) -> str:
    """Dedupe key of a Verify v2 callback: request, type, channel, status and Vonage's time."""
    parts = [
        str(payload.get(name) or "")
        for name in ("request_id", "type", "channel", "status", "triggered_at", "submitted_at", "finalized_at")
    ]
    return "verify:" + "|".join(parts)


def receive_status(
    fields: Mapping[str, Any],
    *,
    settings: Settings,
    store: StateStore,
    clock: Callable[[], float] = time.time,
    bus: Any = DEFAULT_BUS,
) -> dict[str, Any]:
    """Process one authenticated status webhook; return the answer for Vonage.

    ``bus``: the event bus (default ``shared.deps.get_bus()``; None: no events). The outcome's
    CloudEvent is recorded in the dedupe write and published after it commits (docs/events.md).

    A receipt for a message found by its own Vonage id is the index read plus ONE transaction
    (the message, the dedupe record, queued outbox marks): ``shared.webhooks.dedupe``'s folded
    dedupe. Other receipts (parked, failover items) create the dedupe record first, as before.

    ``result`` is ``applied`` (the message record changed), ``parked`` (no record for this id
    yet: kept and merged when the send stores its ids), ``duplicate``, or for Verify callbacks
    ``applied``/``unknown_request``. Raises BadRequestError (400) for a payload that is not a
    status webhook and StoreError (503) when the store fails.
    """
    now = clock()
    if bus is DEFAULT_BUS:
        from shared.deps import get_bus

        bus = get_bus()
    if classify(fields) == KIND_VERIFY:
        return _receive_verify(fields, settings=settings, store=store, now=now, bus=bus)
    event = parse_status(fields)
    key = status_event_key(event)

    def duplicate(doc: dict[str, Any] | None = None) -> dict[str, Any]:
        log.info("status duplicate dropped", extra={"vonage_id": event.vonage_id, "status_value": event.status})
        if bus is not None:
            # Events a failed publish left behind go out now.
            flush(store, bus, EVENTS, key, doc=doc, defer_mark=True)
        return {"result": "duplicate", "id": event.vonage_id, "status": event.status}

    def outcome_events(result: str) -> list[dict[str, Any]]:
        return [status_event(key, event, fields, result, at=now)] if bus is not None and result != "duplicate" else []

    began: list[bool] = []

    def begin() -> bool:
        # Parking, failover items, settle-by-receipt: the dedupe record is created first, as ever.
        began.append(begin_event(store, key, ttl=settings.dedupe_ttl, now=now))
        return began[-1]

    finished: list[bool] = []
    with MarkRide(store, exclude=[(EVENTS, key)]) as marks:

        def finish(changed: Callable[[], bool]) -> list[Update]:
            # A receipt applied to the message found by its own id: the dedupe record is read and
            # marked done (with its outbox event) in the message's own transaction, and outbox
            # marks queued by earlier webhooks ride along (dedupe.py: folded dedupe).
            update = finish_update(key, ttl=settings.dedupe_ttl, now=now, folded=True,
                                   events=lambda: outcome_events("applied" if changed() else "duplicate"))

            def done(doc: dict[str, Any] | None) -> dict[str, Any] | None:
                finished.append(True)  # it ran in the write that committed (or that write raised)
                return update.fn(doc)

            return [Update(update.collection, update.key, done, ttl=update.ttl), *marks.updates]

        try:
            result = record_status_event(store, event, finish=finish, begin=begin)
        except DuplicateDelivery as copy:
            return duplicate(copy.doc)
        if began and not began[-1]:
            return duplicate()
        if result == "parked" and event.extra.get("client_ref"):
            # A queued send whose answer was lost is known only by its client_ref (docs/queue.md).
            from shared.messages.batches import settle_by_receipt

            if settle_by_receipt(store, str(event.extra["client_ref"]), event.vonage_id, now=now):
                result = "applied"
        events = outcome_events(result)
        if not finished:
            finish_event(store, key, ttl=settings.dedupe_ttl, now=now, events=events, also=marks.updates)
        marks.landed()
    if events:
        publish_recorded(store, bus, EVENTS, key, events, defer_mark=True)
    if bus is not None:
        maybe_sweep(store, bus)  # what no retry came back for (rarely: a query that finds nothing)
    log.info(
        "status recorded",
        extra={
            "vonage_id": event.vonage_id,
            "status_value": event.status,
            "result": result,
            "error_code": event.error_code,
            "source": event.source,
        },
    )
    return {"result": result, "id": event.vonage_id, "status": event.status}


def _receive_verify(
    fields: Mapping[str, Any], *, settings: Settings, store: StateStore, now: float, bus: Any
) -> dict[str, Any]:
    from shared.verify.callbacks import apply_verify_callback

    key = verify_event_key(fields)
    request_id = str(fields.get("request_id") or "")
    if not begin_event(store, key, ttl=settings.dedupe_ttl, now=now):
        if bus is not None:
            flush(store, bus, EVENTS, key, defer_mark=True)
        return {"result": "duplicate", "request_id": request_id}
    known = apply_verify_callback(store, fields)
    completed = verify_completed_event(key, fields, at=now) if bus is not None and known else None
    events = [completed] if completed is not None else []
    with MarkRide(store, exclude=[(EVENTS, key)]) as marks:
        finish_event(store, key, ttl=settings.dedupe_ttl, now=now, events=events, also=marks.updates)
        marks.landed()
    if events:
        publish_recorded(store, bus, EVENTS, key, events, defer_mark=True)
    if not known:
        log.warning("verify callback for an unknown request", extra={"request_id": request_id, "type": fields.get("type")})
    return {"result": "applied" if known else "unknown_request", "request_id": request_id}
