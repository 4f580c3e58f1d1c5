"""Once-only processing of webhook deliveries.

Vonage delivers every event at least once, sometimes several copies at nearly the same
moment. Each delivery key gets one document in ``webhook_events``, created atomically
(``StateStore.create``: never check-then-insert). It starts ``processing`` and becomes
``done`` only after the event is fully stored and handed on, so:

- a copy that arrives after ``done`` is dropped at once (cheap: one failed create, one read);
- a copy that finds ``processing`` (a concurrent copy, or an earlier attempt that failed with a
  5xx) runs the processing again. Every later step is idempotent (atomic creates, transactional
  updates keyed by Vonage's ids), so the retry completes what the failed attempt left undone and
  the concurrent copy changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.errors import RecordExistsError
from shared.store.base import StateStore, Update
from shared.webhooks.clock import iso_time

__all__ = ["EVENTS", "begin_event", "finish_event", "finish_update"]

EVENTS = "webhook_events"


def begin_event(store: StateStore, key: str, *, ttl: float, now: float | None = None) -> bool:
    """True when the delivery must be processed; False when it was already processed completely.

    Raises StoreError when the store fails (the webhook then answers 503 and Vonage retries).
    """
    try:
        store.create(EVENTS, key, {"state": "processing", "first_at": iso_time(now)}, ttl=ttl)
        return True
    except RecordExistsError:
        doc = store.get(EVENTS, key)
        return not (doc is not None and doc.get("state") == "done")


def finish_event(
    store: StateStore,
    key: str,
    *,
    ttl: float,
    now: float | None = None,
    events: list[dict[str, Any]] | None = None,
) -> None:
    """Mark the delivery processed: later copies are dropped without further work.

    ``events``: the CloudEvents of this outcome, recorded in this same write (the outbox,
    ``shared.events.outbox``); the caller publishes them after. A copy that finds the delivery
    already done writes nothing: the first one recorded the same events (same ids).
    """
    update = finish_update(key, ttl=ttl, now=now, events=lambda: events or [])
    store.update(update.collection, update.key, update.fn, ttl=update.ttl)


def finish_update(
    key: str, *, ttl: float, now: float | None, events: Callable[[], list[dict[str, Any]]]
) -> Update:
    """:func:`finish_event`'s write as an Update, to travel in another write's ``update_many``
    (a status receipt's message update). ``events`` is asked inside the write, so it may
    depend on what the writes before it in the same ``update_many`` did."""
    at = iso_time(now)

    def done(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is not None and doc.get("state") == "done":
            return None
        extra: dict[str, Any] = {}
        outcome = events()
        if outcome:
            from shared.events.outbox import outbox_fields

            extra = outbox_fields(outcome, key=key, now=now)
        return {**(doc or {}), "state": "done", "done_at": at, **extra}

    return Update(EVENTS, key, done, ttl=ttl)

