"""The outbox: an event is stored in the same write that applies its webhook, then published.

No new store primitive: the events ride on the webhook's dedupe document (``webhook_events``),
in the one ``update`` that marks it ``done`` (``shared.webhooks.dedupe.finish_event``). So the
webhook's outcome and its events are committed together on every backend of the generic
``StateStore`` contract, and:

- a crash before that write leaves the dedupe document ``processing``: Vonage's retry runs the
  webhook again and writes the events then;
- a failed publish after it leaves ``outbox_state: pending``: the webhook answers 503, and
  Vonage's retry (a duplicate) publishes the pending events before answering 200; the sweep
  (:func:`sweep`) publishes whatever is still pending after that;
- a publish that succeeded marks the document ``published`` (one more small update).

A published event may be published again (a crash between publish and the mark, a sweep racing
a retry): consumers deduplicate by event id (``shared.events.consumer``).

Events emitted outside a webhook (``com.vonage.batch.completed.v1``) use their own document in
``events_outbox``, created atomically under the event id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from shared.errors import RecordExistsError
from shared.events.base import EventBus
from shared.log import get_logger
from shared.store.base import StateStore

__all__ = [
    "OUTBOX_COLLECTION",
    "PENDING",
    "PUBLISHED",
    "flush",
    "maybe_sweep",
    "outbox_fields",
    "publish_recorded",
    "record_and_publish",
    "sweep",
]

log = get_logger("shared.events.outbox")

OUTBOX_FIELD = "outbox"
STATE_FIELD = "outbox_state"
AT_FIELD = "outbox_at"
PENDING = "pending"
PUBLISHED = "published"
# Documents that carry an outbox: webhook dedupe documents, and stand-alone events.
WEBHOOK_EVENTS = "webhook_events"
OUTBOX_COLLECTION = "events_outbox"
SWEPT_COLLECTIONS = (WEBHOOK_EVENTS, OUTBOX_COLLECTION)
SWEEP_GRACE = 30.0  # seconds a pending outbox is left to its own webhook before the sweep takes it
SWEEP_EVERY = 300.0  # seconds between two piggy-backed sweeps in one process (maybe_sweep)
_sweep_lock = threading.Lock()
_last_sweep = time.monotonic()  # the first one runs SWEEP_EVERY after start-up


def outbox_fields(events: Iterable[Mapping[str, Any]], *, key: str, now: float | None = None) -> dict[str, Any]:
    """The fields to merge into document ``key``, in the write that applies the events' outcome."""
    stored = [dict(event) for event in events]
    if not stored:
        return {}
    # The key is repeated inside: a query (the sweep) returns documents without their keys.
    return {OUTBOX_FIELD: stored, STATE_FIELD: PENDING, AT_FIELD: time.time() if now is None else now, "outbox_key": key}


def publish_recorded(
    store: StateStore, bus: EventBus, collection: str, key: str, events: list[dict[str, Any]]
) -> None:
    """Publish events already recorded on (collection, key), then mark them published.

    Raises PublishError when the bus refuses (the events stay pending). A failure to write the
    mark is only logged: the events went out, and a second publish is deduplicated downstream.
    """
    if not events:
        return
    bus.publish(events)
    try:
        store.update(collection, key, _mark_published)
    except Exception as exc:
        log.warning("events published but not marked; they may be published again", extra={"error": type(exc).__name__})


def flush(store: StateStore, bus: EventBus, collection: str, key: str) -> int:
    """Publish the pending events of one document (a retried webhook); how many were published."""
    doc = store.get(collection, key)
    if not doc or doc.get(STATE_FIELD) != PENDING:
        return 0
    events = [dict(event) for event in doc.get(OUTBOX_FIELD) or [] if isinstance(event, Mapping)]
    publish_recorded(store, bus, collection, key, events)
    return len(events)


def sweep(
    store: StateStore,
    bus: EventBus,
    *,
    now: float | None = None,
    grace: float | None = None,
    limit: int = 100,
) -> int:
    """Publish every outbox left pending for more than ``grace`` seconds; how many events went out.

    Stops at the first refusal of the bus (PublishError propagates: the bus is down, try later).
    """
    now = time.time() if now is None else now
    grace = SWEEP_GRACE if grace is None else grace
    published = 0
    for collection in SWEPT_COLLECTIONS:
        for doc in store.query(collection, where={STATE_FIELD: PENDING}, limit=limit):
            try:
                at = float(doc.get(AT_FIELD) or 0)
            except (TypeError, ValueError):
                at = 0.0
            if now - at < grace:
                continue
            key = doc.get("outbox_key")
            if not isinstance(key, str) or not key:
                continue
            events = [dict(event) for event in doc.get(OUTBOX_FIELD) or [] if isinstance(event, Mapping)]
            publish_recorded(store, bus, collection, key, events)
            published += len(events)
    if published:
        log.info("outbox sweep published events", extra={"count": published})
    return published


def maybe_sweep(store: StateStore, bus: EventBus, *, every: float | None = None) -> int:
    """The sweep, piggy-backed on webhook traffic: at most once per ``SWEEP_EVERY`` per process.

    Serverless instances have no background worker, so the webhooks themselves sweep now and
    then (normally one query that finds nothing). Never raises: a failing sweep waits its turn.
    """
    global _last_sweep
    now = time.monotonic()
    if now - _last_sweep < (SWEEP_EVERY if every is None else every) or not _sweep_lock.acquire(blocking=False):
        return 0
    try:
        _last_sweep = now
        return sweep(store, bus, limit=20)
    except Exception as exc:
        log.warning("outbox sweep failed; next time", extra={"error": type(exc).__name__})
        return 0
    finally:
        _sweep_lock.release()


def record_and_publish(
    store: StateStore, bus: EventBus | None, event: Mapping[str, Any], *, ttl: float, now: float | None = None
) -> bool:
    """For an event that no webhook write carries: record it under its id, then publish it.

    False when it was recorded before (the same outcome emitted twice: nothing more to do here; a
    pending one is the sweep's). Raises PublishError when the bus refuses (it stays pending).
    """
    key = str(event["id"])
    fields = outbox_fields([event], key=key, now=now)
    try:
        store.create(OUTBOX_COLLECTION, key, fields, ttl=ttl)
    except RecordExistsError:
        return False
    if bus is not None:
        publish_recorded(store, bus, OUTBOX_COLLECTION, key, [dict(event)])
    return True


def _mark_published(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None or doc.get(STATE_FIELD) != PENDING:
        return None
    doc[STATE_FIELD] = PUBLISHED
    return doc
