"""Sending messages: the one path every send takes, from the send function and from replies.

:func:`send_messages` serves ``POST /send`` (one recipient or a bulk list);
:func:`send_text` lets other functions (inbound replies, STOP confirmations) send one text
through exactly the same steps; :func:`get_message` serves ``GET /send/<id>``.

For each recipient, in this order:

1. Bad numbers and repeats in a bulk list are reported, not sent.
2. The request's idempotency key is claimed in the store (the whole request's guard).
3. A failover plan that no item can reach (a closed WhatsApp window) is refused, writing nothing.
4. ONE store transaction per recipient, all or none, BEFORE Vonage is called: the recipient's
   idempotency key ``key + ":" + E.164`` is claimed (``shared.messages.idempotency``: a completed
   key replays its stored result, a key held by another attempt answers "in progress"), the
   suppression list is read (an opted-out number is not sent to: ``opted_out``), the send
   budgets are charged (``shared.budget``: ``budget_exhausted``) and the message record
   (``shared.messages.records``) is created, ``pending``. A refusal writes none of them.
5. Vonage is called in a paced slot (``shared.messages.pacing``); the client retries
   throttling and 5xx itself, the pacer backs off the whole process on top.
6. Accepted: ONE transaction gives the record Vonage's ids (one per SMS part) and
   ``submitted``, completes the key with the result, indexes the ids and merges the receipts
   that arrived first (``attach_vonage_ids``). Refused (nothing sent): the record is ``failed``,
   the key is released so the same request can be retried once the cause is fixed. Outcome
   unknown (a timeout after the request left): the record stays ``pending`` with the error
   noted, and the key stays in progress until it expires, so a retry cannot send it twice.

Account-level failures (bad credentials, no credit, suspended account) stop a bulk send:
the recipients not attempted yet are reported ``not_attempted`` and can be retried with the
same key. A store failure does not: it fails only the recipient that met it (``store_unavailable``,
nothing sent), and the others go on.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from shared.balance import estimate_prices, note_remaining_balance
from shared.budget import send_charges
from shared.errors import (
    BudgetExhaustedError,
    ConfigError,
    NotFoundError,
    ServiceError,
    StoreError,
    ValidationError,
    VonageTimeoutError,
    VonageUnavailableError,
)
from shared.log import get_logger
from shared.messages import idempotency as idem
from shared.messages.failover import Plan, plan_items
from shared.messages.pacing import BULK_WORKERS, THROTTLE_RETRIES, get_pacer, paced_call, run_bounded
from shared.messages.payloads import messages_api_body, sms_api_arguments
from shared.messages.records import (
    MESSAGE_IDS,
    MESSAGES,
    attach_vonage_ids,
    mark_failed,
    new_message_id,
    new_message_record,
)
from shared.messages.request import MessageItem, Recipient, SendRequest, parse_send_request
from shared.messages.suppression import is_suppressed, not_suppressed, opted_out_error
from shared.store.base import Charge
from shared.tenants import ApiCaller, can_see

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.messages.encoding import TextAnalysis
    from shared.store.base import StateStore
    from shared.vonage.client import MessageSubmission, SmsSubmission, VonageClient

__all__ = [
    "FATAL_CODES",
    "SendOutcome",
    "caller_scope",
    "get_message",
    "send_messages",
    "send_one",
    "send_text",
]

log = get_logger("shared.messages.service")

# Errors about the account or the deployment, not the recipient: a bulk send stops at the first.
FATAL_CODES = frozenset(
    {"misconfigured", "misconfigured_vonage_credentials", "vonage_account_barred", "vonage_account_not_enabled", "insufficient_balance",
     "budget_exhausted"}
)
INTERNAL_SCOPE = "internal"
# Pauses between attempts of a store write that records a send already made (~3 s in all).
AFTER_SEND_RETRY_DELAYS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0)
_MESSAGE_ID = re.compile(r"msg_[0-9a-f]{32}")
_VONAGE_ID = re.compile(r"[A-Za-z0-9-]{8,64}")

# Per-recipient result statuses, and the summary counter each one adds to.
SUBMITTED = "submitted"
FAILED = "failed"
OPTED_OUT = "opted_out"
SKIPPED_DUPLICATE = "skipped_duplicate"
IN_PROGRESS = "in_progress"
UNKNOWN = "unknown"
NOT_ATTEMPTED = "not_attempted"
_SUMMARY_FIELDS = ("total", "sent", "failed", "opted_out", "skipped_duplicate", "in_progress", "unknown", "replayed")
_COMMON_FIELDS = frozenset(
    {"channel", "api", "from", "message_type", "encoding", "segments", "unicode_characters", "client_ref"}
)
_SUMMARY_KEY = {
    SUBMITTED: "sent",
    FAILED: "failed",
    NOT_ATTEMPTED: "failed",
    OPTED_OUT: "opted_out",
    SKIPPED_DUPLICATE: "skipped_duplicate",
    IN_PROGRESS: "in_progress",
    UNKNOWN: "unknown",
}


@dataclass(frozen=True)
class SendOutcome:
    """The HTTP answer of a send: status, JSON body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Delivery:
    """One recipient's result, plus the live error for a single send to raise."""

    result: dict[str, Any]
    error: ServiceError | None = None


