"""A consumer that hands a conversation to a human: a support agent answers from their own phone.

- A customer texts our number: the message is forwarded to the agent's phone as
  ``[+447911123456] text``, and that customer becomes the agent's current conversation.
- The agent texts our number: the text goes to their current customer. ``@+447911123456 text``
  picks the customer explicitly (and makes them current).

Run it from the bus, not from the webhook: it reacts to ``com.vonage.message.inbound.v1``.
Locally (embedded bus)::

    SUPPORT_AGENT_NUMBER=+447700900555 EVENTS_CONSUMERS=examples.support_agent:support_relay \\
    INBOUND_HANDLER= ./local.sh

On Google Cloud, re-export ``support_relay`` from main.py and deploy it like ``on_inbound``
(docs/events.md), with ``SUPPORT_AGENT_NUMBER`` in its environment and no ``INBOUND_HANDLER``
(so no bot answers as well).

Exactly once: the ``consumer`` decorator runs it once per event id, and each relayed text is
sent through the shared send path under the idempotency key ``support-relay:<event id>``,
so even a redelivery racing the first delivery cannot text anyone twice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from shared.events import INBOUND, consumer

__all__ = ["SESSIONS", "relay", "support_relay"]

SESSIONS = "support_sessions"  # one document per agent: their current customer
_PICK = re.compile(r"^\s*@(\+?\d{6,15})\s+(.*)$", re.DOTALL)


def relay(
    event: Mapping[str, Any],
    *,
    agent: str,
    store: Any,
    send: Callable[..., Mapping[str, Any]],
) -> dict[str, Any] | None:
    """Relay one inbound message between a customer and the agent; what was sent, or None."""
    data = event.get("data") or {}
    sender, ours, text = str(data.get("from") or ""), str(data.get("to") or ""), str(data.get("text") or "")
    if not sender or not ours or not text.strip():
        return None
    agent = "+" + agent.lstrip("+")
    if sender == agent:
        picked = _PICK.match(text)
        if picked:
            customer, text = "+" + picked.group(1).lstrip("+"), picked.group(2)
            store.update(SESSIONS, agent, lambda doc: {**(doc or {}), "customer": customer})
        else:
            customer = str((store.get(SESSIONS, agent) or {}).get("customer") or "")
            if not customer:
                return _send(send, event, to=agent, sender=ours, text="No customer yet: start with @+<number> <text>")
        return _send(send, event, to=customer, sender=ours, text=text)
    store.update(SESSIONS, agent, lambda doc: {**(doc or {}), "customer": sender})
    return _send(send, event, to=agent, sender=ours, text=f"[{sender}] {text}")


def _send(send: Callable[..., Mapping[str, Any]], event: Mapping[str, Any], *, to: str, sender: str, text: str) -> dict[str, Any]:
    result = send(
        to=to,
        text=text,
        sender=sender.lstrip("+"),  # Vonage wants digits in `from`
        channel=(event.get("data") or {}).get("channel") or "sms",
        idempotency_key=f"support-relay:{event['id']}",
        bypass_suppression=False,
    )
    return {"to": to, "text": text, "result": dict(result)}


@consumer(INBOUND)
def support_relay(event: dict[str, Any]) -> None:
    """The deployable consumer: SUPPORT_AGENT_NUMBER is the agent's phone (E.164)."""
    from shared.deps import get_settings, get_store, get_vonage
    from shared.webhooks.inbound import service_sender

    agent = os.environ.get("SUPPORT_AGENT_NUMBER", "")  # an example's own setting, read where it is used
    if not agent:
        raise RuntimeError("SUPPORT_AGENT_NUMBER is not set")
    store = get_store()
    relay(event, agent=agent, store=store, send=service_sender(get_settings(), store, get_vonage))
