"""Inbound messages: store once, reassemble, honour STOP/START/HELP, hand on to the reply handler.

The path of one inbound webhook (after ``shared.webhooks.receive`` authenticated and parsed it):

1. ``begin_event``: an atomic create of the delivery's dedupe document; a delivery already
   processed completely ends here (``duplicate``). A complete message with nothing to hand on
   (no keyword, no handler, not dispatched) skips steps 1-5: its record (handed off), its dedupe
   document (done, with the outbox) and queued outbox marks are ONE transaction
   (``_receive_settled``; ``shared.webhooks.dedupe``: folded dedupe).
2. A part of a long SMS goes into its reassembly document (``shared.webhooks.concat``); until
   the last part is in, the answer is ``part_stored``.
3. The complete message is created in collection ``inbound`` under its Vonage id (atomic
   create: a concurrent copy finds it and carries on with the same record).
4. The hand-off, exactly once per message: a claim is taken in a transaction on the record
   (``handoff.state`` ``pending`` -> ``claimed`` -> ``done``); a message with no keyword and no
   handler has nothing to hand on, so it is created with its hand-off done (no claim). The claimant applies the keyword
   (suppression list), or calls ``INBOUND_HANDLER``; the decision (action and reply text) is
   saved on the record *before* the reply is sent, and the reply goes through the shared send
   path with the idempotency key ``inbound-reply:<message id>``. A retry after a crash therefore
   never calls the handler twice once its answer is saved, and never sends twice.
5. ``finish_event`` marks the delivery done.

Choices:
- The reply is sent inline, before answering Vonage (work after the response is not reliable on
  Cloud Functions / Cloud Run, whose CPU is throttled once the response is sent). A failed send is
  logged and recorded on the message but still answered 2xx: the inbound is stored, and a Vonage
  retry would not help a refused reply.
- A store failure anywhere answers 503 (Vonage retries; step 1 lets the retry through because
  the dedupe document is not ``done``) and releases the claim when it can.
- A copy that finds the hand-off claimed by another live attempt waits up to ``HANDOFF_WAIT``
  seconds for it; if it is still running, it answers 503 so Vonage asks again later, rather than
  2xx for work that might never finish. A claim older than ``HANDOFF_LEASE`` belongs to an
  attempt that died: the next delivery takes it over.
- Keyword messages (STOP, START, HELP...) get their confirmation and are not passed to the handler.
"""

from __future__ import annotations

import functools
import importlib
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from shared.config import Settings
from shared.errors import ConfigError, RecordExistsError, ServiceError, StoreError, ValidationError
from shared.events.builders import inbound_event, optout_event
from shared.events.outbox import MarkRide, flush, maybe_sweep, publish_recorded
from shared.log import get_logger
from shared.messages.suppression import suppress, unsuppress
from shared.store.base import StateStore, Update
from shared.webhooks.clock import iso_time
from shared.webhooks.concat import AssembledMessage, add_part
from shared.webhooks.dedupe import EVENTS, DuplicateDelivery, begin_event, finish_event, finish_update
from shared.webhooks.formats import InboundEvent, normalise_address, parse_inbound
from shared.webhooks.keywords import match_keyword

__all__ = [
    "HANDOFF_LEASE",
    "HANDOFF_WAIT",
    "INBOUND",
    "hand_off",
    "ReplySender",
    "list_inbound",
    "listing_options",
    "load_handler",
    "receive_inbound",
    "reply_idempotency_key",
    "service_sender",
]

log = get_logger("shared.webhooks.inbound")

INBOUND = "inbound"
HANDOFF_LEASE = 60.0  # seconds after which a claim is presumed dead (its attempt crashed)
HANDOFF_WAIT = 2.0  # seconds a concurrent copy waits for the claimant before answering 503
_POLL = 0.05
MAX_LIST = 200
# A reply refused with one of these was not sent and may go through later: the webhook answers 503.
RETRYABLE_REPLY_ERRORS = frozenset({"vonage_unavailable", "vonage_throttled"})

# "Use the process's bus" (shared.deps.get_bus); pass None for no events.
DEFAULT_BUS: Any = object()

