"""Consumers: a function that reacts to events, once per event id, on any bus.

A consumer is written once and runs everywhere::

    from shared.events import INBOUND, consumer

    @consumer(INBOUND)
    def notify_crm(event):            # the CloudEvent as a dict: id, type, time, data, ...
        crm.log(event["data"]["from"], event["data"]["text"])

- Deployed as a Cloud Function with a Pub/Sub trigger, functions-framework calls it with the
  Pub/Sub wrapper event (``google.cloud.pubsub.topic.v1.messagePublished``, also what a raw push
  subscription becomes); on the embedded bus it is called with our event itself. :func:`unwrap`
  turns both into the event we published.
- Events of other types are acknowledged and ignored (a shared topic may carry several types).
- Once per event id: a document in ``events_processed`` (key ``consumer:event id``) is created
  atomically before the work and marked ``done`` after it. A redelivered event that finds
  ``done`` is acknowledged without a second effect; one that finds a live ``processing`` claim
  (another delivery is running it) fails, so the bus redelivers it later; a claim older than
  ``lease`` seconds belongs to a crashed attempt and is taken over.
- An exception releases the claim and propagates: functions-framework answers 500, Pub/Sub
  redelivers per the subscription's retry policy and finally dead-letters it.
"""

from __future__ import annotations

import base64
import functools
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.errors import RecordExistsError, ServiceError
from shared.events.base import parse_event
from shared.log import get_logger
from shared.store.base import StateStore

__all__ = [
    "PROCESSED",
    "PUBSUB_MESSAGE_PUBLISHED",
    "ConsumerBusy",
    "consume_once",
    "consumer",
    "declare_cloud_event",
    "unwrap",
]

log = get_logger("shared.events.consumer")

PROCESSED = "events_processed"
PUBSUB_MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
DEFAULT_LEASE = 120.0  # seconds after which a consumer's claim is presumed dead


class ConsumerBusy(ServiceError):
    """Another delivery of this event is being processed: the bus should deliver it again later."""

    status = 503
    code = "event_in_progress"


def unwrap(cloud_event: Any) -> dict[str, Any]:
    """Our event (as a dict) from what the runtime passed: our CloudEvent, or Pub/Sub's wrapper."""
    from cloudevents.conversion import to_dict

    event = cloud_event if isinstance(cloud_event, Mapping) else to_dict(cloud_event)
    if event.get("type") == PUBSUB_MESSAGE_PUBLISHED:
        data = event.get("data") or {}
        message = data.get("message") if isinstance(data, Mapping) else None
        encoded = message.get("data") if isinstance(message, Mapping) else None
        if not isinstance(encoded, str):
            raise ValueError("a Pub/Sub event without message data")
        return parse_event(base64.b64decode(encoded))
    return parse_event(event)


def consume_once(
    store: StateStore,
    name: str,
    event: Mapping[str, Any],
    fn: Callable[[dict[str, Any]], Any],
    *,
    ttl: float,
    lease: float = DEFAULT_LEASE,
    clock: Callable[[], float] = time.time,
) -> bool:
    """Run ``fn(event)`` unless consumer ``name`` already processed this event id; True when it ran."""
    key = f"{name}:{event['id']}"
    claim = uuid.uuid4().hex
    now = clock()
    try:
        store.create(PROCESSED, key, {"state": "processing", "claim": claim, "at": now}, ttl=ttl)
    except RecordExistsError:
        if not _take_over(store, key, claim, now, lease):
            doc = store.get(PROCESSED, key) or {}
            if doc.get("state") == "done":
                log.info("event already processed; acknowledged", extra={"event_id": event["id"], "consumer": name})
                return False
            raise ConsumerBusy("this event is being processed by another delivery; deliver it again later", retry_after=5)
    try:
        fn(dict(event))
    except BaseException:
        _release(store, key, claim)
        raise
    store.update(PROCESSED, key, lambda doc: {**(doc or {}), "state": "done", "done_at": clock()})
    return True


def consumer(*types: str, name: str | None = None, lease: float = DEFAULT_LEASE) -> Callable[[Callable[[dict[str, Any]], Any]], Callable[[Any], None]]:
    """Decorate ``fn(event: dict)`` into a CloudEvent function (functions-framework, embedded bus).

    ``types``: the event types it handles (others are acknowledged and ignored). ``name``: its
    dedupe namespace (defaults to the function's name; two consumers of one event each run once).
    """
    wanted = frozenset(types)

    def decorate(fn: Callable[[dict[str, Any]], Any]) -> Callable[[Any], None]:
        consumer_name = name or fn.__name__

        @functools.wraps(fn)
        def handle(cloud_event: Any) -> None:
            from shared.deps import get_settings, get_store

            event = unwrap(cloud_event)
            if wanted and event.get("type") not in wanted:
                log.debug("event of another type ignored", extra={"event_type": event.get("type"), "consumer": consumer_name})
                return
            consume_once(get_store(), consumer_name, event, fn, ttl=get_settings().dedupe_ttl, lease=lease)

        handle.event_types = wanted  # type: ignore[attr-defined]
        return declare_cloud_event(handle)

    return decorate


def declare_cloud_event(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    """Tell functions-framework, when it is the host, that ``fn`` takes CloudEvents; returns ``fn``.

    Only a framework already loaded is told: serving a function, functions-framework is imported
    before it executes the source file, so the declaration is there when it looks the target up
    (no --signature-type needed). Importing it here instead would cost every process that merely
    imports a consumer (main.py, a WSGI host, Lambda, the embedded bus) functions-framework,
    Flask and cloudevents, ~280 ms of cold start. main.py declares its consumers again when the
    framework asks for one, for a process that imported the consumer before the framework.
    """
    framework = sys.modules.get("functions_framework")
    if framework is not None:
        framework.cloud_event(fn)  # records fn.__name__ as a CloudEvent target; its wrapper is not needed
    return fn


def _take_over(store: StateStore, key: str, claim: str, now: float, lease: float) -> bool:
    """Take a stale ``processing`` claim in a transaction; True when this call won it."""

    def take(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None:
            return {"state": "processing", "claim": claim, "at": now}
        if doc.get("state") == "done":
            return None
        try:
            stale = now - float(doc.get("at") or 0) >= lease
        except (TypeError, ValueError):
            stale = True
        if doc.get("state") == "processing" and not stale:
            return None
        return {**doc, "state": "processing", "claim": claim, "at": now}

    after = store.update(PROCESSED, key, take)
    return bool(after and after.get("claim") == claim and after.get("state") == "processing")


def _release(store: StateStore, key: str, claim: str) -> None:
    """Give the claim back after a failure, so the redelivery runs at once (best effort)."""

    def release(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None or doc.get("claim") != claim or doc.get("state") != "processing":
            return None
        return {**doc, "state": "failed"}

    try:
        store.update(PROCESSED, key, release)
    except Exception:
        log.warning("could not release an event claim; it expires with its lease", extra={"key_kind": "event"})


def handled_types(fn: Any) -> Iterable[str] | None:
    """The event types a decorated consumer handles (None: all)."""
    types = getattr(fn, "event_types", None)
    return types or None
