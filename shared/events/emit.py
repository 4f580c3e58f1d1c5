"""Events the send path and the account checks emit outside a webhook (no webhook write to ride on).

``emit_batch_completed`` when a batch's last recipient is done, ``emit_balance_low`` when the
account balance is below ``BALANCE_ALERT_THRESHOLD``. Each event is recorded under its id in
``events_outbox`` (atomic create: the same event emitted twice goes out once) and published; a
bus that refuses leaves it pending for the sweep, and the caller never fails because of the bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.events.base import PublishError
from shared.events.builders import balance_low_event, batch_completed_event
from shared.events.outbox import record_and_publish
from shared.log import get_logger

__all__ = ["emit", "emit_balance_low", "emit_batch_completed"]

log = get_logger("shared.events.emit")
_DEFAULT: Any = object()


def emit(event: Mapping[str, Any], *, store: Any = None, bus: Any = _DEFAULT, ttl: float | None = None) -> bool:
    """Record and publish ``event``; False when there is no bus or it was emitted before. Never raises
    because of the bus: an unpublished event stays in the outbox for the sweep."""
    from shared.deps import get_bus, get_settings, get_store

    bus = get_bus() if bus is _DEFAULT else bus
    if bus is None:
        return False
    try:
        return record_and_publish(store or get_store(), bus, event, ttl=ttl or get_settings().dedupe_ttl)
    except PublishError:
        log.warning("event not published yet; the outbox sweep will", extra={"event_type": event.get("type")})
        return True


def emit_batch_completed(
    batch_id: str, summary: Mapping[str, Any], *, store: Any = None, bus: Any = _DEFAULT, ttl: float | None = None
) -> bool:
    """``com.vonage.batch.completed.v1`` for a finished batch (emitted once per batch)."""
    return emit(batch_completed_event(batch_id, summary), store=store, bus=bus, ttl=ttl)


def emit_balance_low(
    data: Mapping[str, Any], *, at: float, store: Any = None, bus: Any = _DEFAULT, ttl: float | None = None
) -> bool:
    """``com.vonage.account.balance_low.v1``: at most one event per hour, so a consumer pages once."""
    return emit(balance_low_event(data, at=at), store=store, bus=bus, ttl=ttl)
