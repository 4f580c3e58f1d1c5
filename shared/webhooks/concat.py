"""Reassembly of long SMS sent to us through the SMS API (``concat-ref``/``-total``/``-part``).

Each part is its own webhook, with its own ``messageId``; parts arrive in any order and may be
delivered more than once (vonage-api.md section 2.3). One document per long message, keyed by
(sender, our number, ``concat-ref``, ``concat-total``), collects the parts inside a store
transaction, so two parts arriving at the same moment cannot both miss each other, and a
duplicate part (same ``messageId``) changes nothing. The document expires ``CONCAT_TTL_SECONDS``
after its last new part: parts of a message that never completes are kept until then.

The logical message's id is part 1's ``messageId``: every caller that sees the document
complete derives the same id, so creating the message record is idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.store.base import StateStore
from shared.webhooks.clock import iso_time
from shared.webhooks.formats import InboundEvent

__all__ = ["PARTS", "AssembledMessage", "add_part", "concat_key"]

PARTS = "inbound_parts"
MAX_ABANDONED = 5  # incomplete messages kept when a new message reuses their reference


@dataclass(frozen=True)
class AssembledMessage:
    """Every part of a long SMS, in order."""

    message_id: str
    vonage_ids: tuple[str, ...]
    text: str | None
    message_type: str
    timestamp: str | None
    raw: tuple[str, ...]
    details: Mapping[str, Any]


def concat_key(event: InboundEvent) -> str:
    """The document key of the long message ``event`` is part of."""
    assert event.concat is not None
    return "|".join((event.sender, event.recipient, event.concat.ref, str(event.concat.total)))


def add_part(store: StateStore, event: InboundEvent, *, ttl: float, now: float | None = None) -> AssembledMessage | None:
    """Store one part; return the whole message once every part is in (also on later duplicates).

    Returns None while parts are missing. Raises StoreError when the store fails (nothing was
    half-written: the part is added in one transaction).
    """
    concat = event.concat
    assert concat is not None
    at = iso_time(now)
    entry = {
        "vonage_id": event.vonage_id,
        "text": event.text,
        "type": event.message_type,
        "timestamp": event.timestamp,
        "raw": event.raw,
        "details": dict(event.details),
        "received_at": at,
    }
    number = str(concat.part)

    def add(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None:
            return _new_doc(concat.total, number, entry, at)
        parts: dict[str, Any] = doc.get("parts") or {}
        previous_parts = (doc.get("previous") or {}).get("parts") or {}
        if event.vonage_id in _ids(parts) or event.vonage_id in _ids(previous_parts):
            return None  # a duplicate delivery of a part we already have
        if doc.get("complete") or number in parts:
            # The reference was reused by a new message (references are small numbers): start
            # over. A finished message is remembered as `previous` so its late duplicates still
            # resolve; an unfinished one is kept under `abandoned` until the document expires.
            fresh = _new_doc(concat.total, number, entry, at)
            if doc.get("complete"):
                fresh["previous"] = {"parts": parts, "message_id": doc.get("message_id")}
                fresh["abandoned"] = doc.get("abandoned") or []
            else:
                fresh["previous"] = doc.get("previous")
                fresh["abandoned"] = [*(doc.get("abandoned") or []), {"parts": parts, "first_at": doc.get("first_at")}][
                    -MAX_ABANDONED:
                ]
            return fresh
        parts[number] = entry
        doc["parts"] = parts
        doc["updated_at"] = at
        if len(parts) >= int(doc.get("total") or concat.total):
            doc["complete"] = True
            doc["message_id"] = parts["1"]["vonage_id"]
            doc["completed_at"] = at
        return doc

    doc = store.update(PARTS, concat_key(event), add, ttl=ttl)
    if doc is None:
        return None
    if doc.get("complete") and event.vonage_id in _ids(doc.get("parts") or {}):
        return _assemble(doc["parts"], concat.total)
    previous = doc.get("previous") or {}
    if event.vonage_id in _ids(previous.get("parts") or {}):
        return _assemble(previous["parts"], concat.total)
    return None


def _new_doc(total: int, number: str, entry: dict[str, Any], at: str) -> dict[str, Any]:
    return {"total": total, "parts": {number: entry}, "complete": False, "first_at": at, "updated_at": at}


def _ids(parts: Mapping[str, Any]) -> set[str]:
    return {part.get("vonage_id") for part in parts.values() if isinstance(part, Mapping)}


def _assemble(parts: Mapping[str, Any], total: int) -> AssembledMessage:
    ordered = [parts[str(n)] for n in range(1, total + 1)]
    types = {part.get("type") or "text" for part in ordered}
    message_type = "unicode" if "unicode" in types else ("binary" if types == {"binary"} else "text")
    details: dict[str, Any] = {}
    first_details = ordered[0].get("details") or {}
    if first_details.get("keyword"):
        details["keyword"] = first_details["keyword"]
    if message_type == "binary":
        details["data"] = "".join((part.get("details") or {}).get("data", "") for part in ordered)
        text = None
    else:
        text = "".join(part.get("text") or "" for part in ordered)
    return AssembledMessage(
        message_id=ordered[0]["vonage_id"],
        vonage_ids=tuple(part["vonage_id"] for part in ordered),
        text=text,
        message_type=message_type,
        timestamp=ordered[0].get("timestamp"),
        raw=tuple(part.get("raw") or json.dumps({}) for part in ordered),
        details=details,
    )