# A send_text-like callable: send(to=, text=, sender=, channel=, idempotency_key=, bypass_suppression=) -> dict
ReplySender = Callable[..., Mapping[str, Any]]


def reply_idempotency_key(message_id: str) -> str:
    """The idempotency key of the one reply a message may get: a retried webhook reuses it."""
    return f"inbound-reply:{message_id}"


def service_sender(settings: Settings, store: StateStore, vonage: Callable[[], Any]) -> ReplySender:
    """The shared send path (``shared.messages.service.send_text``), Vonage client built on first use."""

    def send(**kwargs: Any) -> Mapping[str, Any]:
        from shared.messages.service import send_text

        return send_text(settings=settings, store=store, vonage=vonage(), **kwargs)

    return send


def receive_inbound(
    fields: Mapping[str, Any],
    *,
    settings: Settings,
    store: StateStore,
    send: ReplySender | None = None,
    clock: Callable[[], float] = time.time,
    bus: Any = DEFAULT_BUS,
) -> dict[str, Any]:
    """Process one authenticated inbound webhook; return the (text-free) answer for Vonage.

    ``bus``: the event bus (default: ``shared.deps.get_bus()``; None: no events). With a bus the
    message's events are recorded in the dedupe write and published after it; with
    ``INBOUND_DISPATCH=bus`` the reply handler runs from the bus (``on_inbound``), not here
    (STOP/START/HELP are still answered here: an opt-out must take effect at once).

    Raises BadRequestError (400) for a payload that is not an inbound message, StoreError
    (503) when the store fails, ConfigError (500) when INBOUND_HANDLER cannot be loaded, and a
    503 ``handoff_in_progress`` when another attempt is still handing the message on.
    """
    event = parse_inbound(fields)
    now = clock()
    key = event.dedupe_key
    if bus is DEFAULT_BUS:
        from shared.deps import get_bus

        bus = get_bus()
    if event.concat is None:
        record = _record_from_event(event, now)
        settled = None if _dispatched(record, settings, bus) else _settled_handoff(record, settings=settings, now=now)
        if settled is not None:
            try:
                return _receive_settled(store, event, record, settled, settings=settings, now=now, bus=bus)
            except _HandoffUnfinished:
                pass  # an earlier attempt left the record with its hand-off to run: the full path runs it

    if not begin_event(store, key, ttl=settings.dedupe_ttl, now=now):
        return _duplicate(store, event, bus=bus)

    if event.concat is not None:
        assembled = add_part(store, event, ttl=settings.concat_ttl, now=now)
        if assembled is None:
            with MarkRide(store, exclude=[(EVENTS, key)]) as marks:
                finish_event(store, key, ttl=settings.dedupe_ttl, now=now, also=marks.updates)
                marks.landed()
            log.info(
                "inbound part stored",
                extra={"vonage_id": event.vonage_id, "part": event.concat.part, "total": event.concat.total},
            )
            return {"result": "part_stored", "id": event.vonage_id, "part": event.concat.part, "total": event.concat.total}
        record = _record_from_parts(event, assembled, now)
    else:
        record = _record_from_event(event, now)
    _link_choice(store, record)

    dispatched = _dispatched(record, settings, bus)
    settled = None if dispatched else _settled_handoff(record, settings=settings, now=clock())
    if settled is not None:
        # Nothing to do for this message (no keyword, no handler): it is created handed off, so a
        # new message costs no claim and no release (issue 18: round trips per webhook event).
        record["handoff"] = settled
    created = _store_record(store, record)
    if created:
        _log_stored(record)
    if dispatched:
        handoff: dict[str, Any] = {"action": "dispatched"}  # on_inbound runs the handler from the event
    elif created and settled is not None:
        handoff = settled
    else:  # a copy or a retry finds the record: its hand-off runs (or is found done) as always
        if send is None:
            from shared.deps import get_vonage

            send = service_sender(settings, store, get_vonage)
        handoff = _hand_off(store, record["id"], settings=settings, send=send, clock=clock)
    events: list[dict[str, Any]] = []
    if bus is not None:
        events.append(inbound_event(record, at=now))
        optout = optout_event(record, handoff, at=now)
        if optout is not None:
            events.append(optout)
    with MarkRide(store, exclude=[(EVENTS, key)]) as marks:
        finish_event(store, key, ttl=settings.dedupe_ttl, now=now, events=events, also=marks.updates)
        marks.landed()
    if events:
        # PublishError: 503, the retry publishes.
        publish_recorded(store, bus, EVENTS, key, events, defer_mark=True)
    if bus is not None:
        maybe_sweep(store, bus)  # what no retry came back for (rarely: a query that finds nothing)
    return {"result": "stored" if created else "duplicate", "id": record["id"], "action": handoff.get("action")}


