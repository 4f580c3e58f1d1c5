"""Consumers the Pub/Sub tests serve with functions-framework (``create_app(target=..., source=this file)``)."""

from __future__ import annotations

from typing import Any

from shared.events import INBOUND, consumer

ORDER = "test_event_order"


@consumer(INBOUND)
def record_order(event: dict[str, Any]) -> None:
    """Append the event's ``seq`` to its conversation's list in the store, in arrival order."""
    from shared.deps import get_store

    conversation = str(event.get("conversation") or "")
    seq = event["data"]["seq"]
    get_store().update(ORDER, conversation, lambda doc: {"seqs": [*(doc or {}).get("seqs", []), seq]})


@consumer(INBOUND)
def always_fails(event: dict[str, Any]) -> None:
    """A consumer with a bug: every delivery fails (the event must end in the dead-letter topic)."""
    raise RuntimeError("this consumer always fails")
