"""Which items a recipient's send carries: the WhatsApp 24-hour window and channel preference.

WhatsApp delivers a free-form message (anything but a template) only inside the customer-service
window: 24 hours from the person's last message to the business (vonage-api.md 5.4; outside it
Vonage rejects the message with error 1340). The inbound function stores every message it
receives (collection ``inbound``), so the window of a number is known here:

- :func:`whatsapp_window_open`: the newest WhatsApp message FROM the number is less than 24 h
  old. Its time is the earlier of Vonage's ``timestamp`` and our ``received_at`` (the window
  started when the person wrote, and erring early closes it sooner: a template goes instead of a
  message that could not arrive). Exactly 24 h after is closed.
- :func:`plan_items`: the items one recipient's request sends. With ``channels``, per channel in
  order: WhatsApp free-form inside the window, else the WhatsApp template when given, else the
  channel is left out; every other channel as given. With an explicit list (``channel`` +
  ``failover``), a free-form WhatsApp item outside the window is left out (it cannot arrive).
  When nothing is left: ``whatsapp_window_closed`` (422), before any call to Vonage.

``SEND_WHATSAPP_WINDOW_CHECK=false`` turns the check off (the window is then the caller's
business, e.g. when inbound WhatsApp messages are received by another deployment).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.errors import ValidationError

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.messages.request import MessageItem, SendRequest
    from shared.store.base import StateStore

__all__ = ["WINDOW_SECONDS", "Plan", "last_whatsapp_message_at", "plan_items", "whatsapp_window_open"]

WINDOW_SECONDS = 24 * 3600.0
INBOUND = "inbound"  # shared.webhooks.inbound.INBOUND (not imported: shared.messages stays below webhooks)
RECENT_MESSAGES = 50  # newest messages of the number looked at (the inbound listing's own index serves it)


@dataclass(frozen=True)
class Plan:
    """The items to send, and the ones left out with why."""

    items: tuple[MessageItem, ...]
    skipped: tuple[dict[str, str], ...] = ()


def last_whatsapp_message_at(store: StateStore, address: str) -> float | None:
    """Epoch seconds of the newest stored WhatsApp message from ``address`` (E.164), or None."""
    docs = store.query(INBOUND, where={"from": address}, order_by="received_at", descending=True, limit=RECENT_MESSAGES)
    newest: float | None = None
    for doc in docs:
        if doc.get("channel") != "whatsapp":
            continue
        times = [t for t in (_epoch(doc.get("timestamp")), _epoch(doc.get("received_at"))) if t is not None]
        if times:
            at = min(times)
            newest = at if newest is None else max(newest, at)
    return newest


def whatsapp_window_open(store: StateStore, address: str, now: float) -> bool:
    """True while ``address`` wrote to us on WhatsApp less than 24 hours before ``now``."""
    last = last_whatsapp_message_at(store, address)
    return last is not None and now - last < WINDOW_SECONDS


def plan_items(
    request: SendRequest, address: str, *, store: StateStore, settings: Settings, clock: Callable[[], float]
) -> Plan:
    """The items this recipient's send carries; ValidationError ``whatsapp_window_closed`` when none can arrive."""
    candidates = request.candidates if request.channels else request.items
    needs_window = settings.whatsapp_window_check and any(item.whatsapp_free_form for item in candidates)
    open_ = whatsapp_window_open(store, address, clock()) if needs_window else True
    items: list[MessageItem] = []
    skipped: list[dict[str, str]] = []
    whatsapp_done = False
    for item in candidates:
        if request.channels and item.channel == "whatsapp":
            if whatsapp_done:
                continue  # the free-form item went; its template is not needed
            if item.whatsapp_free_form and not open_:
                skipped.append({"channel": "whatsapp", "message_type": item.content.kind, "reason": "whatsapp_window_closed"})
                continue
            whatsapp_done = True
            items.append(item)
            continue
        if item.whatsapp_free_form and not open_:
            skipped.append({"channel": "whatsapp", "message_type": item.content.kind, "reason": "whatsapp_window_closed"})
            continue
        items.append(item)
    if not items:
        raise ValidationError(
            "this number has not written to you on WhatsApp in the last 24 hours, so a free-form WhatsApp message "
            "cannot reach it: send a template (template), or add another channel (failover or channels)",
            field="channels" if request.channels else "channel",
            code="whatsapp_window_closed",
            details={"to": address, "window_hours": int(WINDOW_SECONDS // 3600)},
        )
    return Plan(tuple(items), tuple(skipped))


def _epoch(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()
