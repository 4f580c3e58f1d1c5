"""The outbox: an event is stored in the same write that applies its webhook, then published.

No new store primitive: the events ride on the webhook's dedupe document (``webhook_events``),
in the one write that marks it ``done`` (``shared.webhooks.dedupe``). So the webhook's outcome
and its events are committed together on every backend of the generic ``StateStore`` contract,
and an event is never published before the state it describes is committed:

- a crash before that write leaves the dedupe document ``processing`` (or absent): Vonage's
  retry runs the webhook again and writes the events then;
- a failed publish after it leaves ``outbox_state: pending``: the webhook answers 503, and
  Vonage's retry (a duplicate) publishes the pending events before answering 200; the sweep
  (:func:`sweep`) publishes whatever is still pending after that;
- a publish that succeeded is marked ``published``. For a webhook the mark is not a write of its
  own (issue 18: round trips per webhook event): the document is queued in this process
  (:func:`publish_recorded` with ``defer_mark``) and the next webhook transaction of this process
  carries the marks (:class:`MarkRide`: more documents in the same ``update_many``, no extra
  round trip). The sweep writes this process's queued marks before it looks for pending
  outboxes, so it never republishes what this process published; documents whose mark never
  rides (the instance stopped, or stayed idle past ``SWEEP_GRACE`` while another instance swept)
  are republished once by the sweep, which marks them at once.

A published event may be published again (a mark that never rode, a sweep racing a retry):
consumers deduplicate by event id (``shared.events.consumer``).

Events emitted outside a webhook (``com.vonage.batch.completed.v1``) use their own document in
``events_outbox``, created atomically under the event id, marked at once after the publish.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from shared.errors import RecordExistsError
from shared.events.base import EventBus
from shared.log import get_logger
from shared.store.base import StateStore, Update

__all__ = [
    "MarkRide",
    "OUTBOX_COLLECTION",
    "PENDING",
    "PUBLISHED",
    "flush",
    "flush_marks",
    "is_mark_queued",
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
# Seconds a pending outbox is left to its own webhook (its retry, its queued mark) before the
# sweep takes it. A mark waits for this process's next webhook transaction: an instance that gets
# at least one webhook per SWEEP_GRACE never has a published event republished by another
# instance's sweep; a quieter or stopped one has each unmarked document republished once.
SWEEP_GRACE = 120.0
SWEEP_EVERY = 300.0  # seconds between two piggy-backed sweeps in one process (maybe_sweep)
_sweep_lock = threading.Lock()
_last_sweep = time.monotonic()  # the first one runs SWEEP_EVERY after start-up

MARK_RIDE = 10  # queued marks one webhook transaction carries (each is one more document in it)
MARK_QUEUE_MAX = 1000  # beyond it the oldest marks are dropped: the sweep republishes those once
MARK_FLUSH_CHUNK = 100  # documents per update_many when the queue is written on its own
_marks_lock = threading.Lock()
# Per store object: (collection, key) of documents published by this process and not yet marked,
# oldest first (a dict as an ordered set).
_marks: weakref.WeakKeyDictionary[StateStore, dict[tuple[str, str], None]] = weakref.WeakKeyDictionary()


def outbox_fields(events: Iterable[Mapping[str, Any]], *, key: str, now: float | None = None) -> dict[str, Any]:
    """The fields to merge into document ``key``, in the write that applies the events' outcome."""
    stored = [dict(event) for event in events]
    if not stored:
        return {}
    # The key is repeated inside: a query (the sweep) returns documents without their keys.
    return {OUTBOX_FIELD: stored, STATE_FIELD: PENDING, AT_FIELD: time.time() if now is None else now, "outbox_key": key}


def publish_recorded(
    store: StateStore,
    bus: EventBus,
    collection: str,
    key: str,
    events: list[dict[str, Any]],
    *,
    defer_mark: bool = False,
) -> None:
    """Publish events already recorded (committed) on (collection, key), then mark them published.

    ``defer_mark`` (a webhook): the mark is queued to ride on this process's next webhook
    transaction (:class:`MarkRide`) instead of costing a write now. Raises PublishError when the
    bus refuses (the events stay pending, nothing is queued). A failure to write the mark is only
    logged: the events went out, and a second publish is deduplicated downstream.
    """
    if not events:
        return
    bus.publish(events)
    if defer_mark:
        _queue_mark(store, collection, key)
        return
    try:
        store.update(collection, key, _mark_published)
    except Exception as exc:
        log.warning("events published but not marked; they may be published again", extra={"error": type(exc).__name__})


