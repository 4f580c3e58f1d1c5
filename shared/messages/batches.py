"""Bulk and scheduled sends through the task queue: one batch record, one task per recipient.

``POST /send`` with a list (or with ``send_at``) and a queue configured lands here:

- :func:`submit` validates nothing new (the request is already parsed), writes the batch record
  (collection ``batches``), the recipients 100 to a page document (``batch_pages``: invalid
  numbers and repeats are final at once) and one expand task per 500 recipients, which creates
  each recipient's result document (``batch_recipients``, keyed ``batch:index``) and one task
  per sendable recipient, named after the batch and the recipient. With an ``Idempotency-Key`` the batch id
  is derived from it, so repeating the call creates nothing new and finishes an enqueue that was
  cut short. Answers 202 with ``batch_id`` and a ``summary`` of counts.
- :func:`deliver_task` runs one task: it checks the batch (cancelled? due?) and the recipient
  (already final? then it was a duplicate dispatch), then calls ``service.send_one``, the same
  per-recipient routine as a synchronous send (idempotency claim, opt-outs, pacing). It answers
  like an HTTP target: 200 when the recipient's outcome is final (recorded once), 429/503 with
  Retry-After when a retry is worth it (throttling, store outage, the account's balance), and
  on the last attempt it records ``failed`` with the reason instead of asking again.
- A send whose answer was lost is ``unknown`` and never resent. A later attempt of a task whose
  earlier attempt died mid-send looks for that attempt's message record: none means nothing
  left this service, so the key is freed and the send goes ahead; a record means it may have
  gone out, so the recipient is ``unknown``. An ``unknown`` recipient settles when its message
  record moves on (a receipt arrived) or shows as ``unconfirmed`` after ``UNKNOWN_SETTLE_SECONDS``.
- :func:`get_batch` shows counts by state and the results a page at a time (cursor);
  :func:`cancel_batch` marks the batch cancelled (the truth ``deliver`` checks) and stops
  the tasks that have not run.

Counts live in the batch record (what was final at submission) plus small counter documents
(``batch_counts``, one per shard of recipients) that each final outcome moves, so no write
contends on one document at the sending rate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.errors import NotFoundError, RecordExistsError, ServiceError, StoreError, ValidationError
from shared.log import get_logger
from shared.messages import idempotency as idem
from shared.messages.records import MESSAGES
from shared.messages.request import SEND_FIELDS, SendRequest, parse_send_request
from shared.queue.base import Task, TaskResult, check_schedule, task_name
from shared.tenants import ApiCaller, can_see

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.queue.base import TaskQueue
    from shared.store.base import StateStore
    from shared.vonage.client import VonageClient

__all__ = [
    "BATCHES",
    "BATCH_COUNTS",
    "BATCH_RECIPIENTS",
    "PAGE_SIZE",
    "cancel_batch",
    "deliver_task",
    "get_batch",
    "is_batch_id",
    "pop_send_at",
    "receipt_ref",
    "settle_by_receipt",
    "submit",
]

BATCHES = "batches"
BATCH_RECIPIENTS = "batch_recipients"
BATCH_COUNTS = "batch_counts"
BATCH_CHUNKS = "batch_chunks"  # markers: this chunk's recipient tasks exist
BATCH_PAGES = "batch_pages"  # the recipients as accepted, PAGE_SIZE to a document (``batch:page``)
EXPAND_CHUNK = 500  # recipients per expand task (a multiple of PAGE_SIZE)
# The states an attempt's outcome may replace: a cancel marks a recipient while its attempt may
# already be with Vonage; what that attempt reports (sent, refused, unknown) is the truth.
SENT_OR_TRIED = ("queued", "cancelled")
PAGE_SIZE = 100
COUNTER_SHARDS = 16
CANCEL_INLINE_LIMIT = 10_000  # recipients a DELETE marks itself; the rest settle as their tasks run
FINAL = frozenset({"submitted", "failed", "opted_out", "skipped_duplicate", "cancelled", "unknown"})
# Codes worth another attempt later (the queue backs off): the account or the deployment, not
# the recipient. A refusal with any other code is final.
RETRY_CODES = frozenset(
    {"vonage_throttled", "throttled", "vonage_unavailable", "misconfigured", "misconfigured_vonage_credentials",
     "insufficient_balance", "idempotency_in_progress", "store_unavailable",
     # A spend budget refills with its window: wait for it (Retry-After) instead of failing the rest.
     "budget_exhausted"}
)
_BATCH_ID_PREFIX = "bat_"
REF_PREFIX = "vfq-"  # client_ref of a queued send whose caller gave none
# Everything a send request may carry but its recipients (failover, channels and rich content included).
_CONTENT_FIELDS = tuple(sorted(SEND_FIELDS - {"to", "dry_run"}))

log = get_logger("shared.messages.batches")


def is_batch_id(value: str | None) -> bool:
    return bool(value) and str(value).startswith(_BATCH_ID_PREFIX)


def pop_send_at(body: Any, now: float) -> tuple[Any, float | None]:
    """Take ``send_at`` (RFC 3339, at most 30 days ahead) out of a send body; 422 when malformed."""
    if not isinstance(body, Mapping) or body.get("send_at") is None:
        if isinstance(body, Mapping) and "send_at" in body:
            body = {k: v for k, v in body.items() if k != "send_at"}
        return body, None
    value = body["send_at"]
    rest = {k: v for k, v in body.items() if k != "send_at"}
    if not isinstance(value, str):
        raise ValidationError("send_at must be an RFC 3339 time such as 2030-01-31T09:00:00Z", field="send_at")
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("send_at must be an RFC 3339 time such as 2030-01-31T09:00:00Z", field="send_at") from None
    if when.tzinfo is None or "T" not in value.upper():
        raise ValidationError("send_at needs a date, a time and a time zone (Z or +hh:mm)", field="send_at")
    return rest, check_schedule(when.timestamp(), now)


# ---- submission --------------------------------------------------------------------------------


def submit(
    request: SendRequest,
    body: Mapping[str, Any],
    *,
    send_at: float | None,
    key: str | None,
    scope: str,
    settings: Settings,
    store: StateStore,
    queue: TaskQueue,
    now: float,
    tenant: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Write the batch and its tasks; return (202, answer)."""
    batch_id = _BATCH_ID_PREFIX + (idem.store_key(scope, key)[:32] if key is not None else uuid.uuid4().hex)
    content = {name: body[name] for name in _CONTENT_FIELDS if body.get(name) is not None}
    if "channels" not in content:  # a channel preference is planned per recipient when it goes out
        content.update(channel=request.channel, api=request.api, **{"from": request.sender})
    fingerprint = hashlib.sha256(f"{request.fingerprint}|{send_at}".encode()).hexdigest()
    invalid = sum(1 for r in request.recipients if r.error is not None)
    repeats = sum(1 for r in request.recipients if r.error is None and r.duplicate_of is not None)
    total = len(request.recipients)
    batch = {
        "id": batch_id,
        "scope": scope,
        "tenant": tenant,
        "fingerprint": fingerprint,
        "content": content,
        "bulk": request.bulk,
        "state": "scheduled" if send_at is not None and send_at > now else "queued",
        "send_at": send_at,
        "total": total,
        "pages": (total + PAGE_SIZE - 1) // PAGE_SIZE,
        "initial": {"queued": total - invalid - repeats, "failed": invalid, "skipped_duplicate": repeats},
        "queue": queue.name,
        "settle_seconds": settings.unknown_settle_seconds,
        "created_at": _iso(now),
    }
    try:
        store.create(BATCHES, batch_id, batch)
    except RecordExistsError:
        existing = store.get(BATCHES, batch_id)
        if existing is None or existing.get("fingerprint") != fingerprint:
            raise idem.IdempotencyKeyReusedError(
                "this Idempotency-Key was already used with a different request; use a new key for a new request"
            ) from None
        batch = existing  # the same request again: finish what the first call may not have
    if batch.get("enqueued"):
        # Enqueued completely before: nothing to create (Cloud Tasks' emulator would not refuse
        # the names a second time, so this does not rely on it).
        return 202, _answer(request, batch, send_at)
    # The recipients are written PAGE_SIZE to a document: one write per recipient was most of
    # the time to the 202. Each recipient's own record (what deliver, cancel and receipts move)
    # is created from its page when its chunk is expanded, off the accept path (_materialise).
    # One page built and written at a time: the whole batch's documents never sit in memory.
    recipients = request.recipients
    for page, start in enumerate(range(0, total, PAGE_SIZE)):
        entries = [_recipient_doc(batch_id, r, with_ref=request.client_ref is None) for r in recipients[start:start + PAGE_SIZE]]
        try:
            store.create(BATCH_PAGES, f"{batch_id}:{page}", {"batch_id": batch_id, "page": page, "entries": entries})
        except RecordExistsError:
            pass
    # Fan-out: one "expand" task per EXPAND_CHUNK recipients creates their tasks from the queue
    # itself, so the answer does not wait for 100,000 task creations (one RPC each on Cloud Tasks).
    chunks = (total + EXPAND_CHUNK - 1) // EXPAND_CHUNK
    report = queue.enqueue(
        Task(f"{batch_id}-x{chunk}", {"batch_id": batch_id, "expand": chunk}, now, batch_id) for chunk in range(chunks)
    )
    store.update(BATCHES, batch_id, lambda doc: {**doc, "enqueued": True} if doc is not None else None)
    log.info("batch queued", extra={"batch_id": batch_id, "recipients": total, "expand_tasks": report.created,
                                     "queue": queue.name})
    return 202, _answer(request, batch, send_at)


