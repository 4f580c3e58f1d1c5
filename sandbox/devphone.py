"""The dev phone's model: what each phone number sees and does in the sandbox, read from its state.

Nothing here keeps a second copy of the sandbox: conversations come from the message log
(what the app sent), the inbound log (what the phone sent), the webhook delivery log (receipt
states) and the inbox (Verify codes); sending as a phone is ``inject_inbound``; faults are the
sandbox's fault rules. The only state of its own is the link to the app (set by the local run,
so the page can also act as the app: send, start and check a verification) and a short list
of what the app answered to those actions.

``sandbox.devphone_page`` renders it as HTML.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.faults import FaultRule
from sandbox.state import iso_time

if TYPE_CHECKING:
    from sandbox.context import SandboxContext

__all__ = [
    "AppLink",
    "DevPhoneState",
    "FAULT_TOGGLES",
    "act_as_app",
    "conversation",
    "digits",
    "enabled_toggles",
    "phone_numbers",
    "request_log",
    "send_as_phone",
    "set_toggles",
    "verify_codes",
]

RECEIPT_KINDS = ("sms-dlr", "message-status")
INBOUND_KINDS = ("sms-inbound", "message-inbound")
PHONE_CHANNELS = ("sms", "whatsapp")
ACTIVITY_KEPT = 20
APP_TIMEOUT = 15.0  # seconds the page waits for the app (a send may retry a throttled Vonage)


@dataclass(frozen=True)
class FaultToggle:
    """One switch on the page: a fault kind applied to every API request while on."""

    kind: str
    label: str
    help: str
    value: float | None = None


FAULT_TOGGLES = (
    FaultToggle("throttle", "Throttling", "Vonage answers every send with its throttling error (SMS status 1, HTTP 429)."),
    FaultToggle("5xx", "Server errors", "Vonage answers HTTP 500 without sending anything."),
    FaultToggle("delay", "Latency", "Vonage waits 2 seconds before answering each request.", 2.0),
    FaultToggle("drop_receipts", "Dropped receipts", "Messages are accepted but no receipt ever comes back."),
)
_TOGGLE_KINDS = frozenset(toggle.kind for toggle in FAULT_TOGGLES)


@dataclass(frozen=True)
class AppLink:
    """Where the app under test is, so the page can call it as a local caller would."""

    url: str  # the functions' base URL, e.g. http://127.0.0.1:8080
    token: str = ""  # an API token the app accepts (kept server-side, never put in the page)
    number: str = ""  # the app's own number: where the phone's texts go


class DevPhoneState:
    """The page's own small state: the app link, a form secret, and the app's recent answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.app: AppLink | None = None
        # Every form carries it: another web page the browser has open cannot post to the sandbox.
        self.form_secret = secrets.token_urlsafe(16)
        self._activity: dict[str, deque[dict[str, Any]]] = {}

    def link_app(self, url: str, token: str = "", number: str = "") -> None:
        """Let the page act as the app at ``url`` with ``token``; ``number`` is the app's own number."""
        self.app = AppLink(url.rstrip("/"), token, digits(number))

    def note(self, number: str, entry: dict[str, Any]) -> None:
        """Remember what the app answered to an action taken for ``number``."""
        with self._lock:
            self._activity.setdefault(digits(number), deque(maxlen=ACTIVITY_KEPT)).appendleft(entry)

    def activity(self, number: str) -> list[dict[str, Any]]:
        """The app's answers for ``number``, latest first."""
        with self._lock:
            return [dict(entry) for entry in self._activity.get(digits(number), ())]

    def reset(self) -> None:
        """Forget the app's answers (the link stays)."""
        with self._lock:
            self._activity.clear()


def digits(number: str | None) -> str:
    """A number as the sandbox keys it: its digits only (``+1 415-555`` and ``1415555`` are one)."""
    return "".join(ch for ch in str(number or "") if ch.isdigit())