@dataclass
class _Run:
    """Everything one send needs, shared by the bulk threads."""

    request: SendRequest
    settings: Settings
    store: StateStore
    vonage: VonageClient
    key: str | None
    scope: str
    bypass_suppression: bool
    clock: Callable[[], float]
    tenant: str | None = None  # the caller's tenant (shared.tenants); written on each record
    abort: threading.Event = field(default_factory=threading.Event)
    abort_error: list[ServiceError] = field(default_factory=list)
    # Queued sends (shared.messages.batches): the pacer shared by every process, and a hold on
    # the per-recipient key that outlives any retry of the task (a crashed attempt is resolved
    # by the next one, never by the key expiring).
    pacer: Any = None
    in_progress_ttl: float | None = None
    # Whose spend budget a recipient is charged to, when not ``scope`` (a queued send's key scope
    # is "batch:" + the caller's scope, its budget the caller's own).
    budget_scope: str | None = None


# ---- public API ---------------------------------------------------------------------------


def send_messages(
    body: Mapping[str, Any],
    *,
    idempotency_key: str | None,
    settings: Settings,
    store: StateStore,
    vonage: VonageClient,
    scope: str = "api",
    clock: Callable[[], float] = time.time,
    tenant: str | None = None,
    queue: Any = None,
) -> SendOutcome:
    """Handle the JSON body of ``POST /send``.

    Returns 202 with the result (one recipient) or ``{summary, results}`` (a list), or 200
    with the analysis for a ``dry_run``. Raises a ServiceError for a bad request (400/422),
    an idempotency conflict (409/422), and for a single recipient that was not sent: its
    Vonage error (422 invalid number, 402 no credit, 503 throttled, 5xx misconfigured...),
    ``opted_out`` (422). ``scope`` separates the keys of different callers.
    """
    from shared.messages import batches

    body, send_at = batches.pop_send_at(body, clock())
    request = parse_send_request(body, settings)
    # Checked before a dry run too: a malformed Idempotency-Key is refused whatever the body asks.
    key = idem.validate_key(idempotency_key) if idempotency_key is not None else None
    if request.dry_run:
        return SendOutcome(200, _dry_run_report(request, store, settings, clock, vonage))
    if send_at is not None or (queue is not None and request.bulk):
        # Bulk and scheduled sends go through the queue, at the account's rate across instances.
        if queue is None:
            raise ValidationError(
                "send_at needs a queue: set QUEUE_BACKEND to embedded or cloudtasks", field="send_at", code="queue_required"
            )
        _require_credentials(request.api, settings)
        status, answer = batches.submit(
            request, body, send_at=send_at, key=key, scope=scope, tenant=tenant, settings=settings, store=store, queue=queue,
            now=clock(),
        )
        return SendOutcome(status, answer)
    deliveries = _execute(
        _Run(request, settings, store, vonage, key, scope, bypass_suppression=False, clock=clock, tenant=tenant)
    )
    if not request.bulk:
        return _single_outcome(deliveries[0])
    return _bulk_outcome(request, deliveries)


