"""Verification records: one per Vonage request id, and the rules of their status.

A record lives in store collection ``verifications`` keyed by Vonage's ``request_id``.
It holds what we need to answer and to protect a verification — never the code, never
the full phone number::

    {"request_id", "api": "v2"|"legacy", "masked_number", "channels": [...],
     "status", "attempts", "max_attempts", "created_at", "expires_at", "updated_at",
     "finished_at", "reason", "client_ref", "events": [...]}

Status rules (a small state machine, like ``shared.messages.records``):

- ``pending`` is the only open status; ``verified``, ``failed``, ``cancelled`` and
  ``expired`` are final and a final record is never reopened (late or duplicated
  callbacks cannot undo an outcome).
- ``expired`` is also derived on read: a ``pending`` record past ``expires_at`` is
  expired even if nothing wrote that down (Firestore TTL deletes "within 24 hours").
- ``attempts`` counts code checks we forwarded (or refused) for this request; it never
  goes down, so restarting a verification that is still in flight cannot reset it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from shared.phone import mask_phone
from shared.store.base import StateStore

__all__ = [
    "COLLECTION",
    "MAX_EVENTS",
    "RETENTION",
    "VerificationRecord",
    "VerificationStatus",
    "load_record",
    "record_ttl",
    "save_record",
    "store_clock",
    "update_record",
]

COLLECTION = "verifications"
# Records outlive their expiry by a day: summary callbacks arrive after the code expired,
# a restart to the same number must still find the attempts of the request in flight,
# and an operator may want to see what happened.
RETENTION = 86400.0
MAX_EVENTS = 20  # one event per channel attempt (at most 3) plus summaries; bounded anyway


class VerificationStatus(str, Enum):
    """Where a verification stands. Only PENDING is open."""

    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for every status a record can never leave."""
        return self is not VerificationStatus.PENDING


@dataclass(frozen=True)
class VerificationRecord:
    """One verification request as we keep it (no code, no full number)."""

    request_id: str
    api: str
    masked_number: str
    channels: tuple[str, ...]
    status: VerificationStatus  # as stored; see status_at() for the status with expiry applied
    attempts: int
    max_attempts: int
    created_at: float
    expires_at: float
    updated_at: float
    finished_at: float | None = None
    reason: str | None = None
    client_ref: str | None = None
    events: tuple[dict[str, Any], ...] = field(default=())
    tenant: str | None = None  # the API caller's tenant that started it (None: a public caller)

    # ---- construction ------------------------------------------------------

    @classmethod
    def pending(
        cls,
        request_id: str,
        *,
        api: str,
        phone: str,
        channels: Iterable[str],
        max_attempts: int,
        ttl: float,
        now: float,
        client_ref: str | None = None,
        tenant: str | None = None,
    ) -> VerificationRecord:
        """A new open record; ``phone`` is masked here and never kept in full."""
        return cls(
            request_id=request_id,
            api=api,
            masked_number=mask_phone(phone),
            channels=tuple(channels),
            status=VerificationStatus.PENDING,
            attempts=0,
            max_attempts=max_attempts,
            created_at=now,
            expires_at=now + ttl,
            updated_at=now,
            client_ref=client_ref,
            tenant=tenant,
        )

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> VerificationRecord:
        """Rebuild a record from its stored document (unknown statuses read as failed)."""
        try:
            status = VerificationStatus(doc.get("status", "pending"))
        except ValueError:
            status = VerificationStatus.FAILED
        return cls(
            request_id=str(doc["request_id"]),
            api=str(doc.get("api") or "v2"),
            masked_number=str(doc.get("masked_number") or ""),
            channels=tuple(doc.get("channels") or ()),
            status=status,
            attempts=int(doc.get("attempts") or 0),
            max_attempts=int(doc.get("max_attempts") or 3),
            created_at=float(doc.get("created_at") or 0.0),
            expires_at=float(doc.get("expires_at") or 0.0),
            updated_at=float(doc.get("updated_at") or 0.0),
            finished_at=None if doc.get("finished_at") is None else float(doc["finished_at"]),
            reason=doc.get("reason"),
            client_ref=doc.get("client_ref"),
            events=tuple(dict(e) for e in doc.get("events") or ()),
            tenant=doc.get("tenant"),
        )

    def to_doc(self) -> dict[str, Any]:
        """The stored document (JSON-like values only)."""
        return {
            "request_id": self.request_id,
            "api": self.api,
            "masked_number": self.masked_number,
            "channels": list(self.channels),
            "status": self.status.value,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "reason": self.reason,
            "client_ref": self.client_ref,
            "events": [dict(e) for e in self.events],
            **({"tenant": self.tenant} if self.tenant is not None else {}),
        }

    # ---- questions -----------------------------------------------------------

    def is_expired(self, now: float) -> bool:
        """True when the record is expired, stored so or derived from ``expires_at``."""
        return self.status_at(now) is VerificationStatus.EXPIRED

    def status_at(self, now: float) -> VerificationStatus:
        """The status with expiry applied: an open record past ``expires_at`` is expired."""
        if self.status is VerificationStatus.PENDING and now >= self.expires_at:
            return VerificationStatus.EXPIRED
        return self.status

    @property
    def attempts_remaining(self) -> int:
        """Code checks still allowed by our own cap."""
        return max(0, self.max_attempts - self.attempts)

    def public(self, now: float) -> dict[str, Any]:
        """What a caller may see about this verification."""
        return {
            "request_id": self.request_id,
            "status": self.status_at(now).value,
            "channels": list(self.channels),
            "attempts": self.attempts,
            "attempts_remaining": self.attempts_remaining,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
        }

    # ---- transitions (pure: they return a new record) --------------------------

    def finish(self, status: VerificationStatus, *, now: float, reason: str) -> VerificationRecord:
        """This record moved to the final ``status``; a record already final stays as it is.

        A pending record past its expiry is finished as ``expired`` whatever was asked: the
        outcome that came first (time) wins.
        """
        if not status.is_final:
            raise ValueError("finish() needs a final status")
        current = self.status_at(now)
        if current.is_final:
            if self.status is VerificationStatus.PENDING:  # derived expiry: write it down
                return replace(self, status=current, finished_at=self.expires_at, reason="expired", updated_at=now)
            return self
        return replace(self, status=status, finished_at=now, reason=reason, updated_at=now)

    def with_attempt(self, *, now: float) -> VerificationRecord:
        """One more code check counted."""
        return replace(self, attempts=self.attempts + 1, updated_at=now)

    def with_event(self, event: Mapping[str, Any], *, now: float) -> VerificationRecord:
        """The record with a callback event remembered (bounded, oldest dropped)."""
        events = (*self.events, dict(event))[-MAX_EVENTS:]
        return replace(self, events=events, updated_at=now)


