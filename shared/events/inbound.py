"""``on_inbound``: the reply handler (``INBOUND_HANDLER``) run from the inbound event, once.

With ``INBOUND_DISPATCH=bus`` the inbound webhook stores the message, publishes
``com.vonage.message.inbound.v1`` and answers Vonage at once; this consumer then runs the same
hand-off the webhook ran inline before (``shared.webhooks.inbound.hand_off``): a claim on the
message record, the handler's decision saved before the reply is sent, the reply sent through
the shared send path under the idempotency key ``inbound-reply:<message id>``. So a redelivered
event, a second consumer instance or a Vonage retry can never send a second reply. A reply that
cannot go out yet (Vonage throttled or down, another attempt holding it) raises: the bus delivers
the event again later.
"""

from __future__ import annotations

from typing import Any

from shared.events.base import INBOUND
from shared.events.consumer import consumer

__all__ = ["on_inbound", "reply_from_event"]


def reply_from_event(event: dict[str, Any], *, settings: Any = None, store: Any = None, send: Any = None) -> dict[str, Any]:
    """Run the hand-off of the event's message; returns its final ``handoff`` state."""
    from shared.deps import get_settings, get_store, get_vonage
    from shared.webhooks.inbound import INBOUND as INBOUND_COLLECTION
    from shared.webhooks.inbound import hand_off, service_sender

    settings = settings or get_settings()
    store = store or get_store()
    data = dict(event.get("data") or {})
    message_id = str(data.get("id") or "")
    if not message_id:
        raise ValueError("an inbound event without a message id")
    if store.get(INBOUND_COLLECTION, message_id) is None:
        # The consumer may run against a store the webhook did not write (or after expiry):
        # the event holds the message, so the hand-off can still run exactly once.
        from shared.errors import RecordExistsError

        try:
            store.create(INBOUND_COLLECTION, message_id, {**data, "handoff": {"state": "pending"}})
        except RecordExistsError:
            pass
    if send is None:
        send = service_sender(settings, store, get_vonage)
    return hand_off(store, message_id, settings=settings, send=send)


@consumer(INBOUND)
def on_inbound(event: dict[str, Any]) -> None:
    """Consumer of ``com.vonage.message.inbound.v1``: the bot's reply goes out from here."""
    reply_from_event(event)