def send_text(
    *,
    to: str,
    text: str,
    sender: str | None = None,
    channel: str = "sms",
    idempotency_key: str,
    settings: Settings,
    store: StateStore,
    vonage: VonageClient,
    bypass_suppression: bool = False,
) -> dict[str, Any]:
    """Send one text through exactly the send function's path; return the recipient's result.

    For replies from other functions. ``idempotency_key`` is required: derive it from the event
    being answered (e.g. ``"stop-reply:" + message_uuid``) so a redelivered webhook does not
    reply twice. ``bypass_suppression`` sends even to an opted-out number (the confirmation of
    a STOP). The result's ``status`` is ``submitted``, ``failed`` (with ``error``),
    ``opted_out``, ``in_progress`` or ``unknown``; a replayed result has ``replayed: true``.
    Raises ServiceError only for invalid input (bad number or text, 422), a misconfigured
    deployment, or an unreachable store (503).
    """
    body: dict[str, Any] = {"to": to, "text": text, "channel": channel}
    if sender is not None:
        body["from"] = sender
    request = parse_send_request(body, settings)
    key = idem.validate_key(idempotency_key)
    run = _Run(request, settings, store, vonage, key, INTERNAL_SCOPE, bypass_suppression, time.time)
    return _execute(run)[0].result


def send_one(
    request: SendRequest,
    *,
    key: str,
    scope: str,
    settings: Settings,
    store: StateStore,
    vonage: VonageClient,
    pacer: Any = None,
    in_progress_ttl: float | None = None,
    tenant: str | None = None,
    budget_scope: str | None = None,
) -> tuple[dict[str, Any], ServiceError | None]:
    """The per-recipient routine of every send, for one queued recipient (``deliver``).

    ``request`` is a single-recipient request. Returns the recipient's result (``status``:
    submitted, failed, opted_out, in_progress, unknown; ``replayed`` when the key had completed)
    and the error behind it. Raises StoreError when the store fails before anything was sent.
    """
    _require_credentials(request.api, settings)
    run = _Run(request, settings, store, vonage, key, scope, bypass_suppression=False, clock=time.time,
               pacer=pacer, in_progress_ttl=in_progress_ttl, tenant=tenant,
               budget_scope=budget_scope)
    delivery = _deliver(run, request.recipients[0])
    return delivery.result, delivery.error


def get_message(store: StateStore, message_id: str | None, *, caller: ApiCaller | None = None) -> dict[str, Any]:
    """The record of one message, by our id (``msg_...``) or by a Vonage id; 404 when unknown.

    A ``caller`` sees only its tenant's messages (an admin sees all): another tenant's id
    answers 404 exactly like an unknown one.
    """
    if not message_id:
        raise NotFoundError("give a message id: GET /send/<id> or /send?id=<id>", code="not_found")
    if not _MESSAGE_ID.fullmatch(message_id):
        index = store.get(MESSAGE_IDS, message_id) if _VONAGE_ID.fullmatch(message_id) else None
        if not index:
            raise NotFoundError("no message with this id")
        message_id = str(index.get("message_id"))
    record = store.get(MESSAGES, message_id)
    if record is None or not can_see(record.get("tenant"), caller):
        raise NotFoundError("no message with this id")
    return record


def caller_scope(token: str | None) -> str:
    """The idempotency scope of a caller: a digest of its bearer token (never the token)."""
    import hashlib

    if not token:
        return "api"
    return "api:" + hashlib.sha256(token.encode()).hexdigest()[:16]


# ---- the run -------------------------------------------------------------------------------


def _execute(run: _Run) -> list[_Delivery]:
    request, settings = run.request, run.settings
    _require_credentials(request.api, settings)
    request_claim = None
    if run.key is not None:
        # Guards the whole request: a different body under this key is refused, and a duplicate
        # arriving while this one runs gets 409. It is released at the end: per-recipient keys
        # carry the results, so a retry replays what was sent and sends only what was not.
        sendable = sum(1 for r in request.recipients if r.error is None and r.duplicate_of is None)
        # A bulk send at the paced rate takes about sendable / rate seconds (plus latency).
        hold = settings.idempotency_in_progress_ttl + 1.5 * sendable / settings.max_rps
        request_claim = idem.claim(
            run.store,
            idem.store_key(run.scope, run.key),
            request.fingerprint,
            in_progress_ttl=hold,
            clock=run.clock,
        )
    deliveries: list[_Delivery] = []
    try:
        if request.bulk:
            deliveries = run_bounded(lambda r: _deliver_safely(run, r), request.recipients, workers=BULK_WORKERS)
        else:
            deliveries = [_deliver(run, request.recipients[0])]
    finally:
        if request_claim is not None and request_claim.acquired:
            try:
                if any(_may_have_gone_out(d) for d in deliveries):
                    idem.release(run.store, request_claim, ttl=settings.idempotency_ttl, clock=run.clock)
                else:
                    idem.forget(run.store, request_claim)  # nothing went out: keep no row
            except StoreError:
                log.error("could not release the request idempotency key; it expires on its own")
    if request.bulk:
        log.info("bulk send finished", extra={"summary": _summary(deliveries), "channel": request.channel, "api": request.api})
    return deliveries