# ---- reading ------------------------------------------------------------------------------


def phone_numbers(ctx: SandboxContext) -> list[str]:
    """Every phone number the sandbox has seen: sent to, texting in, or given a code (digits, sorted)."""
    app_number = ctx.devphone.app.number if ctx.devphone.app else ""
    seen = {digits(m.get("to")) for m in ctx.state.messages()}
    seen |= {digits(m.get("from")) for m in ctx.state.inbound()}
    seen.discard("")
    seen.discard(app_number)
    return sorted(seen)


def conversation(ctx: SandboxContext, number: str) -> list[dict[str, Any]]:
    """The thread of ``number``, oldest first: app->phone messages with receipt states, phone->app texts.

    Each item: ``direction`` (``to_phone`` | ``from_phone``), ``text``, ``channel``, ``at``, and
    ``states`` (each ``{"status", "delivery"}``: a receipt and whether the app took it; or, for a
    text the phone sent, whether the app's inbound webhook took it).
    """
    wanted = digits(number)
    deliveries = ctx.dispatcher.deliveries()
    receipts: dict[str, list[dict[str, Any]]] = {}
    by_id: dict[str, dict[str, Any]] = {}
    for delivery in deliveries:
        by_id[delivery["id"]] = delivery
        if delivery["kind"] in RECEIPT_KINDS and delivery.get("duplicate_of") is None:
            ref = delivery.get("ref") or {}
            key = str(ref.get("message_id") or ref.get("message_uuid") or "")
            receipts.setdefault(key, []).append(delivery)
    items: list[dict[str, Any]] = []
    for message in ctx.state.messages():
        if digits(message.get("to")) != wanted:
            continue
        states = []
        for message_id in message.get("message_ids") or [message.get("id")]:
            for delivery in receipts.get(str(message_id), []):
                states.append({"status": str(delivery["ref"].get("status")), "delivery": delivery["state"]})
        items.append(
            {
                "direction": "to_phone",
                "id": message.get("id"),
                "text": message.get("text") or f"[{message.get('message_type', 'message')}]",
                "channel": message.get("channel") or "sms",
                "api": message.get("api"),
                "at": message.get("received_at") or "",
                "states": _distinct(states),
                "trial_rejected": bool(message.get("trial_rejected")),
            }
        )
    for sent in ctx.state.inbound():
        if digits(sent.get("from")) != wanted:
            continue
        states = [
            {"status": "sent to app", "delivery": by_id[delivery_id]["state"]}
            for delivery_id in sent.get("delivery_ids", [])
            if delivery_id in by_id
        ]
        items.append(
            {
                "direction": "from_phone",
                "text": sent.get("text") or "",
                "channel": sent.get("channel") or "sms",
                "api": sent.get("api"),
                "at": sent.get("received_at") or "",
                "states": _distinct(states),
            }
        )
    items.sort(key=lambda item: item["at"])  # ISO times with milliseconds sort as text
    return items


def verify_codes(ctx: SandboxContext, number: str) -> list[dict[str, Any]]:
    """Verify codes delivered to ``number``, latest first (the inbox's verify entries)."""
    from sandbox.control import tick

    tick(ctx)  # a channel that just started has its code in the inbox when someone looks
    return [entry for entry in ctx.state.inbox(digits(number)) if entry.get("kind") == "verify"]


def request_log(ctx: SandboxContext, limit: int = 40) -> list[dict[str, Any]]:
    """The latest API requests the sandbox answered, latest first (credentials and codes hidden)."""
    return list(reversed(ctx.state.requests()))[:limit]


def enabled_toggles(ctx: SandboxContext) -> set[str]:
    """Which of the page's fault switches are on (a rule of that kind, for every API, always)."""
    return {
        rule.kind
        for rule in ctx.config.faults
        if rule.kind in _TOGGLE_KINDS and rule.api is None and rule.rate >= 1.0 and rule.count is None
    }


