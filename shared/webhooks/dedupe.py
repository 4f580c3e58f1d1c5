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

Folded dedupe (issue 18: round trips per webhook event). When the whole work of a delivery is
store writes (a status receipt applied to a message found by its id, an inbound message with
nothing to hand on), there is no ``processing`` step: the dedupe document is one more item of the
work's own ``update_many`` (:func:`finish_update` with ``folded=True``), read in the same
transaction. Found ``done``, it raises :class:`DuplicateDelivery`, which aborts the transaction
(nothing written); otherwise the work and ``done`` commit together. Concurrent copies are
serialized by the store's transaction (PostgreSQL: the second INSERT's unique violation runs the
transaction again, which then finds ``done``; Firestore: transactional reads lock missing
documents too; SQLite: ``BEGIN IMMEDIATE``). A failed write leaves nothing: the retry redoes it.
Paths with effects outside the store (keywords, the reply handler, parked receipts...) keep
:func:`begin_event` / :func:`finish_event`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared.errors import RecordExistsError
from shared.store.base import StateStore, Update
from shared.webhooks.clock import iso_time

__all__ = ["EVENTS", "DuplicateDelivery", "begin_event", "finish_event", "finish_update"]

EVENTS = "webhook_events"


class DuplicateDelivery(Exception):
    """Raised inside a folded write (``finish_update(folded=True)``) whose dedupe document is
    already ``done``: it aborts the transaction, so the copy writes nothing. ``doc`` is the
    document as that transaction read it (its outbox, for events a failed publish left pending)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__("the delivery was already processed")
        self.doc = doc


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
    also: Sequence[Update] = (),
) -> None:
    """Mark the delivery processed: later copies are dropped without further work.

    ``events``: the CloudEvents of this outcome, recorded in this same write (the outbox,
    ``shared.events.outbox``); the caller publishes them after. A copy that finds the delivery
    already done writes nothing: the first one recorded the same events (same ids).
    ``also``: other documents' updates made in the same ``update_many`` (queued outbox marks).
    """
    update = finish_update(key, ttl=ttl, now=now, events=lambda: events or [])
    if also:
        store.update_many([update, *also])
    else:
        store.update(update.collection, update.key, update.fn, ttl=update.ttl)


def finish_update(
    key: str,
    *,
    ttl: float,
    now: float | None,
    events: Callable[[], list[dict[str, Any]]],
    folded: bool = False,
) -> Update:
    """:func:`finish_event`'s write as an Update, to travel in another write's ``update_many``
    (a status receipt's message update). ``events`` is asked inside the write, so it may
    depend on what the writes before it in the same ``update_many`` did.

    ``folded``: no :func:`begin_event` came before (see the module's docstring): a ``done``
    document raises :class:`DuplicateDelivery` instead of leaving it unchanged."""
    at = iso_time(now)

    def done(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is not None and doc.get("state") == "done":
            if folded:
                raise DuplicateDelivery(doc)
            return None
        extra: dict[str, Any] = {}
        outcome = events()
        if outcome:
            from shared.events.outbox import outbox_fields

            extra = outbox_fields(outcome, key=key, now=now)
        first = {} if doc is not None else {"first_at": at}  # folded: no begin_event created it
        return {**first, **(doc or {}), "state": "done", "done_at": at, **extra}

    return Update(EVENTS, key, done, ttl=ttl)