def _may_have_gone_out(delivery: _Delivery) -> bool:
    """True unless this recipient certainly cost nothing (refused before or by Vonage)."""
    result = delivery.result
    if result.get("replayed") or result.get("status") in (SUBMITTED, UNKNOWN, IN_PROGRESS):
        return True
    return bool(result.get("vonage_ids"))  # a partially sent SMS


def _deliver_safely(run: _Run, recipient: Recipient) -> _Delivery:
    """_deliver for one entry of a bulk send: no exception may lose the other entries' results."""
    try:
        return _deliver(run, recipient)
    except ServiceError as exc:
        # A store error fails only this recipient (nothing was sent: the claim and the record come
        # first). Stopping the whole list on one transient error let a flaky store starve a bulk
        # send: every retry stopped again after a few recipients (issue 16's flaky chaos run).
        if _is_fatal(exc):
            _stop(run, exc)
        return _Delivery(_base(run.request, recipient) | {"status": FAILED, "error": exc.as_record()}, exc)
    except Exception:
        log.exception("unexpected error sending one message of a bulk send")
        error = ServiceError("internal error while sending to this recipient; its outcome is unknown")
        return _Delivery(_base(run.request, recipient) | {"status": UNKNOWN, "error": error.as_record()}, error)


def _deliver(run: _Run, recipient: Recipient) -> _Delivery:
    request, settings, store = run.request, run.settings, run.store
    base = _base(request, recipient)
    if recipient.error is not None:
        return _Delivery(base | {"status": FAILED, "error": recipient.error.as_record()}, recipient.error)
    if recipient.duplicate_of is not None:
        return _Delivery(base | {"status": SKIPPED_DUPLICATE, "duplicate_of": recipient.duplicate_of})
    if run.abort.is_set():
        return _not_attempted(run, base)
    address = recipient.address
    assert address is not None
    key = idem.store_key(run.scope, idem.derive_key(run.key, address)) if run.key is not None else None
    try:
        plan = plan_items(request, address, store=store, settings=settings, clock=run.clock)
    except StoreError:
        raise
    except ServiceError as exc:
        return _refused_before_claim(run, base, key, address, exc)
    first = plan.items[0]
    if request.is_workflow:
        base.update(channel=first.channel, message_type=first.content.kind, **{"from": first.sender})
        base["items"] = [item.summary() for item in plan.items]
        if plan.skipped:
            base["skipped_items"] = [dict(s) for s in plan.skipped]
    message_id = new_message_id()
    analysis = first.analysis
    record = _with_tenant(run.tenant, new_message_record(
        message_id,
        channel=first.channel,
        api=request.api,
        to=address,
        sender=first.sender,
        client_ref=request.client_ref,
        encoding=analysis.encoding if analysis else None,
        segments=analysis.segments if analysis else None,
        message_type=first.content.kind,
        idempotency_key=run.key,
        now=run.clock(),
        # One item left (the others skipped) is a plain message: Vonage gives it no workflow.
        extra=_record_extra(plan.items, workflow=len(plan.items) > 1),
    ))
    # Everything before the call in ONE store transaction, in this order, all or none (a refusal
    # writes nothing: no key, no budget, no record): the recipient's idempotency key (a completed
    # key replays, a held one answers "in progress"), the suppression list (one opt-out stops the
    # whole workflow, on every channel, docs/failover.md), the caller's and the deployment's send
    # budgets (this recipient's message and SMS parts; the last check before money is spent), the
    # message record, ``pending``.
    claim = None
    charges: list[Charge] = []
    if key is not None:
        claim, claiming = idem.claim_charge(key, request.fingerprint, clock=run.clock,
                                            in_progress_ttl=run.in_progress_ttl or settings.idempotency_in_progress_ttl)
        charges.append(claiming)
    if not run.bypass_suppression:
        charges.append(not_suppressed(address))
    charges += send_charges(settings, scope=run.budget_scope or run.scope,
                            parts=_parts(item.analysis for item in plan.items), now=run.clock())
    charges.append(Charge(MESSAGES, message_id, lambda doc: dict(record) if doc is None else None, lambda doc: None))
    try:
        store.hit_many([], then=charges)
    except idem.KeyAlreadyUsed as exc:
        return _Delivery({**(exc.claim.result or {}), "replayed": True})
    except idem.IdempotencyInProgressError as exc:
        return _Delivery(base | {"status": IN_PROGRESS, "error": exc.as_record()}, exc)
    except idem.IdempotencyKeyReusedError:
        raise
    except StoreError:
        _release(run, claim)
        raise
    except BudgetExhaustedError as exc:
        # A store without a multi-document transaction took the key before the refusal: drop it.
        _release(run, claim)
        _stop(run, exc)
        return _Delivery(base | {"status": FAILED, "error": exc.as_record()}, exc)
    except ServiceError as exc:
        if exc.code != "opted_out":
            raise
        _release(run, claim)
        return _Delivery(base | {"status": OPTED_OUT, "error": exc.as_record()}, exc)
    base["id"] = message_id

    try:
        # A single send relies on the client's retries and answers 503 + Retry-After; a bulk send
        # also backs the whole process off and tries a throttled recipient again.
        retries = THROTTLE_RETRIES if request.bulk else 0
        pacer = run.pacer if run.pacer is not None else get_pacer(settings.max_rps)
        submission = paced_call(pacer, lambda: _submit(run, recipient, plan), retries=retries)
    except ServiceError as exc:
        return _refused(run, base, claim, exc)
    return _accepted(run, base, claim, submission)