def _dispatched(record: Mapping[str, Any], settings: Settings, bus: Any) -> bool:
    """True when the reply handler runs from the bus (``on_inbound``), not in this webhook."""
    return bus is not None and settings.inbound_dispatch == "bus" and match_keyword(record.get("text")) is None


class _HandoffUnfinished(Exception):
    """The record exists with a hand-off that is not done: the folded write is aborted."""


def _duplicate(store: StateStore, event: InboundEvent, *, bus: Any, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    log.info("inbound duplicate dropped", extra={"vonage_id": event.vonage_id, "channel": event.channel})
    if bus is not None:
        # Events a failed publish left behind go out now.
        flush(store, bus, EVENTS, event.dedupe_key, doc=doc, defer_mark=True)
    return {"result": "duplicate", "id": event.vonage_id}


def _receive_settled(
    store: StateStore,
    event: InboundEvent,
    record: dict[str, Any],
    settled: dict[str, Any],
    *,
    settings: Settings,
    now: float,
    bus: Any,
) -> dict[str, Any]:
    """A complete message with nothing to hand on: ONE transaction creates the record handed off,
    reads and marks the dedupe record done with the outbox, and carries queued outbox marks
    (``shared.webhooks.dedupe``: folded dedupe). A done dedupe record aborts it (a duplicate)."""
    key = event.dedupe_key
    _link_choice(store, record)
    record["handoff"] = settled
    found: list[dict[str, Any] | None] = []

    def create(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        found.append(doc)  # the last run is the one that committed
        return None if doc is not None else record

    def handoff() -> dict[str, Any]:
        return settled if found[-1] is None else dict(found[-1].get("handoff") or {})

    def outcome() -> list[dict[str, Any]]:
        if bus is None:
            return []
        optout = optout_event(record, handoff(), at=now)
        return [inbound_event(record, at=now), *([optout] if optout is not None else [])]

    finish = finish_update(key, ttl=settings.dedupe_ttl, now=now, events=outcome, folded=True)

    def done(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if handoff().get("state") != "done" and not (doc is not None and doc.get("state") == "done"):
            raise _HandoffUnfinished()
        return finish.fn(doc)

    with MarkRide(store, exclude=[(EVENTS, key)]) as marks:
        try:
            store.update_many([Update(INBOUND, record["id"], create), Update(EVENTS, key, done, ttl=finish.ttl),
                               *marks.updates])
        except DuplicateDelivery as copy:
            return _duplicate(store, event, bus=bus, doc=copy.doc)
        marks.landed()
    created = found[-1] is None
    if created:
        _log_stored(record)
    events = outcome()
    if events:
        # PublishError: 503, the retry publishes.
        publish_recorded(store, bus, EVENTS, key, events, defer_mark=True)
    if bus is not None:
        maybe_sweep(store, bus)  # what no retry came back for (rarely: a query that finds nothing)
    return {"result": "stored" if created else "duplicate", "id": record["id"], "action": handoff().get("action")}


# ---- records -------------------------------------------------------------------------


def _record_from_event(event: InboundEvent, now: float) -> dict[str, Any]:
    return _record(
        message_id=event.vonage_id,
        event=event,
        vonage_ids=[event.vonage_id],
        text=event.text,
        message_type=event.message_type,
        timestamp=event.timestamp,
        raw=event.raw,
        details=dict(event.details),
        now=now,
    )


def _record_from_parts(event: InboundEvent, assembled: AssembledMessage, now: float) -> dict[str, Any]:
    return _record(
        message_id=assembled.message_id,
        event=event,
        vonage_ids=list(assembled.vonage_ids),
        text=assembled.text,
        message_type=assembled.message_type,
        timestamp=assembled.timestamp,
        raw=list(assembled.raw),
        details=dict(assembled.details),
        now=now,
    )


def _record(
    *,
    message_id: str,
    event: InboundEvent,
    vonage_ids: list[str],
    text: str | None,
    message_type: str,
    timestamp: str | None,
    raw: str | list[str],
    details: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    return {
        "id": message_id,
        "api": event.api,
        "channel": event.channel,
        "from": event.sender,
        "to": event.recipient,
        "message_type": message_type,
        "text": text,
        "media": [dict(item) for item in event.media],
        "details": details,
        "vonage_ids": vonage_ids,
        "parts": len(vonage_ids),
        "timestamp": timestamp,
        "received_at": iso_time(now),
        "raw": raw,
        "handoff": {"state": "pending"},
    }


def _link_choice(store: StateStore, record: dict[str, Any]) -> None:
    """Tie a reply to the interactive message it answers: our message id, and button or list.

    Vonage's reply object is the same for a reply button and a list row; the message we sent
    (found by ``context.message_uuid``) says which it was.
    """
    choice = (record.get("details") or {}).get("choice")
    if not isinstance(choice, dict) or not choice.get("in_reply_to"):
        return
    from shared.messages.records import MESSAGE_IDS, MESSAGES

    index = store.get(MESSAGE_IDS, str(choice["in_reply_to"]))
    sent = store.get(MESSAGES, str(index["message_id"])) if index and index.get("message_id") else None
    if not sent:
        return
    choice["message_id"] = sent["id"]
    interactive_type = sent.get("interactive_type")
    if choice.get("kind") == "reply" and interactive_type in ("button", "list"):
        choice["kind"] = f"{interactive_type}_reply"


def _log_stored(record: Mapping[str, Any]) -> None:
    log.info(
        "inbound stored",
        extra={
            "message_id": record["id"],
            "channel": record["channel"],
            "from": record["from"],
            "api": record["api"],
            "parts": record["parts"],
            "message_type": record["message_type"],
        },
    )


def _store_record(store: StateStore, record: dict[str, Any]) -> bool:
    """Create the message record; False when it already exists (a copy or a retry got there first)."""
    try:
        store.create(INBOUND, record["id"], record)
        return True
    except RecordExistsError:
        return False


# ---- the hand-off --------------------------------------------------------------------


def hand_off(
    store: StateStore,
    message_id: str,
    *,
    settings: Settings,
    send: ReplySender,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """The keyword / handler / reply step of a stored message, once (also from the bus: on_inbound)."""
    return _hand_off(store, message_id, settings=settings, send=send, clock=clock)


def _hand_off(
    store: StateStore,
    message_id: str,
    *,
    settings: Settings,
    send: ReplySender,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Run the keyword / handler / reply step once for the message; return its ``handoff`` state."""
    claim = uuid.uuid4().hex
    deadline = time.monotonic() + HANDOFF_WAIT
    while True:
        record = store.get(INBOUND, message_id)
        if record is None:  # cannot happen after _store_record, unless someone deleted it
            raise StoreError("the inbound record vanished before its hand-off")
        handoff = record.get("handoff") or {}
        if handoff.get("state") == "done":
            return handoff
        if not _claim_is_live(handoff, clock()):
            record = _claim(store, message_id, claim, clock())
            if record is not None:
                break
        if time.monotonic() >= deadline:
            log.warning("inbound hand-off still in progress elsewhere; asking Vonage to retry", extra={"message_id": message_id})
            raise ServiceError(
                "this message is being handed on by another attempt; retry later",
                code="handoff_in_progress",
                status=503,
                retry_after=5,
            )
        time.sleep(_POLL)

    try:
        decision = (record.get("handoff") or {}).get("decision")
        if decision is None:
            decision = _decide(store, record, settings=settings)
            if decision.get("reply"):
                # Saved before sending: a retry after a crash re-sends this text, never asks the handler again.
                _update_handoff(store, message_id, claim, {"decision": decision})
        result = _send_reply(record, decision, send=send) if decision.get("reply") else None
        final = {"state": "done", "action": decision["action"], "decision": decision, "done_at": iso_time(clock())}
        if result is not None:
            final["reply_result"] = result
        return _update_handoff(store, message_id, claim, final, force=True)
    except BaseException:
        _release(store, message_id, claim)
        raise


def _settled_handoff(record: Mapping[str, Any], *, settings: Settings, now: float) -> dict[str, Any] | None:
    """The finished hand-off of a message whose decision has no side effect (no keyword, no
    handler: ``_decide`` answers "none"), so it can be written with the record; else None."""
    if match_keyword(record.get("text")) is not None or settings.inbound_handler:
        return None
    decision = {"action": "none", "reply": None}
    return {"state": "done", "action": "none", "decision": decision, "done_at": iso_time(now)}


def _claim_is_live(handoff: Mapping[str, Any], now: float) -> bool:
    if handoff.get("state") != "claimed":
        return False
    try:
        return now - float(handoff.get("claimed_at") or 0) < HANDOFF_LEASE
    except (TypeError, ValueError):
        return False


def _claim(store: StateStore, message_id: str, claim: str, now: float) -> dict[str, Any] | None:
    """Take the hand-off in a transaction; the record when this call won it, else None."""

    def take(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None:
            return None
        handoff = dict(doc.get("handoff") or {})
        if handoff.get("state") == "done" or _claim_is_live(handoff, now):
            return None
        handoff.update(state="claimed", claim=claim, claimed_at=now, attempts=int(handoff.get("attempts") or 0) + 1)
        doc["handoff"] = handoff
        return doc

    after = store.update(INBOUND, message_id, take)
    if after is not None and (after.get("handoff") or {}).get("claim") == claim:
        return after
    return None


def _update_handoff(
    store: StateStore, message_id: str, claim: str, changes: Mapping[str, Any], *, force: bool = False
) -> dict[str, Any]:
    """Merge ``changes`` into the record's hand-off while our claim holds (always, with ``force``)."""

    def merge(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None:
            return None
        handoff = dict(doc.get("handoff") or {})
        if not force and handoff.get("claim") != claim:
            return None
        handoff.update(changes)
        doc["handoff"] = handoff
        return doc

    after = store.update(INBOUND, message_id, merge)
    return dict((after or {}).get("handoff") or changes)


def _release(store: StateStore, message_id: str, claim: str) -> None:
    """Give the claim back after a failure so Vonage's retry can take it (best effort)."""

    def release(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None:
            return None
        handoff = dict(doc.get("handoff") or {})
        if handoff.get("claim") != claim or handoff.get("state") != "claimed":
            return None
        handoff["state"] = "pending"
        doc["handoff"] = handoff
        return doc

    try:
        store.update(INBOUND, message_id, release)
    except Exception:
        # The store is failing (that is usually why we are here); the lease expires on its own.
        log.warning("could not release the inbound hand-off claim", extra={"message_id": message_id})


def _decide(store: StateStore, record: Mapping[str, Any], *, settings: Settings) -> dict[str, Any]:
    """Apply a keyword (suppression list) or ask the handler; return the action and reply text."""
    keyword = match_keyword(record.get("text"))
    sender = str(record.get("from") or "")
    if keyword is not None and keyword.action == "optout":
        changed = suppress(store, sender, keyword=keyword.keyword, source_id=str(record["id"]))
        log.info("sender opted out", extra={"from": sender, "keyword": keyword.keyword, "changed": changed})
        # The confirmation must reach a number that is now suppressed.
        return {"action": "optout", "keyword": keyword.keyword, "reply": settings.optout_reply, "bypass_suppression": True}
    if keyword is not None and keyword.action == "optin":
        changed = unsuppress(store, sender, keyword=keyword.keyword)
        log.info("sender opted in", extra={"from": sender, "keyword": keyword.keyword, "changed": changed})
        return {"action": "optin", "keyword": keyword.keyword, "reply": settings.optin_reply, "bypass_suppression": False}
    if keyword is not None:
        # HELP is answered even for a suppressed number (carrier rules require it).
        return {"action": "help", "keyword": keyword.keyword, "reply": settings.help_reply, "bypass_suppression": True}
    if not settings.inbound_handler:
        return {"action": "none", "reply": None}
    handler = load_handler(settings.inbound_handler)
    message = {k: v for k, v in record.items() if k != "handoff"}
    try:
        answer = handler(message)
    except Exception as exc:
        # A bug in the handler is the app's to fix; retrying the webhook would only repeat it.
        log.error("inbound handler failed", extra={"message_id": record["id"], "error": type(exc).__name__})
        return {"action": "handler", "reply": None, "error": f"handler raised {type(exc).__name__}"}
    return {"action": "handler", "reply": _reply_text(answer, str(record["id"])), "bypass_suppression": False}


def _reply_text(answer: Any, message_id: str) -> str | None:
    if answer is None:
        return None
    if isinstance(answer, Mapping):
        answer = answer.get("text")
    if isinstance(answer, str):
        return answer if answer.strip() else None
    log.warning(
        "inbound handler returned something other than None, a str or {'text': str}; no reply sent",
        extra={"message_id": message_id, "type": type(answer).__name__},
    )
    return None


def _send_reply(record: Mapping[str, Any], decision: Mapping[str, Any], *, send: ReplySender) -> dict[str, Any]:
    """Send the reply once (idempotency key from the message id); failures are logged and recorded."""
    message_id = str(record["id"])
    sender = str(record.get("to") or "")
    try:
        result = send(
            to=record["from"],
            text=decision["reply"],
            sender=sender[1:] if sender.startswith("+") else sender,  # Vonage wants digits in `from`
            channel=record.get("channel") or "sms",
            idempotency_key=reply_idempotency_key(message_id),
            bypass_suppression=bool(decision.get("bypass_suppression")),
        )
    except StoreError as exc:
        if isinstance(exc, RecordExistsError):
            return _reply_failed(message_id, exc.code)
        raise  # our store is failing: 503, Vonage retries, the key prevents a second send
    except ServiceError as exc:
        if exc.code == "idempotency_in_progress":
            raise _reply_held(message_id) from exc
        return _reply_failed(message_id, exc.code, getattr(exc, "vonage_code", None))
    except Exception as exc:
        log.error("inbound reply failed unexpectedly", extra={"message_id": message_id, "error": type(exc).__name__})
        return {"sent": False, "error": "internal_error"}
    # send_text reports Vonage's refusals in the result rather than raising (status failed,
    # opted_out, unknown, in_progress): record what happened, whatever it was.
    result = result if isinstance(result, Mapping) else {}
    status = str(result.get("status") or "submitted")
    if status == "in_progress":
        raise _reply_held(message_id)
    error = result.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    if status == "failed" and code in RETRYABLE_REPLY_ERRORS:
        # Nothing was sent (the key was released) and trying later can work: let Vonage retry the
        # webhook rather than finish the hand-off without the reply.
        log.warning("inbound reply not sent yet; asking Vonage to retry", extra={"message_id": message_id, "error_code": code})
        raise ServiceError(
            "Vonage could not take the reply to this message now; retry later",
            code=str(code),
            status=503,
            retry_after=5,
        )
    outcome: dict[str, Any] = {"sent": status == "submitted", "status": status}
    for name in ("id", "message_id", "message_uuid"):
        if isinstance(result.get(name), str):
            outcome[name] = result[name]
    if result.get("replayed"):
        outcome["replayed"] = True
    error = result.get("error")
    if isinstance(error, Mapping) and isinstance(error.get("code"), str):
        outcome["error"] = error["code"]
    if outcome["sent"]:
        log.info("inbound reply sent", extra={"message_id": message_id, "reply_id": outcome.get("id"), "replayed": outcome.get("replayed", False)})
    else:
        log.warning("inbound reply not sent", extra={"message_id": message_id, "reply_status": status, "error_code": outcome.get("error")})
    return outcome


def _reply_held(message_id: str) -> ServiceError:
    """Another attempt holds the reply's idempotency key (the request's or the recipient's).

    It may be sending right now, or it failed and could not release the key (which then
    expires). Finishing the hand-off would lose the reply for good; a 503 makes Vonage ask
    again, and then the key replays the sent reply or is free to send it.
    """
    log.warning("inbound reply held by another attempt; asking Vonage to retry", extra={"message_id": message_id})
    return ServiceError(
        "the reply to this message is being sent by another attempt; retry later",
        code="handoff_in_progress",
        status=503,
        retry_after=5,
    )


def _reply_failed(message_id: str, code: str, vonage_code: Any = None) -> dict[str, Any]:
    log.warning("inbound reply not sent", extra={"message_id": message_id, "error_code": code, "vonage_code": vonage_code})
    failure: dict[str, Any] = {"sent": False, "error": code}
    if vonage_code is not None:
        failure["vonage_code"] = str(vonage_code)
    return failure


@functools.lru_cache(maxsize=8)
def load_handler(spec: str) -> Callable[[dict[str, Any]], Any]:
    """Import ``package.module:function`` once per process; ConfigError when it cannot be."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"INBOUND_HANDLER module {module_name!r} cannot be imported ({type(exc).__name__})") from exc
    handler = module
    for part in attr.split("."):
        handler = getattr(handler, part, None)
        if handler is None:
            raise ConfigError(f"INBOUND_HANDLER: {module_name!r} has no attribute {attr!r}")
    if not callable(handler):
        raise ConfigError(f"INBOUND_HANDLER {spec!r} is not callable")
    return handler  # type: ignore[return-value]


# ---- listing -------------------------------------------------------------------------


def list_inbound(
    store: StateStore,
    *,
    number: str | None = None,
    limit: int = 50,
    include_raw: bool = False,
) -> list[dict[str, Any]]:
    """Stored inbound messages, newest first; with ``number``, those from or to that number
    (a phone number in any format, or a channel id such as a Messenger sender id, as stored)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise ValidationError(f"limit must be a whole number from 1 to {MAX_LIST}", field="limit")
    if number:
        # Channel ids (Messenger, a Viber service id, an RCS agent) are stored as given and may
        # look like phone numbers: look for the value as given and as an E.164 number.
        wanted = dict.fromkeys((number.strip(), normalise_address(number, phone=True)))
        found: dict[str, dict[str, Any]] = {}
        for address in wanted:
            for field_name in ("from", "to"):
                for doc in store.query(INBOUND, where={field_name: address}, order_by="received_at", descending=True,
                                       limit=limit):
                    found[str(doc.get("id"))] = doc
        docs = sorted(found.values(), key=lambda doc: str(doc.get("received_at") or ""), reverse=True)[:limit]
    else:
        docs = store.query(INBOUND, order_by="received_at", descending=True, limit=limit)
    return [_public(doc, include_raw=include_raw) for doc in docs]


def listing_options(args: Mapping[str, str]) -> dict[str, Any]:
    """``list_inbound`` keyword arguments from query parameters ``number``, ``limit``, ``raw``."""
    limit_text = (args.get("limit") or "50").strip()
    if not limit_text.isdigit():
        raise ValidationError(f"limit must be a whole number from 1 to {MAX_LIST}", field="limit")
    number = (args.get("number") or "").strip() or None
    return {
        "number": number,
        "limit": int(limit_text),
        "include_raw": (args.get("raw") or "").strip().lower() in ("1", "true", "yes"),
    }


def _public(doc: Mapping[str, Any], *, include_raw: bool) -> dict[str, Any]:
    public = {k: v for k, v in doc.items() if include_raw or k != "raw"}
    handoff = dict(public.get("handoff") or {})
    handoff.pop("claim", None)
    public["handoff"] = handoff
    return public

