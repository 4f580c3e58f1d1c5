"""``com.vonage.batch.completed.v1``: the one call the send path makes when a batch has finished.

The integrator wires it where a batch's last recipient is done (helper i12 builds batches)::

    from shared.events.batch import emit_batch_completed
    emit_batch_completed(batch_id, {"total": 100, "submitted": 98, "failed": 2})

The event is recorded under its id in ``events_outbox`` (atomic create: a batch finished twice
emits once) and published; a bus that refuses leaves it pending for the sweep, and the send path
never fails because of the bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.events.base import PublishError
from shared.events.builders import batch_completed_event
from shared.events.outbox import record_and_publish
from shared.log import get_logger

__all__ = ["emit_batch_completed"]

log = get_logger("shared.events.batch")
_DEFAULT: Any = object()


def emit_batch_completed(
    batch_id: str, summary: Mapping[str, Any], *, store: Any = None, bus: Any = _DEFAULT, ttl: float | None = None
) -> bool:
    """Record and publish the batch's completion; False when there is no bus or it was emitted before."""
    from shared.deps import get_bus, get_settings, get_store

    bus = get_bus() if bus is _DEFAULT else bus
    if bus is None:
        return False
    event = batch_completed_event(batch_id, summary)
    try:
        return record_and_publish(store or get_store(), bus, event, ttl=ttl or get_settings().dedupe_ttl)
    except PublishError:
        log.warning("batch.completed event not published yet; the outbox sweep will", extra={"batch_id": batch_id})
        return True
