"""Message records and their status state machine.

One record per message we send (collection ``messages``, keyed by our id), written
before Vonage is called and completed by its answer and by every receipt after it.
Receipts arrive out of order, duplicated, per part, and sometimes before the send
response is stored; the rules that make that safe live here, as pure functions over
a record dict, plus the few store calls that apply them transactionally:

- A status only moves forward (``RANK``): a late ``submitted`` never overwrites
  ``delivered`` or ``rejected``; ``read`` after ``delivered`` is progress; the first
  final outcome of a part wins.
- Each event is applied at most once: its ``event_key`` (Vonage id, status, error
  code, timestamp) is remembered in the history, which keeps arrival order.
- SMS API messages have one Vonage id per part; the message status is the aggregate
  (delivered when every part is, failed as soon as one part failed, naming it).
- A receipt for a Vonage id we have not indexed yet is parked IN the id's index document
  (``message_ids/<vonage id>``: ``{"events": [...]}``, expiring after ``PARKED_TTL``), and the
  send merges it in the transaction that writes the index (``{"message_id": ...}``). Both sides
  read and write that one document in a transaction, so every backend serializes them: a receipt
  that comes second finds the message id and applies itself, a sender that comes second merges.
- A failover workflow (one request, several items tried in order) has one record with
  ``items`` (channel, type, status, history each) and ``workflow_id``, which is indexed like a
  Vonage id: a later item's status may carry a ``message_uuid`` we never saw, but always its
  ``workflow{workflow_id, items_number}``. A rejected item that is not the last one does not
  fail the message (the next item is being tried); the first item delivered is
  ``delivered_item``; the message fails when the last item fails.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.errors import RecordExistsError
from shared.store.base import NO_EXPIRY, StateStore, Update

__all__ = [
    "MESSAGES",
    "MESSAGE_IDS",
    "FINAL_FAILURES",
    "StatusEvent",
    "apply_event",
    "attach_vonage_ids",
    "mark_failed",
    "new_message_id",
    "new_message_record",
    "record_status_event",
]

MESSAGES = "messages"
# Vonage id (or failover workflow id) -> {"message_id": our id}, or, before the send stored it,
# {"events": [...]}: the receipts that arrived first, parked until the send merges them.
MESSAGE_IDS = "message_ids"
PARKED_TTL = 3 * 86400.0  # SMS receipts can arrive for 72 h: an unclaimed parked document expires
MAX_HISTORY = 100

# How far along a status is. Equal ranks never replace each other (first final outcome wins).
RANK: dict[str, int] = {
    "pending": 0,
    "submitted": 1,
    "accepted": 1,  # SMS DLR: accepted by the carrier (the Messages API calls it submitted)
    "buffered": 1,
    "delivered": 3,
    "rejected": 3,
    "undeliverable": 3,
    "failed": 3,
    "expired": 3,
    "unknown": 3,  # SMS DLR "unknown" is final (the Messages API maps it to rejected, error 1330)
    "read": 4,
}
FINAL_FAILURES = frozenset({"rejected", "undeliverable", "failed", "expired", "unknown"})


@dataclass(frozen=True)
class StatusEvent:
    """One status webhook, normalised: what happened to which Vonage id, when."""

    vonage_id: str
    status: str
    timestamp: str | None = None  # Vonage's own time of the event, as sent
    error_code: str | None = None
    error_text: str | None = None
    price: str | None = None
    currency: str | None = None
    source: str = "sms"  # "sms" (DLR) or "messages"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def event_key(self) -> str:
        """Dedupe key: the same status of the same id at the same time is one event.

        SMS API receipts are rendered afresh on every retry (their ``message-timestamp`` is when
        Vonage started pushing), so theirs leaves the time out, as ``status_event_key`` does: a
        receipt retried after a failed attempt must not enter the history twice.
        """
        if self.source == "sms":
            return "|".join([self.vonage_id, self.status, self.error_code or ""])
        return "|".join([self.vonage_id, self.status, self.error_code or "", self.timestamp or ""])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatusEvent:
        return cls(**{k: data.get(k) for k in ("vonage_id", "status", "timestamp", "error_code", "error_text", "price", "currency")},
                   source=data.get("source") or "sms", extra=data.get("extra") or {})


def new_message_id() -> str:
    """Our id for a message: opaque, URL-safe, unguessable."""
    return "msg_" + uuid.uuid4().hex


def new_message_record(
    message_id: str,
    *,
    channel: str,
    api: str,
    to: str,
    sender: str | None,
    client_ref: str | None = None,
    encoding: str | None = None,
    segments: int | None = None,
    message_type: str = "text",
    idempotency_key: str | None = None,
    now: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``pending`` record, written before Vonage is called (``extra``: more fields, e.g. a workflow's items)."""
    at = _iso(now)
    return {
        **dict(extra or {}),
        "id": message_id,
        "channel": channel,
        "api": api,
        "to": to,
        "from": sender,
        "client_ref": client_ref,
        "message_type": message_type,
        "encoding": encoding,
        "segments": segments,
        "idempotency_key": idempotency_key,
        "status": "pending",
        "parts": [],
        "vonage_ids": [],
        "history": [{"status": "pending", "at": at, "received_at": at}],
        "price": None,
        "currency": None,
        "error": None,
        "created_at": at,
        "updated_at": at,
    }


