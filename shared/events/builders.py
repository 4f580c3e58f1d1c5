"""The events of each webhook outcome (and of a finished batch), built from what was stored.

Each builder returns structured-mode CloudEvent dicts (``shared.events.base.build_event``) whose
ids derive from the outcome's dedupe key, so a retried webhook rebuilds the same ids. Data carry
E.164 numbers, never raw payloads, signatures, tokens or OTP codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.events.base import (
    BALANCE_LOW,
    BATCH_COMPLETED,
    INBOUND,
    OPTOUT,
    STATUS,
    VERIFY_COMPLETED,
    build_event,
    conversation_key,
)

__all__ = [
    "batch_completed_event",
    "inbound_event",
    "inbound_event_key",
    "optout_event",
    "status_event",
    "verify_completed_event",
]

# The inbound record fields an inbound event carries (no raw payload, no hand-off bookkeeping).
_INBOUND_FIELDS = ("id", "api", "channel", "from", "to", "message_type", "text", "media", "details", "vonage_ids", "parts", "timestamp", "received_at")
# Verify v2 summary statuses that end a verification.
_VERIFY_FINAL = frozenset({"completed", "failed", "expired"})


def inbound_event_key(record: Mapping[str, Any]) -> str:
    """The message's dedupe key (``in:<api>:<id>``): a long SMS's parts give one message, one id."""
    return f"in:{record.get('api')}:{record['id']}"


def inbound_event(record: Mapping[str, Any], *, at: float | None = None) -> dict[str, Any]:
    """``com.vonage.message.inbound.v1`` for a stored inbound message."""
    data = {name: record.get(name) for name in _INBOUND_FIELDS if name in record}
    return build_event(
        INBOUND,
        key=inbound_event_key(record),
        data=data,
        subject=str(record["id"]),
        conversation=conversation_key(record.get("to"), record.get("from")),
        at=at,
    )


def optout_event(record: Mapping[str, Any], handoff: Mapping[str, Any], *, at: float | None = None) -> dict[str, Any] | None:
    """``com.vonage.optout.v1`` when the message was STOP (``opted_out: true``) or START (false)."""
    action = handoff.get("action")
    if action not in ("optout", "optin"):
        return None
    decision = handoff.get("decision") if isinstance(handoff.get("decision"), Mapping) else {}
    data = {
        "number": record.get("from"),
        "our_number": record.get("to"),
        "channel": record.get("channel"),
        "opted_out": action == "optout",
        "keyword": (decision or {}).get("keyword"),
        "message_id": record.get("id"),
    }
    return build_event(
        OPTOUT,
        key=f"optout:{inbound_event_key(record)}",
        data=data,
        subject=str(record.get("from") or ""),
        conversation=conversation_key(record.get("to"), record.get("from")),
        at=at,
    )


def status_event(
    key: str, status: Any, fields: Mapping[str, Any], result: str, *, at: float | None = None
) -> dict[str, Any]:
    """``com.vonage.message.status.v1`` for one applied (or parked) receipt; ``status`` a StatusEvent."""
    from shared.webhooks.formats import normalise_address

    extra = dict(status.extra or {})
    if status.source == "sms":
        theirs, ours = extra.get("recipient"), extra.get("sender")
    else:
        theirs, ours = fields.get("to"), fields.get("from")
    theirs = normalise_address(theirs, phone=True) if isinstance(theirs, str) and theirs else None
    ours = normalise_address(ours, phone=True) if isinstance(ours, str) and ours else None
    data = {
        "vonage_id": status.vonage_id,
        "status": status.status,
        "api": extra.get("api") or status.source,
        "channel": extra.get("channel") or ("sms" if status.source == "sms" else None),
        "to": theirs,
        "from": ours,
        "timestamp": status.timestamp,
        "error_code": status.error_code,
        "error_text": status.error_text,
        "price": status.price,
        "currency": status.currency,
        "client_ref": extra.get("client_ref"),
        "result": result,  # "applied" to our message record, or "parked" until the send stores its ids
    }
    return build_event(STATUS, key=key, data=data, subject=status.vonage_id, conversation=conversation_key(ours, theirs), at=at)


def verify_completed_event(key: str, payload: Mapping[str, Any], *, at: float | None = None) -> dict[str, Any] | None:
    """``com.vonage.verify.completed.v1`` for a Verify v2 summary with a final status (never a code)."""
    if payload.get("type") != "summary" or payload.get("status") not in _VERIFY_FINAL:
        return None
    workflow = payload.get("workflow") if isinstance(payload.get("workflow"), list) else []
    channels = [step.get("channel") for step in workflow if isinstance(step, Mapping) and isinstance(step.get("channel"), str)]
    data = {
        "request_id": str(payload.get("request_id") or ""),
        "status": payload.get("status"),
        "channel": channels[-1] if channels else None,
        "submitted_at": payload.get("submitted_at") if isinstance(payload.get("submitted_at"), str) else None,
        "finalized_at": payload.get("finalized_at") if isinstance(payload.get("finalized_at"), str) else None,
        "client_ref": payload.get("client_ref") if isinstance(payload.get("client_ref"), str) else None,
    }
    return build_event(VERIFY_COMPLETED, key=key, data=data, subject=data["request_id"], at=at)


def batch_completed_event(batch_id: str, summary: Mapping[str, Any], *, at: float | None = None) -> dict[str, Any]:
    """``com.vonage.batch.completed.v1`` for a finished send batch; ``summary`` e.g. counts per status."""
    return build_event(BATCH_COMPLETED, key=f"batch:{batch_id}", data={"batch_id": batch_id, **dict(summary)}, subject=batch_id, at=at)


def balance_low_event(data: Mapping[str, Any], *, at: float) -> dict[str, Any]:
    """``com.vonage.account.balance_low.v1``; its id is stable within the hour of ``at`` (one page an hour)."""
    hour = int(at // 3600)
    return build_event(BALANCE_LOW, key=f"balance_low:{hour}", data=dict(data), subject="account", at=at)