def _refused_before_claim(run: _Run, base: dict[str, Any], key: str | None, address: str,
                          exc: ServiceError) -> _Delivery:
    """No item of the plan can reach ``address`` (a closed WhatsApp window): nothing is claimed or
    written, and the answer is what it was when the claim and the opt-out came first: a completed
    key replays, a held key is "in progress", an opted-out number is ``opted_out``."""
    if key is not None:
        try:
            held = idem.held(run.store, key, run.request.fingerprint, clock=run.clock)
        except idem.IdempotencyInProgressError as busy:
            return _Delivery(base | {"status": IN_PROGRESS, "error": busy.as_record()}, busy)
        if held is not None:
            return _Delivery({**(held.result or {}), "replayed": True})
    if not run.bypass_suppression and is_suppressed(run.store, address):
        opted = opted_out_error(address)
        return _Delivery(base | {"status": OPTED_OUT, "error": opted.as_record()}, opted)
    return _Delivery(base | {"status": FAILED, "error": exc.as_record()}, exc)


def _with_tenant(tenant: str | None, record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "tenant": tenant} if tenant is not None else record


def _parts(analyses: Iterable[TextAnalysis | None]) -> int:
    """What one recipient can cost in SMS parts: a workflow delivers one of its items, so its
    dearest counts (a non-SMS item counts as one message)."""
    return max((analysis.segments if analysis is not None else 1) for analysis in analyses)


def _submit(run: _Run, recipient: Recipient, plan: Plan) -> SmsSubmission | MessageSubmission:
    """ONE call to Vonage for the recipient, failover items included (one request, one workflow)."""
    if run.request.api == "sms":
        return run.vonage.send_sms(**sms_api_arguments(run.request, recipient))
    return run.vonage.send_message(messages_api_body(run.request, recipient, plan.items))


