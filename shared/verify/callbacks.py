"""Verify v2 status callbacks (event and summary) applied to verification records.

The status function authenticates and dedupes the webhook, then calls
:func:`apply_verify_callback`. Payloads (vonage-api.md §9.4)::

    event:   {"request_id", "triggered_at", "type": "event", "channel",
              "status": completed|failed|user_rejected|rejected|blocked|action_pending,
              "finalized_at"?, "client_ref"?}
    summary: {"request_id", "submitted_at", "type": "summary",
              "status": completed|failed|expired, "channel_timeout",
              "workflow": [{"channel", "initiated_at", "status"}], "client_ref"?}

An event is one channel attempt: only ``completed`` ends the verification (the user
proved the code on that channel); a failed channel is followed by the next one in the
workflow, so it is remembered but does not finish the record. A summary is the outcome
of the whole request. Either way a finished record is never reopened and the same
callback applied twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import ValidationError
from shared.log import get_logger
from shared.store.base import StateStore
from shared.verify.records import VerificationRecord, VerificationStatus, store_clock, update_record

__all__ = ["apply_verify_callback"]

log = get_logger("shared.verify.callbacks")

# Vonage's summary status -> ours. Anything else is remembered but changes no status.
SUMMARY_STATUS = {
    "completed": VerificationStatus.VERIFIED,
    "failed": VerificationStatus.FAILED,
    "expired": VerificationStatus.EXPIRED,
}
# Vonage's event status -> ours: only a completed channel finishes the request.
EVENT_STATUS = {"completed": VerificationStatus.VERIFIED}
_TYPES = ("event", "summary")


def apply_verify_callback(store: StateStore, payload: Mapping[str, Any]) -> bool:
    """Apply a Verify v2 event or summary callback to its verification record.

    Returns True when the request id is known (whether or not the callback changed it:
    a duplicate or a late callback for a finished record is a no-op) and False when no
    record exists for it. Raises ValidationError (422) for a payload that is not a Verify
    v2 callback (no ``request_id`` or an unknown ``type``) and StoreError when the store fails.
    """
    if not isinstance(payload, Mapping):
        raise ValidationError("a Verify callback must be a JSON object")
    request_id = payload.get("request_id")
    kind = payload.get("type")
    if not isinstance(request_id, str) or not request_id.strip():
        raise ValidationError("the Verify callback has no request_id", field="request_id")
    if kind not in _TYPES:
        raise ValidationError("the Verify callback type must be event or summary", field="type")
    status = str(payload.get("status") or "")
    entry = _event_entry(kind, payload)
    target = (SUMMARY_STATUS if kind == "summary" else EVENT_STATUS).get(status)
    now = store_clock(store)()

    def apply(record: VerificationRecord) -> VerificationRecord | None:
        if any(e.get("key") == entry["key"] for e in record.events):
            return None  # the same callback again: idempotent
        updated = record.with_event({**entry, "received_at": now}, now=now)
        if target is not None:
            updated = updated.finish(target, now=now, reason=f"vonage_{kind}_{status}")
        return updated

    after = update_record(store, request_id, apply)
    if after is None:
        log.info("verify callback for an unknown request", extra={"request_id": request_id, "type": kind})
        return False
    log.info(
        "verify callback applied",
        extra={"request_id": request_id, "type": kind, "vonage_status": status, "status": after.status.value},
    )
    return True


def _event_entry(kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The compact form we remember (no client data beyond channel and status)."""
    at = payload.get("finalized_at") or payload.get("triggered_at") or payload.get("submitted_at")
    channel = payload.get("channel")
    status = payload.get("status")
    entry: dict[str, Any] = {
        "type": kind,
        "channel": channel if isinstance(channel, str) else None,
        "status": status if isinstance(status, str) else None,
        "at": at if isinstance(at, str) else None,
    }
    if kind == "summary" and isinstance(payload.get("workflow"), list):
        entry["workflow"] = [
            {name: step.get(name) if isinstance(step.get(name), str) else None for name in ("channel", "status")}
            for step in payload["workflow"][:5]
            if isinstance(step, Mapping)
        ]
    # Dedupe key: one callback is one (type, channel, status, time) — a channel that fails
    # and is retried later has a different time.
    entry["key"] = "|".join(str(entry[k] or "") for k in ("type", "channel", "status", "at"))
    return entry