def _recipient_doc(batch_id: str, recipient: Any, *, with_ref: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "batch_id": batch_id,
        "index": recipient.index,
        # One field for (batch, page): a query with one equality filter and one order needs
        # one two-field composite index on Firestore (deploy.sh).
        "page": f"{batch_id}:{recipient.index // PAGE_SIZE}",
        "to": recipient.address if recipient.address is not None else _printable(recipient.raw),
    }
    if recipient.error is not None:
        doc.update(state="failed", error=recipient.error.as_record())
    elif recipient.duplicate_of is not None:
        doc.update(state="skipped_duplicate", duplicate_of=recipient.duplicate_of)
    else:
        assert recipient.address is not None
        doc.update(state="queued", task=task_name(batch_id, recipient.address))
        if with_ref:
            # Our reference on the wire, so a receipt can settle a send whose answer was lost.
            doc["client_ref"] = receipt_ref(batch_id, recipient.index)
    return doc


def _page_entries(store: StateStore, batch: Mapping[str, Any], page: int) -> list[dict[str, Any]]:
    """One page's recipients: their own records where they exist, else as accepted.

    Before its chunk was expanded a recipient has no record yet; it shows as accepted (``queued``,
    or ``cancelled`` once the batch is: the expansion will record it so).
    """
    batch_id = str(batch["id"])
    records = store.query(BATCH_RECIPIENTS, where={"page": f"{batch_id}:{page}"}, order_by="index", limit=PAGE_SIZE)
    accepted = (store.get(BATCH_PAGES, f"{batch_id}:{page}") or {}).get("entries") or []
    if len(records) >= len(accepted):
        return records
    have = {int(r["index"]) for r in records}
    merged = list(records)
    for entry in accepted:
        if int(entry["index"]) not in have:
            if entry.get("state") == "queued" and batch.get("state") == "cancelled":
                entry = {**entry, "state": "cancelled"}
            merged.append(entry)
    return sorted(merged, key=lambda r: int(r["index"]))