# ---- store access ------------------------------------------------------------


def record_ttl(record: VerificationRecord, now: float) -> float:
    """How long the store keeps ``record``: until a day after it expires."""
    return max(1.0, record.expires_at + RETENTION - now)


def save_record(store: StateStore, record: VerificationRecord, *, now: float) -> None:
    """Create the record atomically (RecordExistsError when the request id is already stored)."""
    store.create(COLLECTION, record.request_id, record.to_doc(), ttl=record_ttl(record, now))


def load_record(store: StateStore, request_id: str) -> VerificationRecord | None:
    """The stored record, or None."""
    doc = store.get(COLLECTION, request_id)
    return None if doc is None else VerificationRecord.from_doc(doc)


def update_record(
    store: StateStore,
    request_id: str,
    fn: Callable[[VerificationRecord], VerificationRecord | None],
    *,
    ttl: float | None = None,
) -> VerificationRecord | None:
    """Transactionally replace the record with ``fn(record)``.

    ``fn`` may run more than once and must be pure; returning None (or the same record)
    writes nothing; its exceptions propagate. ``ttl`` (seconds from now) replaces how long
    the store keeps the record when it is written; None keeps the current retention.
    Returns the record as stored after the call, or None when the request id is unknown.
    """

    def step(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None:
            return None
        current = VerificationRecord.from_doc(doc)
        new = fn(current)
        if new is None or new == current:
            return None
        return new.to_doc()

    after = store.update(COLLECTION, request_id, step, ttl=ttl)
    return None if after is None else VerificationRecord.from_doc(after)


def store_clock(store: StateStore) -> Callable[[], float]:
    """The clock the store judges expiry by, so records and rate windows agree with it.

    Tests give the store a fake clock (``SQLiteStateStore(clock=...)``); using the same one
    here lets them move time for every verification rule without sleeping.
    """
    clock = getattr(store, "_clock", None)
    return clock if callable(clock) else time.time


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