def _accepted(run: _Run, base: dict[str, Any], claim: idem.Claim | None, submission: Any) -> _Delivery:
    """Vonage took the message (or some SMS parts of it): record the ids, complete the key."""
    from shared.vonage.client import SmsSubmission

    store, message_id = run.store, base["id"]
    result = dict(base)
    error: ServiceError | None = None
    remaining_balance: str | None = None
    if isinstance(submission, SmsSubmission):
        remaining_balance = submission.remaining_balance
        note_remaining_balance(remaining_balance, run.settings)
        accepted = [part for part in submission.parts if part.status == "0" and part.message_id]
        parts = [
            {k: v for k, v in {"vonage_id": p.message_id, "price": p.price, "network": p.network}.items() if v is not None}
            for p in accepted
        ]
        price = _sum_prices(p.price for p in accepted)
        currency = "EUR" if price is not None else None  # the SMS API prices in euros (vonage-api.md 1.4)
        result.update(status=SUBMITTED, vonage_ids=[p["vonage_id"] for p in parts], price=price, currency=currency)
        if submission.failed_parts:
            # Part of a long SMS went out and part did not: the text arrives cut. Sending it again
            # would repeat the delivered parts, so the key completes with this result.
            failures = [
                {"part": i + 1, "vonage_code": p.status, "vonage_message": p.error_text}
                for i, p in enumerate(submission.parts)
                if p.status != "0"
            ]
            error = ServiceError(
                f"Vonage accepted {len(accepted)} of the {len(submission.parts)} parts of this SMS; "
                "the recipient gets an incomplete text",
                code="partially_sent",
                status=502,
                details={"id": message_id, "failed_parts": failures, "vonage_ids": result["vonage_ids"]},
            )
            result.update(status=FAILED, error=error.as_record())
    else:
        parts = [{"vonage_id": submission.message_uuid}]
        price = currency = None
        result.update(status=SUBMITTED, message_uuid=submission.message_uuid, vonage_ids=[submission.message_uuid])
        if submission.workflow_id:
            result["workflow_id"] = submission.workflow_id
    workflow_id = result.get("workflow_id")
    # The key's completion travels in the record's acceptance write (one transaction); when that
    # write fails it is completed on its own below, as before.
    completion = idem.completion(claim, result, ttl=run.settings.idempotency_ttl, clock=run.clock) if claim else None
    completed = False
    try:
        _after_send(lambda: attach_vonage_ids(store, message_id, parts, price=price, currency=currency,
                                              remaining_balance=remaining_balance, now=run.clock(),
                                              workflow_id=workflow_id, also=completion))
        completed = completion is not None
        if error is not None:
            _after_send(lambda: _note_error(store, message_id, result["error"]))
    except StoreError:
        # Sent, but the record could not be updated: say so; receipts will be parked and merged later.
        log.error("message sent but its record could not be updated", extra={"message_id": message_id})
        result["warning"] = "sent, but the message record could not be updated (state store unavailable)"
    if claim is not None and not completed:
        try:
            _after_send(lambda: idem.complete(store, claim, result, ttl=run.settings.idempotency_ttl, clock=run.clock))
        except StoreError:
            log.error("message sent but its idempotency key could not be completed; it expires on its own",
                      extra={"message_id": message_id})
    log.info(
        "message submitted" if error is None else "message partially submitted",
        extra={
            "message_id": message_id,
            "to": result.get("to"),
            "channel": run.request.channel,
            "api": run.request.api,
            "segments": result.get("segments"),
            "parts": len(parts),
        },
    )
    return _Delivery(result, error)


def _refused(run: _Run, base: dict[str, Any], claim: idem.Claim | None, exc: ServiceError) -> _Delivery:
    """Vonage did not take the message (or we cannot tell)."""
    store, message_id = run.store, base["id"]
    exc.details.setdefault("id", message_id)
    if _outcome_unknown(exc):
        error = exc.as_record() | {"outcome": "unknown"}
        try:
            _note_error(store, message_id, error)
            if claim is not None:
                idem.mark_unknown(store, claim)
        except StoreError:
            log.error("could not note an unknown send outcome", extra={"message_id": message_id})
        log.warning("message outcome unknown", extra={"message_id": message_id, "to": base.get("to"), "error_code": exc.code})
        return _Delivery(base | {"status": UNKNOWN, "error": error}, exc)
    try:
        mark_failed(
            store, message_id, code=exc.code, message=exc.message, vonage_code=getattr(exc, "vonage_code", None), now=run.clock()
        )
    except StoreError:
        log.error("could not mark a refused message failed", extra={"message_id": message_id})
    _release(run, claim)
    if _is_fatal(exc):
        _stop(run, exc)
    log.info("message refused", extra={"message_id": message_id, "to": base.get("to"), "error_code": exc.code})
    return _Delivery(base | {"status": FAILED, "error": exc.as_record()}, exc)


def _after_send(write: Callable[[], Any]) -> Any:
    """A store write recording a send that already went out, retried through brief store failures.

    The caller cannot retry a send that succeeded (it would go out twice), so these writes must
    not give up at the first transient error: an idempotency key left "in progress" expires and
    a retry of the same request (a bulk list whose other recipients failed) sends again, and
    Vonage ids never stored leave the message ``pending`` with its receipts parked for good.
    """
    for delay in AFTER_SEND_RETRY_DELAYS:
        try:
            return write()
        except StoreError:
            time.sleep(delay)
    return write()


def _release(run: _Run, claim: idem.Claim | None) -> None:
    """Nothing went out for this recipient: drop its key, so a refused send keeps no row."""
    if claim is None:
        return
    try:
        idem.forget(run.store, claim)
    except StoreError:
        log.error("could not release an idempotency key; it expires on its own")