def apply_event(record: Mapping[str, Any], event: StatusEvent, *, now: float | None = None) -> dict[str, Any] | None:
    """The record after ``event``, or None when the event changes nothing (a duplicate).

    The event is added to the history even when it does not move the status (a late
    ``submitted``), so the history shows everything Vonage told us, once each.
    """
    history = list(record.get("history") or [])
    if any(entry.get("event_key") == event.event_key for entry in history):
        return None
    number = workflow_item_number(event)
    if record.get("items") and number is not None and 1 <= number <= len(record["items"]):
        return _apply_workflow_event(record, event, number, history, now)
    updated = dict(record)
    parts = [dict(part) for part in record.get("parts") or []]
    part_index = next((i for i, part in enumerate(parts) if part.get("vonage_id") == event.vonage_id), None)
    if part_index is None:
        parts.append({"vonage_id": event.vonage_id, "status": "submitted"})
        part_index = len(parts) - 1
    part = parts[part_index]
    if _advances(part.get("status"), event.status):
        part["status"] = event.status
        if event.status in FINAL_FAILURES:
            part["error"] = _error(event)
    if event.price is not None:
        part["price"] = event.price
    if event.currency:
        updated["currency"] = event.currency
    updated["parts"] = parts
    updated["price"] = _total_price(parts)
    history.append(
        {
            "status": event.status,
            "at": event.timestamp,
            "received_at": _iso(now),
            "vonage_id": event.vonage_id,
            "part": part_index + 1 if len(parts) > 1 else None,
            "error": _error(event) if event.error_code not in (None, "", "0") else None,
            "event_key": event.event_key,
        }
    )
    updated["history"] = history[-MAX_HISTORY:]
    updated.update(_aggregate(record.get("status", "pending"), parts))
    updated["updated_at"] = _iso(now)
    return updated


def workflow_id_of(event: StatusEvent) -> str | None:
    """The ``workflow.workflow_id`` of a Messages API status of a failover item, else None."""
    workflow = event.extra.get("workflow") if isinstance(event.extra, Mapping) else None
    value = workflow.get("workflow_id") if isinstance(workflow, Mapping) else None
    return value if isinstance(value, str) and value else None


def workflow_item_number(event: StatusEvent) -> int | None:
    """Which item of its workflow a status is about (1-based), from ``workflow.items_number``."""
    workflow = event.extra.get("workflow") if isinstance(event.extra, Mapping) else None
    if not isinstance(workflow, Mapping):
        return None
    try:
        return int(str(workflow.get("items_number")))
    except ValueError:
        return None