def flush(
    store: StateStore,
    bus: EventBus,
    collection: str,
    key: str,
    *,
    doc: Mapping[str, Any] | None = None,
    defer_mark: bool = False,
) -> int:
    """Publish the pending events of one document (a retried webhook); how many were published.

    ``doc``: the document as the caller's transaction just read it (else it is read here). A
    document whose mark is queued in this process was published by it: nothing to do.
    """
    if is_mark_queued(store, collection, key):
        return 0
    if doc is None:
        doc = store.get(collection, key)
    if not doc or doc.get(STATE_FIELD) != PENDING:
        return 0
    events = [dict(event) for event in doc.get(OUTBOX_FIELD) or [] if isinstance(event, Mapping)]
    publish_recorded(store, bus, collection, key, events, defer_mark=defer_mark)
    return len(events)


class MarkRide:
    """Queued marks taken to ride on one webhook transaction (a ``with`` block around it).

    ``updates``: the marks as :class:`Update` items to add to that transaction's ``update_many``
    (none of ``exclude``, the documents the transaction writes itself). Call :meth:`landed` once
    the transaction that carried them committed; otherwise (it failed, it was aborted as a
    duplicate, another path ran) they go back to the queue when the block ends.
    """

    def __init__(self, store: StateStore, *, exclude: Collection[tuple[str, str]] = ()) -> None:
        self._store = store
        self._landed = False
        with _marks_lock:
            queued = _marks.get(store)
            self._taken = [ref for ref in queued if ref not in exclude][:MARK_RIDE] if queued else []
            for ref in self._taken:
                del queued[ref]  # type: ignore[index]

    @property
    def updates(self) -> list[Update]:
        return [Update(collection, key, _mark_published) for collection, key in self._taken]

    def landed(self) -> None:
        self._landed = True

    def __enter__(self) -> MarkRide:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._landed and self._taken:
            _requeue(self._store, self._taken)


def flush_marks(store: StateStore) -> int:
    """Write every mark queued for ``store`` now (the sweep, before it looks for pending
    outboxes); how many documents were marked. Raises StoreError (the marks stay queued)."""
    with _marks_lock:
        taken = list(_marks.pop(store, {}))
    for start in range(0, len(taken), MARK_FLUSH_CHUNK):
        chunk = taken[start:start + MARK_FLUSH_CHUNK]
        try:
            store.update_many([Update(collection, key, _mark_published) for collection, key in chunk])
        except BaseException:
            _requeue(store, taken[start:])
            raise
    return len(taken)


def is_mark_queued(store: StateStore, collection: str, key: str) -> bool:
    """True when this process published (collection, key)'s events and its mark waits for a ride."""
    with _marks_lock:
        return (collection, key) in _marks.get(store, {})


def _queue_mark(store: StateStore, collection: str, key: str) -> None:
    with _marks_lock:
        queued = _marks.setdefault(store, {})
        queued.pop((collection, key), None)
        queued[(collection, key)] = None
        while len(queued) > MARK_QUEUE_MAX:
            del queued[next(iter(queued))]  # the oldest: the sweep republishes it once


def _requeue(store: StateStore, refs: list[tuple[str, str]]) -> None:
    """Give taken marks back, ahead of the ones queued meanwhile (they are older)."""
    with _marks_lock:
        queued = _marks.get(store) or {}
        merged = dict.fromkeys(refs)
        merged.update(queued)
        while len(merged) > MARK_QUEUE_MAX:
            del merged[next(iter(merged))]
        _marks[store] = merged


def _forget_marks_in_child() -> None:
    # A forked worker starts with no queue of its own (the parent marks what it published) and a
    # fresh lock (the parent's may have been held by another thread at the fork).
    global _marks_lock
    _marks_lock = threading.Lock()
    _marks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_marks_in_child)


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
    The marks this process queued are written first; the documents the sweep publishes are
    marked at once (each is republished at most once).
    """
    now = time.time() if now is None else now
    grace = SWEEP_GRACE if grace is None else grace
    flush_marks(store)  # what this process published is marked first, never republished
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