# ---- acting -------------------------------------------------------------------------------


def set_toggles(ctx: SandboxContext, enabled: Iterable[str]) -> None:
    """Switch the page's faults to exactly ``enabled``; fault rules set any other way are kept."""
    wanted = set(enabled)
    unknown = wanted - _TOGGLE_KINDS
    if unknown:
        raise ValueError(f"unknown fault switch: {', '.join(sorted(unknown))}")
    kept = [rule for rule in ctx.config.faults if not (rule.kind in _TOGGLE_KINDS and rule.api is None)]
    added = [FaultRule(kind=toggle.kind, value=toggle.value) for toggle in FAULT_TOGGLES if toggle.kind in wanted]
    ctx.update_config({"faults": tuple(kept + added)})


def send_as_phone(ctx: SandboxContext, number: str, text: str, *, channel: str = "sms", to: str = "") -> dict[str, Any]:
    """Text the app from ``number``: SMS (SMS API webhook) or WhatsApp (Messages API webhook).

    ValueError when the text is empty, the channel unknown or the app's number unknown.
    """
    from sandbox.inbound import inject_inbound  # imported here: sandbox.inbound needs the context

    if not text.strip():
        raise ValueError("type a message to send")
    if channel not in PHONE_CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(PHONE_CHANNELS)}")
    app_number = digits(to) or (ctx.devphone.app.number if ctx.devphone.app else "")
    if not app_number:
        raise ValueError("give the app's number (the Vonage number the phone texts)")
    if not digits(number):
        raise ValueError("the phone number has no digits")
    spec = {
        "from": digits(number),
        "to": app_number,
        "text": text,
        "channel": channel,
        "api": "sms" if channel == "sms" else "messages",
    }
    return inject_inbound(ctx, spec, ctx.faults.draw("inbound"))


def act_as_app(ctx: SandboxContext, number: str, action: str, form: dict[str, str]) -> dict[str, Any]:
    """Call the linked app as a local caller would (send, verify-start, verify-check) for ``number``.

    Returns and remembers ``{action, status, answer, at}``; ValueError when no app is linked or
    the action is unknown. The app's answer is shown as it came (it never holds a code or secret).
    """
    import httpx

    app = ctx.devphone.app
    if app is None:
        raise ValueError("no app is linked to this sandbox (the local run links it: ./local.sh)")
    phone = "+" + digits(number)
    if action == "send":
        path, body = "/send", {"to": phone, "text": form.get("text", "")}
    elif action == "verify-start":
        path, body = "/verify-start", {"number": phone, "brand": form.get("brand") or "Acme", "channels": ["sms"]}
    elif action == "verify-check":
        path, body = "/verify-check", {"request_id": form.get("request_id", ""), "code": form.get("code", "")}
    else:
        raise ValueError(f"unknown app action {action!r}")
    headers = {"Authorization": f"Bearer {app.token}"} if app.token else {}
    try:
        # trust_env=False: a proxy from the environment must never see a local call.
        with httpx.Client(trust_env=False, timeout=APP_TIMEOUT) as client:
            response = client.post(f"{app.url}{path}", json=body, headers=headers)
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text[:500]
        status = response.status_code
    except httpx.HTTPError as exc:
        answer, status = {"error": {"code": "app_unreachable", "message": str(exc)}}, 0
    entry = {"action": action, "status": status, "answer": answer, "at": iso_time(ctx.clock())}
    ctx.devphone.note(number, entry)
    return entry


def _distinct(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per status (a multi-part SMS has a receipt per part): the least settled delivery wins."""
    order = {"failed": 0, "refused": 1, "cancelled": 2, "retrying": 3, "pending": 4, "delivered": 5}
    merged: dict[str, dict[str, Any]] = {}
    for state in states:
        current = merged.get(state["status"])
        if current is None or order.get(state["delivery"], 9) < order.get(current["delivery"], 9):
            merged[state["status"]] = state
    return list(merged.values())