def record_status_event(
    store: StateStore,
    event: StatusEvent,
    *,
    finish: Callable[[Callable[[], bool]], Sequence[Update]] | None = None,
    begin: Callable[[], bool] | None = None,
) -> str:
    """Apply a receipt to its message, or park it until the message's ids are stored.

    Returns ``applied``, ``duplicate`` or ``parked``. An unknown id parks the event in its
    own index document (a failover item's status: its workflow id's) in one transaction; when
    that transaction finds the message id there (the send indexed it meanwhile), the event is
    applied instead. The send merges parked events in the transaction that writes the index, so
    a receipt racing the send response is merged by whichever side comes second. A failover
    item's status is found (and parked) by its workflow id when its own id is unknown.

    ``finish``: when the receipt applies straight to a message found by its own Vonage id (no
    parking, no index to write after), the Updates it returns are made in the same
    ``update_many`` as the message's, right after it (the webhook's dedupe "done" with its
    outbox, and queued outbox marks: one transaction). It is given a callable telling whether
    the message changed, to be asked inside their ``fn``. Otherwise it is not used.
    ``begin``: called before any write of the other paths (the webhook's dedupe ``begin_event``);
    when it answers False nothing is written and the result is ``duplicate``.
    """
    workflow_id = workflow_id_of(event)
    own = _message_id_for(store, event.vonage_id)
    if own and finish is not None and not workflow_id:
        return "applied" if _apply(store, own, [event], finish=finish) else "duplicate"
    if begin is not None and not begin():
        return "duplicate"
    message_id = own or (workflow_id and _message_id_for(store, workflow_id))
    if not message_id:
        park_key = workflow_id or event.vonage_id
        index = store.update(MESSAGE_IDS, park_key, lambda doc: _park(doc, event), ttl=PARKED_TTL)
        message_id = (index or {}).get("message_id")
        if not message_id:
            return "parked"
    applied = _apply(store, message_id, [event])
    if applied and workflow_id:
        _index(store, event.vonage_id, message_id)  # GET /send/<the item's uuid> finds the message
    return "applied" if applied else "duplicate"


