"""Idempotency keys: record the key BEFORE Vonage is called, so a retry never sends twice.

Vonage takes no idempotency key (field-notes.md), so ours is kept in the state store,
collection ``idempotency``, following AWS Powertools' idempotency utility. One document per
key, stored under the SHA-256 of ``scope + key`` (callers never see each other's keys; the
id has a fixed length whatever the key holds)::

    {"status": "in_progress" | "completed" | "released",
     "fingerprint": sha256 of the normalised request,
     "owner": random id of the attempt holding it,
     "result": the stored result (completed only),
     "outcome": "unknown" (in_progress after a timeout),
     "started_at", "expires_at": epoch seconds}

- :func:`claim` creates the document atomically (``store.create``). Exactly one of any number
  of concurrent identical requests wins; the others read it and get the stored result
  (``completed``), :class:`IdempotencyInProgressError` (409 with ``Retry-After``) while the
  winner works, or :class:`IdempotencyKeyReusedError` (422) if their request differs.
- ``in_progress`` has its own, short expiry (``IDEMPOTENCY_IN_PROGRESS_SECONDS``): a
  crashed attempt blocks the key only that long. Finished states live
  ``IDEMPOTENCY_TTL_SECONDS``.
- :func:`complete` stores the result of an attempt that sent something; it is replayed.
- :func:`release` is for an attempt that certainly sent nothing (Vonage refused, throttled,
  opted out): the key becomes claimable again by the same request, so fixing the cause and
  retrying with the same key works. The fingerprint stays, so a different request is still
  refused.
- :func:`mark_unknown` is for an attempt whose outcome is unknown (a timeout after the
  request was sent): the key stays ``in_progress`` until it expires, never released
  silently, and a retry is told why and for how long.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import BadRequestError, ConflictError, RecordExistsError
from shared.store.base import Charge, StateStore, Update

__all__ = [
    "IDEMPOTENCY",
    "KEY_MAX_LENGTH",
    "Claim",
    "IdempotencyInProgressError",
    "IdempotencyKeyReusedError",
    "claim",
    "claim_charge",
    "complete",
    "derive_key",
    "forget",
    "held",
    "mark_unknown",
    "release",
    "store_key",
    "validate_key",
]

IDEMPOTENCY = "idempotency"
KEY_MAX_LENGTH = 255
# How soon to ask a concurrent duplicate to come back: a send normally finishes within a second.
IN_PROGRESS_RETRY_AFTER = 2.0


class IdempotencyInProgressError(ConflictError):
    """Another attempt with this key is still running (or its outcome is unknown)."""

    code = "idempotency_in_progress"


class IdempotencyKeyReusedError(BadRequestError):
    """The key was first used with a different request."""

    status = 422
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class Claim:
    """The outcome of :func:`claim`: ``acquired`` (this attempt owns the key) or a stored ``result``."""

    key: str  # the store document id
    owner: str
    fingerprint: str
    acquired: bool
    result: dict[str, Any] | None = None


def validate_key(key: Any) -> str:
    """The caller's ``Idempotency-Key``: 1-255 printable ASCII characters, or 400."""
    if not isinstance(key, str) or not key.strip():
        raise BadRequestError("Idempotency-Key must not be empty", code="invalid_idempotency_key")
    text: str = key.strip()
    if len(text) > KEY_MAX_LENGTH or not all(" " <= char <= "~" for char in text):
        raise BadRequestError(
            f"Idempotency-Key must be 1 to {KEY_MAX_LENGTH} printable ASCII characters (a UUID is a good choice)",
            code="invalid_idempotency_key",
        )
    return text


def derive_key(key: str, recipient: str) -> str:
    """The per-recipient key of a bulk send: ``key + ":" + E.164``."""
    return f"{key}:{recipient}"


def store_key(scope: str, key: str) -> str:
    """The document id of ``key`` for callers in ``scope`` (SHA-256 hex)."""
    return hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()