def _stop(run: _Run, exc: ServiceError) -> None:
    if not run.abort.is_set():
        run.abort_error.append(exc)
        run.abort.set()
        log.error("bulk send stopped", extra={"error_code": exc.code})


def _not_attempted(run: _Run, base: dict[str, Any]) -> _Delivery:
    cause = run.abort_error[0] if run.abort_error else None
    error = ServiceError(
        "not sent: the send stopped after an account-level error"
        + (f" ({cause.code}: {cause.message})" if cause else "")
        + "; retry with the same Idempotency-Key once it is fixed",
        code="not_attempted",
        status=cause.status if cause else 503,
    )
    return _Delivery(base | {"status": NOT_ATTEMPTED, "error": error.as_record()}, cause or error)


def _note_error(store: StateStore, message_id: str, error: Mapping[str, Any]) -> None:
    """Put ``error`` on a record without changing its status (partial sends, unknown outcomes)."""

    def note(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None:
            return None
        doc["error"] = dict(error)
        return doc

    store.update(MESSAGES, message_id, note)


def _record_extra(items: tuple[MessageItem, ...], *, workflow: bool) -> dict[str, Any]:
    """Fields a record carries beyond the basics: a workflow's items, what an interactive message offered."""
    extra: dict[str, Any] = {}
    for item in items:
        if item.content.kind == "interactive" and item.content.obj:
            # An inbound reply names only the option's id; this says whether it was a button or a list row.
            extra["interactive_type"] = item.content.obj.get("type")
            break
    if workflow:
        extra["workflow_id"] = None
        extra["delivered_item"] = None
        extra["items"] = [
            {**item.summary(), "index": number, "status": "pending", "history": []}
            for number, item in enumerate(items, start=1)
        ]
    return extra


# ---- classification ---------------------------------------------------------------------------


def _outcome_unknown(exc: ServiceError) -> bool:
    """True when the request may have reached Vonage and been acted on.

    ``VonageClient`` marks those errors ``details["outcome"] == "unknown"`` (a read timeout, a
    connection dropped mid-request, a 5xx answer). Older errors are told by the chained
    transport error: a connect failure never left this machine.
    """
    if not isinstance(exc, (VonageTimeoutError, VonageUnavailableError)):
        return False
    if exc.details.get("outcome") == "unknown":
        return True
    cause = exc.__cause__
    if cause is None:
        return False
    import httpx

    return not isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _is_fatal(exc: ServiceError) -> bool:
    return isinstance(exc, ConfigError) or exc.code in FATAL_CODES


def _require_credentials(api: str, settings: Settings) -> None:
    """Fail before anything is stored when the deployment cannot reach the chosen API."""
    if api == "sms":
        settings.require_key_secret()
    elif not (settings.has_application or settings.has_key_secret):
        raise ConfigError(
            "the Messages API needs VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY (or VONAGE_API_KEY and VONAGE_API_SECRET)"
        )


# ---- answers ----------------------------------------------------------------------------------


def _base(request: SendRequest, recipient: Recipient) -> dict[str, Any]:
    base: dict[str, Any] = {"to": recipient.address if recipient.address is not None else recipient.raw}
    if request.bulk:
        base["index"] = recipient.index
    base.update(channel=request.channel, api=request.api, **{"from": request.sender}, message_type=request.content.kind)
    if request.analysis is not None:
        base.update(encoding=request.analysis.encoding, segments=request.analysis.segments)
        if request.analysis.is_unicode:
            # Why this text costs UCS-2 parts: the characters that forced it, and where.
            base["unicode_characters"] = [dict(c) for c in request.analysis.unicode_characters]
    if request.client_ref is not None:
        base["client_ref"] = request.client_ref
    return base



def _single_outcome(delivery: _Delivery) -> SendOutcome:
    result = delivery.result
    replayed = bool(result.get("replayed"))
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    if result.get("status") == SUBMITTED:
        return SendOutcome(202, result, headers)
    if delivery.error is not None:
        raise delivery.error
    # A replayed failure (a partially sent SMS): rebuild its error from the stored result.
    error = result.get("error") or {}
    raise ServiceError(
        str(error.get("message") or "the message was not sent"),
        code=str(error.get("code") or "send_failed"),
        status=int(error.get("http_status") or 502),
        details={**(error.get("details") or {}), "replayed": True},
    )


def _summary(deliveries: list[_Delivery]) -> dict[str, int]:
    summary = dict.fromkeys(_SUMMARY_FIELDS, 0)
    for delivery in deliveries:
        summary["total"] += 1
        summary[_SUMMARY_KEY.get(delivery.result.get("status", FAILED), "failed")] += 1
        if delivery.result.get("replayed"):
            summary["replayed"] += 1
    return summary


def _bulk_outcome(request: SendRequest, deliveries: list[_Delivery]) -> SendOutcome:
    summary = _summary(deliveries)
    fatal = next((d.error for d in deliveries if d.error is not None and _is_fatal(d.error)), None)
    if fatal is not None and summary["sent"] == 0 and summary["unknown"] == 0:
        # Nothing went out because of the account or the deployment: that is the answer.
        fatal.details["summary"] = summary
        raise fatal
    # Fields every entry shares are given once, at the top.
    common = {k: v for k, v in _base(request, request.recipients[0]).items() if k in _COMMON_FIELDS}
    results = [
        {"index": index, **{k: v for k, v in delivery.result.items() if k not in _COMMON_FIELDS and k != "index"}}
        for index, delivery in enumerate(deliveries)
    ]
    return SendOutcome(202, {"summary": summary, **common, "results": results})


def _dry_run_report(
    request: SendRequest,
    store: StateStore,
    settings: Settings,
    clock: Callable[[], float],
    vonage: VonageClient | None = None,
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "dry_run": True,
        "channel": request.channel,
        "api": request.api,
        "from": request.sender,
        "message_type": request.content.kind,
    }
    if request.analysis is not None:
        report.update(request.analysis.to_dict())
        report["max_segments"] = request.max_segments
        report["within_limit"] = request.analysis.segments <= request.max_segments
    entries = []
    for recipient in request.recipients:
        entry: dict[str, Any] = {"to": recipient.address if recipient.address is not None else recipient.raw}
        if request.bulk:
            entry["index"] = recipient.index
        if recipient.error is not None:
            entry.update(status=FAILED, error=recipient.error.as_record())
        elif recipient.duplicate_of is not None:
            entry.update(status=SKIPPED_DUPLICATE, duplicate_of=recipient.duplicate_of)
        elif recipient.address is not None and is_suppressed(store, recipient.address):
            entry["status"] = OPTED_OUT
        elif request.is_workflow and recipient.address is not None:
            # The items this recipient would get now (the WhatsApp window is read, nothing is sent).
            try:
                plan = plan_items(request, recipient.address, store=store, settings=settings, clock=clock)
            except ServiceError as exc:
                entry.update(status=FAILED, error=exc.as_record())
            else:
                entry.update(status="would_send", items=[item.summary() for item in plan.items])
                if plan.skipped:
                    entry["skipped_items"] = [dict(s) for s in plan.skipped]
        else:
            entry["status"] = "would_send"
        entries.append(entry)
    if vonage is not None and request.channel == "sms":
        _add_price_estimates(report, entries, request, vonage)
    if request.bulk:
        report["results"] = entries
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        report["summary"] = {"total": len(entries), **counts}
    else:
        report.update(entries[0])
    return report


def _add_price_estimates(report: dict[str, Any], entries: list[dict[str, Any]], request: SendRequest,
                         vonage: VonageClient) -> None:
    """Price each ``would_send`` entry from the pricing API (per SMS part x parts), and the total."""
    from shared.phone import parse_phone

    countries: dict[int, str] = {}
    for index, entry in enumerate(entries):
        if entry.get("status") == "would_send":
            try:
                countries[index] = parse_phone(entry["to"]).region
            except ServiceError:
                continue
    if not countries:
        return
    prices = estimate_prices(vonage, countries.values())
    parts = _parts([request.analysis])
    total, complete = Decimal(0), True
    for index, country in countries.items():
        price = prices.get(country)
        if price is None:
            entries[index]["estimated_price"] = None
            complete = False
            continue
        entries[index]["estimated_price"] = format(price * parts, "f")
        total += price * parts
    report["estimated_total"] = format(total, "f")
    report["estimated_currency"] = "EUR"
    report["estimate_complete"] = complete  # false when a country's price could not be read


def _sum_prices(prices: Any) -> str | None:
    total, seen = Decimal(0), False
    for price in prices:
        if price is None:
            continue
        try:
            total += Decimal(str(price))
            seen = True
        except InvalidOperation:
            continue
    return format(total, "f") if seen else None