def _materialise(store: StateStore, batch: Mapping[str, Any], chunk: int) -> tuple[list[dict[str, Any]], int]:
    """Create the recipient records of one chunk from its pages (each once).

    Returns the queued ones and how many this call cancelled: in a cancelled batch the queued
    ones are recorded ``cancelled`` (and counted) instead.
    """
    batch_id = str(batch["id"])
    cancelled = batch.get("state") == "cancelled"
    first_page = chunk * EXPAND_CHUNK // PAGE_SIZE
    last_page = min((chunk + 1) * EXPAND_CHUNK // PAGE_SIZE, int(batch.get("pages") or 0))
    queued: list[dict[str, Any]] = []
    stopped = 0
    for page in range(first_page, last_page):
        for entry in (store.get(BATCH_PAGES, f"{batch_id}:{page}") or {}).get("entries") or []:
            try:
                store.create(BATCH_RECIPIENTS, _recipient_key(batch_id, int(entry["index"])), entry)
            except RecordExistsError:
                entry = store.get(BATCH_RECIPIENTS, _recipient_key(batch_id, int(entry["index"]))) or entry
            if entry.get("state") != "queued":
                continue
            if not cancelled:
                queued.append(entry)
            elif _finish(store, batch_id, int(entry["index"]), {"state": "cancelled"}, from_states=("queued",)):
                stopped += 1
    return queued, stopped


def _answer(request: SendRequest, batch: Mapping[str, Any], send_at: float | None) -> dict[str, Any]:
    answer = {
        "batch_id": batch["id"],
        "status": batch["state"],
        "send_at": _iso(send_at) if send_at is not None else None,
        "channel": request.channel,
        "api": request.api,
        "from": request.sender,
        "summary": {"total": batch["total"], **batch["initial"]},
        "links": {"self": f"/send/{batch['id']}"},
    }
    if request.analysis is not None:
        answer.update(encoding=request.analysis.encoding, segments=request.analysis.segments)
    return answer


def _expand(store: StateStore, queue: TaskQueue | None, batch: Mapping[str, Any], chunk: int, *, now: float) -> TaskResult:
    """Create the recipient tasks of one chunk of a batch (an "expand" task)."""
    batch_id = str(batch["id"])
    marker = f"{batch_id}:{chunk}"
    if queue is None:
        return TaskResult(503, retry_after=5.0, error="no queue configured")
    if store.get(BATCH_CHUNKS, marker) is not None:
        return TaskResult(200)
    queued, _ = _materialise(store, batch, chunk)
    if batch.get("state") == "cancelled":
        return TaskResult(200)
    due = float(batch["send_at"]) if batch.get("send_at") is not None else now
    tasks = [Task(str(entry["task"]), {"batch_id": batch_id, "index": int(entry["index"])}, due, batch_id)
             for entry in queued if entry.get("task")]
    queue.enqueue(tasks)
    try:
        store.create(BATCH_CHUNKS, marker, {"batch_id": batch_id, "chunk": chunk, "tasks": len(tasks)})
    except RecordExistsError:
        pass
    return TaskResult(200)


# ---- reading and cancelling ------------------------------------------------------------------


def get_batch(
    store: StateStore, batch_id: str, *, scope: str, cursor: str | None = None, now: float, caller: ApiCaller | None = None
) -> dict[str, Any]:
    """Counts by state and one page of per-recipient results; ``next_cursor`` for the next page."""
    batch = _own_batch(store, batch_id, scope, caller)
    page = _page(cursor, batch)
    entries = _page_entries(store, batch, page)
    results = []
    for entry in entries:
        if entry.get("state") == "unknown":
            entry = _settle_unknown(store, entry, now=now, window=_settle_window(batch))
        results.append({k: v for k, v in entry.items() if k not in ("batch_id", "page", "task")})
    next_page = page + 1
    return {
        "batch_id": batch_id,
        "status": _batch_status(batch, now),
        "send_at": _iso(batch["send_at"]) if batch.get("send_at") is not None else None,
        "channel": batch["content"].get("channel"),
        "api": batch["content"].get("api"),
        "created_at": batch.get("created_at"),
        "summary": counts(store, batch),
        "results": results,
        "next_cursor": str(next_page) if next_page < int(batch.get("pages") or 0) else None,
    }


def cancel_batch(
    store: StateStore, queue: TaskQueue | None, batch_id: str, *, scope: str, now: float, caller: ApiCaller | None = None
) -> dict[str, Any]:
    """Stop what has not been sent; what is already on its way to Vonage finishes."""
    batch = _own_batch(store, batch_id, scope, caller)

    def mark(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None or doc.get("state") == "cancelled":
            return None
        return {**doc, "state": "cancelled", "cancelled_at": _iso(now)}

    batch = store.update(BATCHES, batch_id, mark) or store.get(BATCHES, batch_id) or batch
    stopped = 0
    # Recipients whose chunk was not expanded yet have no record: record them cancelled now
    # (the expansion, when its task runs, then finds nothing queued).
    chunks = (int(batch.get("total") or 0) + EXPAND_CHUNK - 1) // EXPAND_CHUNK
    for chunk in range(chunks):
        if stopped >= CANCEL_INLINE_LIMIT:
            break
        if store.get(BATCH_CHUNKS, f"{batch_id}:{chunk}") is None:
            stopped += _materialise(store, batch, chunk)[1]
    while stopped < CANCEL_INLINE_LIMIT:
        waiting = store.query(BATCH_RECIPIENTS, where={"batch_id": batch_id, "state": "queued"}, limit=200)
        if not waiting:
            break
        for entry in waiting:
            if queue is not None and entry.get("task"):
                queue.cancel([entry["task"]])
            if _finish(store, entry["batch_id"], int(entry["index"]), {"state": "cancelled"}, from_states=("queued",)):
                stopped += 1
    log.info("batch cancelled", extra={"batch_id": batch_id, "stopped": stopped})
    answer = get_batch(store, batch_id, scope=scope, now=now, caller=caller)
    answer.pop("results", None)
    answer.pop("next_cursor", None)
    answer["cancelled"] = stopped
    return answer


def counts(store: StateStore, batch: Mapping[str, Any]) -> dict[str, int]:
    """The batch's counts by recipient state (submission counts plus every shard's moves)."""
    summary: dict[str, int] = {"total": int(batch.get("total") or 0)}
    for state, number in (batch.get("initial") or {}).items():
        summary[state] = summary.get(state, 0) + int(number)
    # One query for every shard (each shard document names its batch).
    for doc in store.query(BATCH_COUNTS, where={"batch_id": batch["id"]}, limit=COUNTER_SHARDS):
        for state, number in (doc.get("counts") or {}).items():
            summary[state] = summary.get(state, 0) + int(number)
    return {k: v for k, v in summary.items() if v or k in ("total", "queued")}


# ---- delivering one task ------------------------------------------------------------------


def deliver_task(
    payload: Mapping[str, Any],
    *,
    attempt: int,
    last_attempt: bool,
    settings: Settings,
    store: StateStore,
    vonage: VonageClient,
    pacer: Any = None,
    queue: TaskQueue | None = None,
    now: float,
) -> TaskResult:
    """Run one task (a recipient, or the expansion of a chunk); the answer tells the queue whether to try again."""
    from shared.messages.service import send_one

    batch_id, index, chunk = payload.get("batch_id"), payload.get("index"), payload.get("expand")
    if not isinstance(batch_id, str) or not is_batch_id(batch_id):
        return TaskResult(400, error="not a task of this service")
    if isinstance(chunk, int) and not isinstance(chunk, bool):
        try:
            batch = store.get(BATCHES, batch_id)
            if batch is None:
                return TaskResult(200, error="unknown batch")
            return _expand(store, queue, batch, chunk, now=now)
        except ServiceError as exc:  # the store or the queue failed: the queue tries again
            return TaskResult(503, retry_after=5.0, error=exc.code)
    if isinstance(index, bool) or not isinstance(index, int):
        return TaskResult(400, error="not a task of this service")
    try:
        batch = store.get(BATCHES, batch_id)
        entry = store.get(BATCH_RECIPIENTS, _recipient_key(batch_id, index))
    except StoreError:
        return _retry_or_fail(store, batch_id, index, last_attempt, "store_unavailable", "the state store is unavailable", 5.0)
    if batch is None or entry is None:
        log.warning("a task for an unknown batch or recipient", extra={"batch_id": batch_id})
        return TaskResult(200, error="unknown batch")
    if entry.get("state") != "queued":
        return TaskResult(200)  # already final: a duplicate dispatch (the emulator does not dedupe)
    if batch.get("state") == "cancelled":
        _finish(store, batch_id, index, {"state": "cancelled"}, from_states=("queued",))
        return TaskResult(200)
    send_at = batch.get("send_at")
    if send_at is not None and float(send_at) > now + 1.0:
        # Never early, whatever the queue did: come back when it is due.
        return TaskResult(503, retry_after=float(send_at) - now, error="not due yet")
    content = dict(batch["content"])
    try:
        if entry.get("client_ref") and not content.get("client_ref"):
            content["client_ref"] = entry["client_ref"]
        request = parse_send_request({**content, "to": entry["to"]}, settings)
        result, error = send_one(
            request,
            key=batch_id,
            scope="batch:" + str(batch.get("scope")),
            settings=settings,
            store=store,
            vonage=vonage,
            pacer=pacer,
            in_progress_ttl=max(settings.idempotency_ttl, 31 * 86400.0),
            tenant=batch.get("tenant"),
            # The caller's own budget: a queued send spends the same per-token budget as a direct one.
            budget_scope=str(batch.get("scope")),
        )
    except StoreError:
        return _retry_or_fail(store, batch_id, index, last_attempt, "store_unavailable", "the state store is unavailable", 5.0)
    except ServiceError as exc:
        if exc.code in RETRY_CODES:
            return _retry_or_fail(store, batch_id, index, last_attempt, exc.code, exc.message, exc.retry_after)
        _finish(store, batch_id, index, {"state": "failed", "error": exc.as_record()}, from_states=("queued",))
        return TaskResult(200, error=exc.code)

    status = result.get("status")
    if status == "in_progress":
        return _held_key(store, batch, entry, request, result, attempt=attempt, last_attempt=last_attempt, now=now,
                         stale_after=2 * settings.queue_lease_seconds)
    if status == "failed" and error is not None and error.code in RETRY_CODES:
        return _retry_or_fail(store, batch_id, index, last_attempt, error.code, error.message, error.retry_after)
    outcome = {k: v for k, v in result.items() if k in ("id", "vonage_ids", "message_uuid", "price", "currency", "error")}
    outcome["state"] = status if status in FINAL else "failed"
    if status == "unknown":
        outcome["unknown_at"] = now
    # SENT_OR_TRIED: a cancel that came while this attempt was with Vonage does not hide what happened.
    _finish(store, batch_id, index, outcome, from_states=SENT_OR_TRIED)
    return TaskResult(200)


def _held_key(
    store: StateStore,
    batch: Mapping[str, Any],
    entry: Mapping[str, Any],
    request: SendRequest,
    result: Mapping[str, Any],
    *,
    attempt: int,
    last_attempt: bool,
    now: float,
    stale_after: float,
) -> TaskResult:
    """The recipient's key is held by another attempt: running, dead before sending, or unknown."""
    batch_id, index = str(batch["id"]), int(entry["index"])
    details = (result.get("error") or {}).get("details") or {}
    if details.get("outcome") == "unknown":
        _finish(store, batch_id, index, {"state": "unknown", "error": result.get("error"), "unknown_at": now},
                from_states=SENT_OR_TRIED)
        return TaskResult(200)
    if attempt > 1:
        # An earlier attempt of this task stopped while holding the key (a crash, a lost lease).
        sent = store.query(MESSAGES, where={"idempotency_key": batch_id, "to": entry["to"]}, limit=1)
        if not sent:
            key = idem.store_key("batch:" + str(batch.get("scope")), idem.derive_key(batch_id, str(entry["to"])))
            # Freed only once the hold is older than a lease could be: an earlier attempt that is
            # merely slow (store lock waits, a dispatch deadline) may still be about to send.
            if idem.release_abandoned(store, key, request.fingerprint, stale_after=stale_after, now=now):
                return TaskResult(503, retry_after=0.0, error="an earlier attempt stopped before sending")
            return _retry_or_fail(store, batch_id, index, last_attempt, "idempotency_in_progress",
                                  "an earlier attempt may still be sending to this recipient", stale_after / 2)
        message = sent[0]
        if not message.get("vonage_ids"):
            error = {"code": "outcome_unknown", "message": "an earlier attempt stopped while sending; it may have been sent",
                     "http_status": 504}
            _finish(store, batch_id, index, {"state": "unknown", "id": message.get("id"), "error": error, "unknown_at": now},
                    from_states=SENT_OR_TRIED)
            return TaskResult(200)
        _finish(store, batch_id, index, {"state": "submitted", "id": message.get("id"),
                                         "vonage_ids": message.get("vonage_ids")}, from_states=SENT_OR_TRIED)
        return TaskResult(200)
    return _retry_or_fail(store, batch_id, index, last_attempt, "idempotency_in_progress",
                          "another attempt is sending to this recipient", 2.0)


def _retry_or_fail(
    store: StateStore, batch_id: str, index: int, last_attempt: bool, code: str, message: str, retry_after: float | None
) -> TaskResult:
    if not last_attempt:
        status = 429 if "throttled" in code else 503
        return TaskResult(status, retry_after=retry_after, error=code)
    error = {"code": code, "message": f"gave up after the last attempt: {message}", "http_status": 503}
    try:
        _finish(store, batch_id, index, {"state": "failed", "error": error}, from_states=("queued",))
    except StoreError:
        return TaskResult(503, retry_after=retry_after, error=code)
    return TaskResult(200, error=code)


# ---- recipient results ------------------------------------------------------------------------


def _finish(store: StateStore, batch_id: str, index: int, outcome: Mapping[str, Any], *, from_states: tuple[str, ...]) -> bool:
    """Move one recipient to its outcome, once; the counters follow. True when it moved."""
    before: list[str] = []

    def move(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None or doc.get("state") not in from_states:
            return None
        before.append(str(doc["state"]))
        return {**doc, **outcome}

    after = store.update(BATCH_RECIPIENTS, _recipient_key(batch_id, index), move)
    if not before or after is None or after.get("state") != outcome.get("state"):
        return False
    old, new = before[-1], str(outcome["state"])

    def count(doc: dict[str, Any] | None) -> dict[str, Any]:
        tally = dict((doc or {}).get("counts") or {})
        tally[old] = int(tally.get(old, 0)) - 1
        tally[new] = int(tally.get(new, 0)) + 1
        return {"batch_id": batch_id, "counts": tally}

    store.update(BATCH_COUNTS, f"{batch_id}:{index % COUNTER_SHARDS}", count)
    if old == "queued":
        _emit_if_complete(store, batch_id)
    return True


def _emit_if_complete(store: StateStore, batch_id: str) -> None:
    """``com.vonage.batch.completed.v1`` once nothing of the batch is left queued (the outbox
    makes it once per batch however many recipients finish together); never fails the task."""
    from shared.events.emit import emit_batch_completed

    try:
        batch = store.get(BATCHES, batch_id)
        summary = counts(store, batch) if batch is not None else None
        if summary is not None and summary.get("queued", 0) <= 0:
            emit_batch_completed(batch_id, summary, store=store)
    except ServiceError:  # a store outage: the batch's own records are already right
        log.warning("batch.completed not checked (store unavailable)", extra={"batch_id": batch_id})


def _settle_unknown(store: StateStore, entry: dict[str, Any], *, now: float, window: float) -> dict[str, Any]:
    """An unknown recipient whose message record moved on (a receipt came) or whose window passed."""
    record = store.get(MESSAGES, str(entry.get("id"))) if entry.get("id") else None
    status = (record or {}).get("status")
    if status and status != "pending":
        if status in ("delivered", "read"):
            settled = "delivered"
        elif status in ("submitted", "accepted", "buffered"):
            settled = "submitted"
        else:
            settled = "failed"  # a final failure receipt (rejected, undeliverable, expired...)
        outcome = {"state": settled, "settled_by": "receipt", "vonage_ids": (record or {}).get("vonage_ids")}
    elif float(entry.get("unknown_at") or now) + window <= now:
        outcome = {"state": "unconfirmed", "settled_by": "timeout"}
    else:
        return entry
    if _finish(store, str(entry["batch_id"]), int(entry["index"]), outcome, from_states=("unknown",)):
        return {**entry, **outcome}
    return entry


def receipt_ref(batch_id: str, index: int) -> str:
    """The ``client_ref`` a queued send carries when the caller gave none (33 characters, so it
    fits the SMS API's older 40-character limit too)."""
    return REF_PREFIX + hashlib.sha256(f"{batch_id}:{index}".encode()).hexdigest()[:31]


def settle_by_receipt(store: StateStore, client_ref: str | None, vonage_id: str, *, now: float) -> bool:
    """A receipt for a Vonage id we never learned: if it names an ``unknown`` queued send by its
    ``client_ref``, attach the id to that message (which merges the parked receipt) and settle
    the recipient. True when it settled one. Called by the status webhook for parked receipts."""
    from shared.messages.records import attach_vonage_ids

    if not client_ref or not client_ref.startswith(REF_PREFIX) or len(client_ref) != len(REF_PREFIX) + 31:
        return False
    entries = store.query(BATCH_RECIPIENTS, where={"client_ref": client_ref}, limit=1)
    if not entries or entries[0].get("state") != "unknown" or not entries[0].get("id"):
        return False
    entry = entries[0]
    attach_vonage_ids(store, str(entry["id"]), [{"vonage_id": vonage_id}], price=None, currency=None, now=now)
    settled = _settle_unknown(store, entry, now=now, window=float("inf"))
    if settled.get("state") != "unknown":
        log.info("an unknown send settled by its receipt", extra={"batch_id": entry.get("batch_id"), "state": settled["state"]})
        return True
    return False


def _settle_window(batch: Mapping[str, Any]) -> float:
    return float(batch.get("settle_seconds") or UNKNOWN_SETTLE_SECONDS)


UNKNOWN_SETTLE_SECONDS = 3 * 86400.0  # SMS receipts can arrive for 72 h


def _own_batch(store: StateStore, batch_id: str, scope: str, caller: ApiCaller | None) -> dict[str, Any]:
    """The batch, for the token that sent it, a caller of its tenant, or an admin (shared.tenants)."""
    batch = store.get(BATCHES, batch_id) if is_batch_id(batch_id) else None
    allowed = batch is not None and (
        batch.get("scope") == scope or (caller is not None and can_see(batch.get("tenant"), caller))
    )
    if not allowed:
        raise NotFoundError("no batch with this id")  # another caller's batch is not ours to show
    return batch


def _page(cursor: str | None, batch: Mapping[str, Any]) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or int(cursor) >= max(1, int(batch.get("pages") or 0)):
        raise ValidationError("cursor is not one this batch gave out", field="cursor", code="invalid_cursor")
    return int(cursor)


def _batch_status(batch: Mapping[str, Any], now: float) -> str:
    if batch.get("state") == "cancelled":
        return "cancelled"
    if batch.get("send_at") is not None and float(batch["send_at"]) > now:
        return "scheduled"
    return "queued"


def _recipient_key(batch_id: str, index: int) -> str:
    return f"{batch_id}:{index:07d}"



def _printable(raw: Any) -> Any:
    return raw if isinstance(raw, (str, int, float, bool)) or raw is None else json.dumps(raw, default=str)[:100]


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat().replace("+00:00", "Z")