def attach_vonage_ids(
    store: StateStore,
    message_id: str,
    parts: Iterable[Mapping[str, Any]],
    *,
    price: str | None = None,
    currency: str | None = None,
    remaining_balance: str | None = None,
    now: float | None = None,
    workflow_id: str | None = None,
    also: Update | None = None,
) -> dict[str, Any] | None:
    """Record Vonage's acceptance (one part per Vonage id), index the ids, merge parked receipts:
    one ``update_many`` (one transaction on every built-in backend).

    ``workflow_id`` (a failover send) is stored and indexed too, and receipts parked under it merged.
    ``remaining_balance`` is the account balance the SMS API reported after this send.
    ``also``: another document's update made in the same write (the idempotency key's completion).

    Receipts that came first are parked in the index documents themselves (record_status_event):
    the index documents are read and written in the transaction, before the record, so a receipt
    parking at the same moment is either seen here or finds the message id (PostgreSQL: the
    second insert of a new index row violates the key and its transaction runs again; Firestore:
    a transaction's read of a missing document conflicts with another's write of it; SQLite: one
    writer at a time). Merged events stay in the index document (harmless: an event applies once),
    so a store without a multi-document transaction that fails between the two writes merges
    them again on the retry.
    """
    part_list = [dict(part) for part in parts]
    keys = list(dict.fromkeys([part["vonage_id"] for part in part_list] + ([workflow_id] if workflow_id else [])))
    parked: dict[str, list[StatusEvent]] = {}  # per index document; rewritten when fn runs again

    def index(key: str) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
        def fn(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            parked[key] = [StatusEvent.from_dict(item) for item in (doc or {}).get("events", [])]
            if doc is not None and doc.get("message_id"):
                return None  # indexed already (this write retried after an unknown outcome)
            return {**(doc or {}), "message_id": message_id}

        return fn

    def accept(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None:
            return None
        known = {part.get("vonage_id"): part for part in doc.get("parts") or []}
        merged = []
        for part in part_list:
            existing = known.pop(part["vonage_id"], None) or {}
            merged.append({**part, **existing, "status": existing.get("status") or "submitted"})
        merged.extend(known.values())  # parts a parked receipt created first
        doc["parts"] = merged
        doc["vonage_ids"] = [part["vonage_id"] for part in merged]
        if price is not None:
            doc["submit_price"] = price
        if currency:
            doc["currency"] = currency
        if remaining_balance is not None:
            doc["remaining_balance"] = remaining_balance
        if _advances(doc.get("status"), "submitted"):
            at = _iso(now)
            doc["history"] = [*doc.get("history", []), {"status": "submitted", "at": at, "received_at": at}]
        if doc.get("items"):
            if workflow_id:
                doc["workflow_id"] = workflow_id
            items = [dict(item) for item in doc["items"]]
            if items[0].get("status") in (None, "pending"):
                items[0]["status"] = "submitted"
                items[0]["vonage_id"] = part_list[0]["vonage_id"] if part_list else None
                items[0]["history"] = [*items[0].get("history", []), {"status": "submitted", "at": _iso(now)}]
            doc["items"] = items
            doc.update(_workflow_status(doc.get("status", "pending"), items))
        else:
            doc.update(_aggregate(doc.get("status", "pending"), merged))
        doc["submitted_at"] = doc.get("submitted_at") or _iso(now)
        doc["updated_at"] = _iso(now)
        for key in keys:
            for event in parked.get(key, []):
                doc = apply_event(doc, event) or doc  # None: applied before (a duplicate)
        return doc

    updates = [Update(MESSAGE_IDS, key, index(key), ttl=NO_EXPIRY) for key in keys]
    updates.append(Update(MESSAGES, message_id, accept))
    if also is not None:
        updates.append(also)
    return store.update_many(updates)[len(keys)]


def mark_failed(store: StateStore, message_id: str, *, code: str, message: str, vonage_code: str | None = None,
                now: float | None = None) -> dict[str, Any] | None:
    """Vonage refused the message synchronously: the record ends ``failed`` with the reason."""

    def fail(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None or RANK.get(doc.get("status", "pending"), 0) > 0:
            return None
        at = _iso(now)
        error = {"code": code, "message": message, "vonage_code": vonage_code}
        doc["status"] = "failed"
        doc["error"] = error
        doc["history"] = [*doc.get("history", []), {"status": "failed", "at": at, "received_at": at, "error": error}]
        doc["updated_at"] = at
        return doc

    return store.update(MESSAGES, message_id, fail)


# ---- internals --------------------------------------------------------------


def _index(store: StateStore, vonage_id: str, message_id: str) -> None:
    try:
        store.create(MESSAGE_IDS, vonage_id, {"message_id": message_id})
    except RecordExistsError:
        pass


def _apply_workflow_event(
    record: Mapping[str, Any], event: StatusEvent, number: int, history: list[dict[str, Any]], now: float | None
) -> dict[str, Any]:
    """A status of item ``number`` of a failover workflow, applied to that item and to the message."""
    updated = dict(record)
    items = [dict(item) for item in record["items"]]
    item = items[number - 1]
    if _advances(item.get("status"), event.status):
        item["status"] = event.status
        if event.status in FINAL_FAILURES:
            item["error"] = _error(event)
    item.setdefault("vonage_id", event.vonage_id)
    item["vonage_id"] = item.get("vonage_id") or event.vonage_id
    if event.price is not None:
        item["price"] = event.price
    entry = {"status": event.status, "at": event.timestamp, "received_at": _iso(now)}
    if event.error_code not in (None, "", "0"):
        entry["error"] = _error(event)
    item["history"] = [*item.get("history", []), entry][-MAX_HISTORY:]
    items[number - 1] = item
    updated["items"] = items
    if event.vonage_id not in (record.get("vonage_ids") or []):
        updated["vonage_ids"] = [*(record.get("vonage_ids") or []), event.vonage_id]
    if event.currency:
        updated["currency"] = event.currency
    updated["price"] = _total_price(items)
    history.append(
        {
            "status": event.status,
            "at": event.timestamp,
            "received_at": _iso(now),
            "vonage_id": event.vonage_id,
            "item": number,
            "channel": item.get("channel"),
            "error": _error(event) if event.error_code not in (None, "", "0") else None,
            "event_key": event.event_key,
        }
    )
    updated["history"] = history[-MAX_HISTORY:]
    updated.update(_workflow_status(record.get("status", "pending"), items))
    updated["updated_at"] = _iso(now)
    return updated


def _workflow_status(current: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A workflow's status from its items: delivered when one item is, failed when the last one failed."""
    reached = [(i, item) for i, item in enumerate(items) if item.get("status") in ("delivered", "read")]
    if reached:
        index, item = reached[0]
        return {"status": item["status"], "delivered_item": index + 1, "error": None}
    last = items[-1]
    if last.get("status") in FINAL_FAILURES:
        return {"status": last["status"], "delivered_item": None, "error": last.get("error")}
    started = any(item.get("status") not in (None, "pending") for item in items)
    return {"status": "submitted" if started or RANK.get(current, 0) >= 1 else current, "delivered_item": None}


def _message_id_for(store: StateStore, vonage_id: str) -> str | None:
    """Our message id for a Vonage (or workflow) id; None when unknown or only parked receipts wait there."""
    doc = store.get(MESSAGE_IDS, vonage_id)
    return doc.get("message_id") if doc else None


def _apply(
    store: StateStore,
    message_id: str,
    events: list[StatusEvent],
    *,
    finish: Callable[[Callable[[], bool]], Sequence[Update]] | None = None,
) -> dict[str, Any] | None:
    changed = False

    def fn(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal changed
        changed = False
        if doc is None:
            return None
        current = doc
        for event in events:
            updated = apply_event(current, event)
            if updated is not None:
                current, changed = updated, True
        return current if changed else None

    if finish is not None:
        result = store.update_many([Update(MESSAGES, message_id, fn), *finish(lambda: changed)])[0]
    else:
        result = store.update(MESSAGES, message_id, fn)
    return result if changed else None


def _park(doc: dict[str, Any] | None, event: StatusEvent) -> dict[str, Any] | None:
    """The index document with ``event`` parked in it; None (no write) once it names the message."""
    if doc is not None and doc.get("message_id"):
        return None
    events = list((doc or {}).get("events", []))
    if any(StatusEvent.from_dict(item).event_key == event.event_key for item in events):
        return None
    events.append(event.to_dict())
    return {"events": events[-MAX_HISTORY:]}


def _advances(current: str | None, new: str) -> bool:
    current = current or "pending"
    if current in FINAL_FAILURES:
        return False  # the first final outcome wins; nothing follows a failure
    if new == "read":
        return RANK.get(current, 0) < RANK["read"]
    return RANK.get(new, 0) > RANK.get(current, 0)


def _aggregate(current: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Message status from its parts: failed as soon as one part failed, delivered when all are."""
    if not parts:
        return {"status": current}
    failed = [(i, part) for i, part in enumerate(parts) if part.get("status") in FINAL_FAILURES]
    if failed:
        index, part = failed[0]
        result: dict[str, Any] = {"status": part["status"], "failed_part": index + 1 if len(parts) > 1 else None}
        if part.get("error"):
            result["error"] = part["error"]
        return result
    statuses = {part.get("status") or "submitted" for part in parts}
    if statuses == {"read"}:
        status = "read"
    elif statuses <= {"delivered", "read"}:
        status = "delivered"
    else:
        status = "submitted"
    if current in FINAL_FAILURES:
        return {"status": current}
    return {"status": status}


def _error(event: StatusEvent) -> dict[str, Any] | None:
    if event.error_code in (None, "", "0") and not event.error_text:
        return None
    return {"code": event.error_code, "text": event.error_text}


def _total_price(parts: list[dict[str, Any]]) -> str | None:
    total = Decimal(0)
    seen = False
    for part in parts:
        try:
            if part.get("price") is not None:
                total += Decimal(str(part["price"]))
                seen = True
        except InvalidOperation:
            continue
    return format(total, "f") if seen else None


def _iso(now: float | None) -> str:
    moment = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int((moment % 1) * 1000):03d}Z"
