"""Start, check and cancel verifications: the logic behind the three verify functions.

One flow for both Vonage APIs (``VERIFY_API``: ``v2`` by default, ``legacy`` for the
``/verify/json`` flow of the original guide); only the wire calls differ.

- start: validate, run the fraud guard (before Vonage: a refused start costs nothing),
  start at Vonage, store a ``pending`` record. A number that already has a verification
  in flight (v2 409, legacy status 10) gets that request back (``reused: true``) with its
  attempts still counted, unless our record of it is finished (then 409).
- check: count the attempt in our record *before* calling Vonage, so a brute force is cut
  off by our own cap (``VERIFY_MAX_ATTEMPTS``) whatever Vonage allows; a request we did
  not start, or that is finished or expired here, never reaches Vonage.
- cancel: refused by us in the first 30 seconds (Vonage would refuse it too) and explained
  when Vonage refuses it after the second event.

The code is passed to Vonage and nowhere else: not into a record, a log line or an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from shared.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    RecordExistsError,
    ServiceError,
    VonageAPIError,
    VonageError,
)
from shared.log import get_logger
from shared.budget import verify_start_charges
from shared.tenants import ApiCaller, can_see
from shared.verify.captcha import require_human
from shared.verify.fraud import FraudGuard, FraudLimits, prefix_of
from shared.verify.inputs import LEGACY_WORKFLOWS, StartRequest, parse_check, parse_request_id, parse_start
from shared.verify.records import (
    RETENTION,
    VerificationRecord,
    VerificationStatus,
    load_record,
    save_record,
    store_clock,
    update_record,
)

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.store.base import StateStore
    from shared.vonage.client import VonageClient

__all__ = [
    "CANCEL_MIN_AGE",
    "CANCEL_RULE",
    "cancel_verification",
    "check_code",
    "next_workflow",
    "start_verification",
]

log = get_logger("shared.verify")

Clock = Callable[[], float]

# Vonage refuses a cancel in the first 30 s and after the second event (vonage-api.md 8.5, 9.3).
CANCEL_MIN_AGE = 30.0
CANCEL_RULE = (
    "Vonage only lets a verification be cancelled from 30 seconds after it started until its second "
    "message or call goes out; outside that window let it expire instead."
)


# ---- start -------------------------------------------------------------------


def start_verification(
    body: Mapping[str, Any],
    *,
    settings: Settings,
    store: StateStore,
    vonage: VonageClient,
    ip: str,
    trusted_caller: bool = False,
    clock: Clock | None = None,
    caller: ApiCaller | None = None,
) -> dict[str, Any]:
    """Start (or reuse) a verification; returns ``{request_id, status: "pending", channels, ...}``.

    ``ip`` is the connection's client address. A ``trusted_caller`` (one that presented a
    bearer token) may name the end user's address in ``client_ip``; public callers may not,
    or they could dodge the per-IP limit. Raises ValidationError (422), ForbiddenError (403)
    or RateLimitedError (429) before Vonage is called, ConflictError (409) when the number
    has a verification in flight that is finished here, and VonageError for Vonage refusals.
    """
    start = parse_start(body, settings, trusted=trusted_caller)
    caller_ip = start.client_ip if (trusted_caller and start.client_ip) else ip
    if settings.verify_public and not trusted_caller:
        require_human(start.captcha_token, settings, ip=caller_ip)
    limits = FraudLimits.from_settings(settings)
    api = settings.verify_api
    now_fn = clock or store_clock(store)
    # The spend budgets ride in the fraud counters' one transaction (issue 18: round trips).
    budgets = verify_start_charges(settings, start.phone, prefix=prefix_of(start.phone, limits.prefix_drop_digits),
                                   now=now_fn())
    FraudGuard(store, limits).check(start.phone, ip=caller_ip, then=budgets)
    reused = False
    check_url: str | None = None
    try:
        request_id, check_url = _vonage_start(vonage, api, start, settings)
    except VonageAPIError as exc:
        request_id = _in_flight_request_id(exc)
        if request_id is None:
            raise
        reused = True
    now = now_fn()
    fresh = VerificationRecord.pending(
        request_id,
        api=api,
        phone=start.phone.e164,
        channels=start.channels,
        max_attempts=settings.verify_max_attempts,
        ttl=settings.verify_ttl,
        now=now,
        client_ref=start.client_ref,
        tenant=caller.name if caller is not None else None,
    )
    record = _reuse(store, fresh, settings, now) if reused else _save_new(store, fresh, settings, now)
    log.info(
        "verification started",
        extra={
            "request_id": request_id,
            "api": api,
            "phone": start.phone.e164,  # masked by the log formatter
            "channels": list(record.channels),
            "reused": reused,
        },
    )
    answer = {
        "request_id": request_id,
        "status": VerificationStatus.PENDING.value,
        "channels": list(record.channels),
        "reused": reused,
        "attempts_remaining": record.attempts_remaining,
        "expires_at": record.public(now)["expires_at"],
    }
    if check_url is not None:
        # Silent authentication: the user's device must open this URL over its mobile data; the
        # answer it gets holds the code to check with verify-check.
        answer["check_url"] = check_url
    return answer


def _save_new(store: StateStore, record: VerificationRecord, settings: Settings, now: float) -> VerificationRecord:
    try:
        save_record(store, record, now=now)
    except RecordExistsError:
        # Vonage never hands out an id twice; a stored one means a retried start raced us.
        return _reuse(store, record, settings, now)
    return record


def _reuse(store: StateStore, fresh: VerificationRecord, settings: Settings, now: float) -> VerificationRecord:
    """The in-flight request Vonage named, keeping its attempts; 409 if it is finished here."""

    def keep_open(record: VerificationRecord) -> VerificationRecord | None:
        if record.status is VerificationStatus.PENDING and record.expires_at <= now:
            # Still in flight at Vonage though past our expiry: extend it rather than lock the
            # number out, but keep every attempt already counted.
            return replace(record, expires_at=now + settings.verify_ttl, updated_at=now)
        return None

    record = update_record(store, fresh.request_id, keep_open, ttl=settings.verify_ttl + RETENTION)
    if record is None:
        try:  # started outside this store (or the store lost it): track it from now on
            save_record(store, fresh, now=now)
            return fresh
        except RecordExistsError:
            record = load_record(store, fresh.request_id)
            if record is None:  # pragma: no cover - created and expired within one call
                raise
    if record.status_at(now).is_final:
        raise ConflictError(
            "a verification to this number is still open at Vonage but has ended here "
            f"({record.status_at(now).value}); try again once it expires",
            code="verification_in_flight",
            details={"request_id": record.request_id, "status": record.status_at(now).value},
            retry_after=60.0,
        )
    return record


def _in_flight_request_id(exc: VonageAPIError) -> str | None:
    """The request id Vonage returns with "a verification to this number is in flight"."""
    if exc.code != "verification_in_flight":
        return None
    body = exc.body if isinstance(exc.body, Mapping) else {}
    request_id = body.get("request_id")
    if isinstance(request_id, str) and request_id.strip():
        return request_id.strip()
    return None


# ---- check -------------------------------------------------------------------


def check_code(
    body: Mapping[str, Any],
    *,
    settings: Settings,
    store: StateStore,
    vonage: VonageClient,
    clock: Clock | None = None,
    caller: ApiCaller | None = None,
) -> dict[str, Any]:
    """Check a code; returns ``{request_id, status: "verified"}``.

    A token ``caller`` checks only its tenant's verifications (another tenant's is 404).

    Raises (stable codes): 400 ``wrong_code`` with ``attempts_remaining``; 410
    ``too_many_attempts`` (the request is finished); 404 ``verification_not_found``; 410
    ``verification_expired`` / ``verification_cancelled`` / ``verification_failed``; 409
    ``already_verified``; 422 for a malformed body.
    """
    check = parse_check(body, legacy=settings.verify_api == "legacy")
    now_fn = clock or store_clock(store)
    now = now_fn()
    reserved: list[bool] = []  # fn may run more than once: the last run is the one that committed

    foreign: list[bool] = []

    def reserve(record: VerificationRecord) -> VerificationRecord | None:
        reserved.clear()
        foreign.clear()
        if not can_see(record.tenant, caller):
            foreign.append(True)  # counts nothing: another tenant's verification is not there for us
            return None
        status = record.status_at(now)
        if status.is_final:
            # Write a derived expiry down; anything else final stays as it is.
            return record.finish(status, now=now, reason="expired") if record.status is not status else None
        if record.attempts >= record.max_attempts:
            # Every attempt is used (the last may still be at Vonage: its answer finishes the record).
            return None
        reserved.append(True)
        return record.with_attempt(now=now)

    record = update_record(store, check.request_id, reserve)
    if record is None or foreign:
        raise NotFoundError(
            "there is no verification with this request_id (it was never started here, or it is long gone)",
            code="verification_not_found",
        )
    if not reserved:
        log.info("code check refused", extra={"request_id": record.request_id, "reason": record.status_at(now).value})
        raise _finished_error(record) if record.status.is_final else _too_many_attempts(record)
    try:
        _vonage_check(vonage, record.api, check.request_id, check.code)
    except VonageAPIError as exc:
        raise _check_failed(store, record, exc, now_fn) from exc
    except VonageError:
        # Outcome unknown (timeout, outage): the attempt stays counted, the safe side against
        # guessing; if it was the last one the verification ends here.
        if record.attempts >= record.max_attempts:
            _finish(store, record.request_id, VerificationStatus.FAILED, "too_many_attempts", now_fn)
        raise
    verified = update_record(
        store, record.request_id, lambda r: r.finish(VerificationStatus.VERIFIED, now=now_fn(), reason="code_checked")
    )
    log.info("verification verified", extra={"request_id": record.request_id, "attempts": record.attempts})
    if verified is not None and verified.status is not VerificationStatus.VERIFIED:
        # A callback finished it first (e.g. Vonage's summary); Vonage accepted the code all the same.
        log.warning("record was finished before the check completed", extra={"request_id": record.request_id})
    return {"request_id": record.request_id, "status": VerificationStatus.VERIFIED.value}


def _check_failed(store: StateStore, record: VerificationRecord, exc: VonageAPIError, now_fn: Clock) -> ServiceError:
    """What a Vonage refusal of a check means for our record and for the caller."""
    request_id = record.request_id
    if exc.code == "wrong_code":
        if record.attempts >= record.max_attempts:
            ended = _finish(store, request_id, VerificationStatus.FAILED, "too_many_attempts", now_fn)
            log.info("code check wrong, no attempts left", extra={"request_id": request_id})
            return _finished_error(ended or record)
        log.info("code check wrong", extra={"request_id": request_id, "attempts_remaining": record.attempts_remaining})
        return BadRequestError(
            "the code is not correct",
            code="wrong_code",
            status=400,
            details={"attempts_remaining": record.attempts_remaining, **_vonage_details(exc)},
        )
    if exc.code == "too_many_attempts":
        ended = _finish(store, request_id, VerificationStatus.FAILED, "too_many_attempts", now_fn)
        log.info("code check wrong, Vonage ended the request", extra={"request_id": request_id})
        return _finished_error(ended or record, exc)
    if exc.code == "verification_not_found":
        # Vonage's "not found" also means "already verified" (vonage-api.md 9.3): a concurrent
        # check may have won. Otherwise the request ended at Vonage (expired) before ours did.
        current = load_record(store, request_id)
        if current is not None and current.status is VerificationStatus.VERIFIED:
            return _finished_error(current, exc)
        ended = _finish(store, request_id, VerificationStatus.EXPIRED, "ended_at_vonage", now_fn)
        log.info("code check for a request Vonage no longer has", extra={"request_id": request_id})
        return _finished_error(ended or record, exc)
    return exc


def _finished_error(record: VerificationRecord, cause: VonageAPIError | None = None) -> ServiceError:
    """The stable error for a check on a finished verification."""
    details: dict[str, Any] = {"request_id": record.request_id, "status": record.status.value}
    if cause is not None:
        details.update(_vonage_details(cause))
    status = record.status
    if status is VerificationStatus.VERIFIED:
        return ConflictError("this verification is already complete", code="already_verified", details=details)
    if status is VerificationStatus.FAILED and record.reason == "too_many_attempts":
        return _too_many_attempts(record, details)
    if status is VerificationStatus.CANCELLED:
        return NotFoundError("this verification was cancelled; start a new one", code="verification_cancelled", status=410, details=details)
    if status is VerificationStatus.EXPIRED:
        return NotFoundError("this verification has expired; start a new one", code="verification_expired", status=410, details=details)
    return NotFoundError("this verification has failed; start a new one", code="verification_failed", status=410, details=details)


def _too_many_attempts(record: VerificationRecord, details: dict[str, Any] | None = None) -> ServiceError:
    return NotFoundError(
        "a wrong code was entered too many times, so this verification has ended; start a new one",
        code="too_many_attempts",
        status=410,
        details=details or {"request_id": record.request_id, "status": VerificationStatus.FAILED.value},
    )


# ---- cancel ------------------------------------------------------------------


def cancel_verification(
    request_id: Any,
    *,
    settings: Settings,
    store: StateStore,
    vonage: VonageClient,
    clock: Clock | None = None,
    caller: ApiCaller | None = None,
) -> dict[str, Any]:
    """Cancel an in-flight verification; returns ``{request_id, status: "cancelled"}``.

    Cancelling a cancelled verification answers the same (idempotent). Raises 404
    ``verification_not_found``, 409 ``verification_finished`` for one that ended otherwise,
    and 409 ``cancel_not_allowed`` (with ``Retry-After`` in the first 30 seconds) explaining
    Vonage's rule.
    """
    request_id = parse_request_id(request_id)
    now_fn = clock or store_clock(store)
    now = now_fn()
    record = load_record(store, request_id)
    if record is None or not can_see(record.tenant, caller):
        raise NotFoundError("there is no verification with this request_id", code="verification_not_found")
    status = record.status_at(now)
    if status is VerificationStatus.CANCELLED:
        return {"request_id": request_id, "status": status.value}
    if status.is_final:
        raise ConflictError(
            f"this verification has already ended ({status.value}); there is nothing to cancel",
            code="verification_finished",
            details={"request_id": request_id, "status": status.value},
        )
    age = now - record.created_at
    if age < CANCEL_MIN_AGE:
        raise ConflictError(
            f"too early to cancel: {CANCEL_RULE}",
            code="cancel_not_allowed",
            details={"request_id": request_id, "retry_after": round(CANCEL_MIN_AGE - age, 1)},
            retry_after=CANCEL_MIN_AGE - age,
        )
    try:
        _vonage_cancel(vonage, record.api, request_id)
    except VonageAPIError as exc:
        if exc.code == "cancel_not_allowed":
            raise ConflictError(
                f"Vonage refused the cancel: {CANCEL_RULE}",
                code="cancel_not_allowed",
                details={"request_id": request_id, **_vonage_details(exc)},
            ) from exc
        if exc.code == "verification_not_found":
            ended = _finish(store, request_id, VerificationStatus.EXPIRED, "ended_at_vonage", now_fn)
            raise ConflictError(
                "this verification has already ended at Vonage; there is nothing to cancel",
                code="verification_finished",
                details={"request_id": request_id, "status": (ended or record).status.value, **_vonage_details(exc)},
            ) from exc
        raise
    ended = _finish(store, request_id, VerificationStatus.CANCELLED, "cancelled", now_fn)
    log.info("verification cancelled", extra={"request_id": request_id})
    return {"request_id": request_id, "status": (ended.status if ended else VerificationStatus.CANCELLED).value}


# ---- next workflow -------------------------------------------------------------


def next_workflow(
    request_id: Any,
    *,
    settings: Settings,
    store: StateStore,
    vonage: VonageClient,
    clock: Clock | None = None,
    caller: ApiCaller | None = None,
) -> dict[str, Any]:
    """Move an in-flight verification to its next channel now (the user asks for a call instead
    of waiting for the SMS); returns ``{request_id, status: "pending", moved_on: true}``.

    Verify v2 ``POST /v2/verify/{id}/next_workflow``; legacy ``/verify/control`` with
    ``cmd=trigger_next_event``. Raises 404 ``verification_not_found``, 409
    ``verification_finished`` for one that has ended, and 409 ``next_workflow_not_allowed``
    when Vonage has no further channel to move to. The attempts already used stay counted. A
    ``caller`` acts only on its tenant's verifications (another tenant's id answers 404: the next
    channel, often a voice call, is billed to the account).
    """
    request_id = parse_request_id(request_id)
    now_fn = clock or store_clock(store)
    record = load_record(store, request_id)
    if record is None or not can_see(record.tenant, caller):
        raise NotFoundError("there is no verification with this request_id", code="verification_not_found")
    status = record.status_at(now_fn())
    if status.is_final:
        raise ConflictError(
            f"this verification has already ended ({status.value}); start a new one",
            code="verification_finished",
            details={"request_id": request_id, "status": status.value},
        )
    try:
        if record.api == "legacy":
            vonage.verify_legacy_control(request_id, "trigger_next_event")
        else:
            vonage.verify2_next_workflow(request_id)
    except VonageAPIError as exc:
        if exc.code == "next_workflow_not_allowed":
            raise ConflictError(
                "Vonage has no further channel to move this verification to (or it just moved); "
                "let the current one run, or wait for it to expire",
                code="next_workflow_not_allowed",
                details={"request_id": request_id, **_vonage_details(exc)},
            ) from exc
        if exc.code == "verification_not_found":
            ended = _finish(store, request_id, VerificationStatus.EXPIRED, "ended_at_vonage", now_fn)
            raise ConflictError(
                "this verification has already ended at Vonage; start a new one",
                code="verification_finished",
                details={"request_id": request_id, "status": (ended or record).status.value, **_vonage_details(exc)},
            ) from exc
        raise
    log.info("verification moved to its next channel", extra={"request_id": request_id, "api": record.api})
    return {"request_id": request_id, "status": VerificationStatus.PENDING.value, "moved_on": True}


# ---- shared helpers ------------------------------------------------------------


def _finish(
    store: StateStore, request_id: str, status: VerificationStatus, reason: str, now_fn: Clock
) -> VerificationRecord | None:
    return update_record(store, request_id, lambda r: r.finish(status, now=now_fn(), reason=reason))


def _vonage_details(exc: VonageAPIError) -> dict[str, Any]:
    return {k: exc.details[k] for k in ("vonage_code", "api") if k in exc.details}


# ---- the wire calls (the only code that differs between the two APIs) -------------


def _vonage_start(vonage: VonageClient, api: str, start: StartRequest, settings: Settings) -> tuple[str, str | None]:
    """Start at Vonage; returns the request id and the silent-auth ``check_url`` (or None)."""
    if api == "legacy":
        params: dict[str, str] = {
            "number": start.phone.wire,
            "brand": start.brand,
            "workflow_id": str(LEGACY_WORKFLOWS[start.channels]),
        }
        if start.code_length is not None:
            params["code_length"] = str(start.code_length)
        if start.locale is not None:
            params["lg"] = start.locale
        if start.channel_timeout is not None:
            params["next_event_wait"] = str(start.channel_timeout)
        answer = vonage.verify_legacy_start(params)
    else:
        body: dict[str, Any] = {"brand": start.brand, "workflow": [_workflow_step(c, start, settings) for c in start.channels]}
        if start.code_length is not None:
            body["code_length"] = start.code_length
        if start.locale is not None:
            body["locale"] = start.locale
        if start.client_ref is not None:
            body["client_ref"] = start.client_ref
        if start.channel_timeout is not None:
            body["channel_timeout"] = start.channel_timeout
        answer = vonage.verify2_start(body)
    request_id = answer.get("request_id") if isinstance(answer, Mapping) else None
    if not isinstance(request_id, str) or not request_id:
        raise ServiceError("Vonage accepted the verification but sent no request_id", code="vonage_error", status=502)
    check_url = answer.get("check_url")
    return request_id, check_url if isinstance(check_url, str) and check_url else None


def _workflow_step(channel: str, start: StartRequest, settings: Settings) -> dict[str, Any]:
    """One Verify v2 workflow entry (vonage-api.md 9.2)."""
    if channel == "email":
        return {"channel": "email", "to": start.email}
    # sms, voice, silent_auth and whatsapp_interactive take only the number (verify.v2.yml).
    step: dict[str, Any] = {"channel": channel, "to": start.phone.wire}
    if channel == "whatsapp":
        step["from"] = (settings.brand_number or "").lstrip("+")  # required: the WABA-connected number
    return step


def _vonage_check(vonage: VonageClient, api: str, request_id: str, code: str) -> None:
    if api == "legacy":
        vonage.verify_legacy_check(request_id, code)
    else:
        vonage.verify2_check(request_id, code)


def _vonage_cancel(vonage: VonageClient, api: str, request_id: str) -> None:
    if api == "legacy":
        vonage.verify_legacy_control(request_id, "cancel")
    else:
        vonage.verify2_cancel(request_id)