def claim(
    store: StateStore,
    key: str,
    fingerprint: str,
    *,
    in_progress_ttl: float,
    clock: Callable[[], float] = time.time,
) -> Claim:
    """Take ``key`` (a :func:`store_key`) for this attempt, or learn what happened to it.

    Returns an acquired Claim, or a Claim carrying the stored result of a completed attempt.
    Raises IdempotencyKeyReusedError when the key belongs to a different request and
    IdempotencyInProgressError while another attempt holds it.
    """
    owner = uuid.uuid4().hex
    now = clock()
    fresh = {
        "status": "in_progress",
        "fingerprint": fingerprint,
        "owner": owner,
        "started_at": now,
        "expires_at": now + in_progress_ttl,
    }
    # Fast path, and the only one concurrent duplicates race on: an atomic create, no transaction.
    try:
        store.create(IDEMPOTENCY, key, fresh, ttl=in_progress_ttl)
        return Claim(key, owner, fingerprint, acquired=True)
    except RecordExistsError:
        pass
    existing = store.get(IDEMPOTENCY, key)
    if existing is not None and existing.get("status") != "released":
        return _verdict(key, owner, existing, fingerprint, clock)

    # Released (or expired a moment ago): take it over inside a transaction, so two retries
    # arriving together still produce exactly one owner.
    def take(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None or (doc.get("status") == "released" and doc.get("fingerprint") == fingerprint):
            return fresh
        return None

    after = store.update(IDEMPOTENCY, key, take, ttl=in_progress_ttl)
    if after is not None and after.get("owner") == owner:
        return Claim(key, owner, fingerprint, acquired=True)
    if after is None:  # pragma: no cover - take() always writes when the document is absent
        raise IdempotencyInProgressError("the idempotency key is busy; retry shortly", retry_after=IN_PROGRESS_RETRY_AFTER)
    return _verdict(key, owner, after, fingerprint, clock)


class KeyAlreadyUsed(Exception):
    """Raised inside :func:`claim_charge`'s transaction: the key completed; ``claim`` carries its result."""

    def __init__(self, claim_: Claim) -> None:
        super().__init__("the idempotency key has a stored result")
        self.claim = claim_


def claim_charge(
    key: str, fingerprint: str, *, in_progress_ttl: float, clock: Callable[[], float] = time.time
) -> tuple[Claim, Charge]:
    """:func:`claim` as the first write of a bigger transaction (``StateStore.hit_many``'s charges:
    the send's suppression check, budgets and message record travel with it, all or none).

    Returns the Claim the attempt holds once the transaction commits, and the Charge. Its ``fn``
    takes an absent (or expired) key and one released by the same request, like :func:`claim`;
    otherwise it raises, so nothing in the transaction is written: KeyAlreadyUsed (a completed
    key: replay ``exc.claim.result``), IdempotencyInProgressError or IdempotencyKeyReusedError.
    Two concurrent claims serialize on the key's document (the transaction reads it), so one wins.
    ``undo`` writes nothing: where the charges cannot share one transaction the caller
    :func:`forget`s the claim when a later charge refuses.
    """
    owner = uuid.uuid4().hex
    now = clock()
    fresh = {"status": "in_progress", "fingerprint": fingerprint, "owner": owner, "started_at": now,
             "expires_at": now + in_progress_ttl}

    def take(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None or (doc.get("status") == "released" and doc.get("fingerprint") == fingerprint):
            return dict(fresh)
        raise KeyAlreadyUsed(_verdict(key, owner, doc, fingerprint, clock))

    return Claim(key, owner, fingerprint, acquired=True), Charge(IDEMPOTENCY, key, take, lambda doc: None,
                                                                 ttl=in_progress_ttl)


def held(store: StateStore, key: str, fingerprint: str, *, clock: Callable[[], float] = time.time) -> Claim | None:
    """What a claim of ``key`` would find, writing nothing: None when it could be taken, a Claim
    with the stored result of a completed key; raises like :func:`claim` for a key held by another
    attempt or used with another request. For a send refused before its claim (nothing to hold):
    a retry of a completed request still gets its stored answer."""
    doc = store.get(IDEMPOTENCY, key)
    if doc is None or (doc.get("status") == "released" and doc.get("fingerprint") == fingerprint):
        return None
    return _verdict(key, "", doc, fingerprint, clock)


def complete(
    store: StateStore, claim_: Claim, result: Mapping[str, Any], *, ttl: float, clock: Callable[[], float] = time.time
) -> None:
    """Store the result of the attempt holding ``claim_``; later claims replay it."""
    update = completion(claim_, result, ttl=ttl, clock=clock)
    store.update(update.collection, update.key, update.fn, ttl=update.ttl)


def completion(
    claim_: Claim, result: Mapping[str, Any], *, ttl: float, clock: Callable[[], float] = time.time
) -> Update:
    """:func:`complete`'s write as an Update, to travel in another write's ``update_many`` (the
    message record's acceptance). ``result`` is read when the write runs."""
    now = clock()

    def finish(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is not None and doc.get("owner") != claim_.owner:
            return None  # our hold expired and another attempt took the key: leave its record
        return {
            "status": "completed",
            "fingerprint": claim_.fingerprint,
            "owner": claim_.owner,
            "result": dict(result),
            "started_at": (doc or {}).get("started_at", now),
            "expires_at": now + ttl,
        }

    return Update(IDEMPOTENCY, claim_.key, finish, ttl=ttl)


def release(store: StateStore, claim_: Claim, *, ttl: float, clock: Callable[[], float] = time.time) -> None:
    """Nothing was sent: let the same request claim the key again (the fingerprint stays)."""
    now = clock()

    def free(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None or doc.get("owner") != claim_.owner:
            return None
        return {
            "status": "released",
            "fingerprint": claim_.fingerprint,
            "owner": claim_.owner,
            "started_at": doc.get("started_at", now),
            "expires_at": now + ttl,
        }

    store.update(IDEMPOTENCY, claim_.key, free, ttl=ttl)


def forget(store: StateStore, claim_: Claim) -> None:
    """Nothing was sent: remove the key altogether (a refused send keeps no row for a day).

    Only the attempt holding the key removes it; a key another attempt took over is left alone.
    """
    current = store.get(IDEMPOTENCY, claim_.key)
    if current is not None and current.get("owner") == claim_.owner:
        store.delete(IDEMPOTENCY, claim_.key)


def mark_unknown(store: StateStore, claim_: Claim) -> None:
    """The outcome is unknown: keep the key in progress until its own expiry, and say why."""

    def note(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None or doc.get("owner") != claim_.owner or doc.get("status") != "in_progress":
            return None
        return {**doc, "outcome": "unknown"}

    store.update(IDEMPOTENCY, claim_.key, note)  # ttl=None keeps the in-progress expiry


def _verdict(key: str, owner: str, doc: Mapping[str, Any], fingerprint: str, clock: Callable[[], float]) -> Claim:
    if doc.get("fingerprint") != fingerprint:
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was already used with a different request; use a new key for a new request"
        )
    if doc.get("status") == "completed":
        return Claim(key, owner, fingerprint, acquired=False, result=dict(doc.get("result") or {}))
    remaining = max(0.0, float(doc.get("expires_at") or 0) - clock())
    if doc.get("outcome") == "unknown":
        raise IdempotencyInProgressError(
            "an earlier attempt with this Idempotency-Key lost its connection to Vonage, so it may have been sent; "
            f"the key stays blocked for {int(remaining + 0.999)} more seconds so it is not sent twice. "
            "Check the message record before retrying.",
            retry_after=max(1.0, remaining),
            details={"outcome": "unknown"},
        )
    raise IdempotencyInProgressError(
        "a request with this Idempotency-Key is still in progress; retry shortly to get its result",
        retry_after=max(1.0, min(remaining, IN_PROGRESS_RETRY_AFTER)),
    )


def release_abandoned(store: StateStore, key: str, fingerprint: str, *, stale_after: float, now: float) -> bool:
    """Free a key left ``in_progress`` by an attempt that died before anything was sent.

    Only for a caller that KNOWS nothing went out yet (the queue's next attempt found no message
    record for it), and only once the hold is older than ``stale_after`` seconds: a younger hold
    may belong to an attempt that is slow, not dead, and still about to send. A key whose
    outcome is unknown is never freed. True when freed.
    """

    def free(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None or doc.get("status") != "in_progress" or doc.get("fingerprint") != fingerprint:
            return None
        if doc.get("outcome") == "unknown":
            return None
        if now - float(doc.get("started_at", now)) < stale_after:
            return None
        return {**doc, "status": "released"}

    after = store.update(IDEMPOTENCY, key, free)
    return after is not None and after.get("status") == "released"
