"""Legacy Verify (v1): ``/verify/json``, ``/verify/check/json``, ``/verify/control/json``,
``/verify/search/json`` (vonage-api.md §8).

Always HTTP 200 with a ``status`` string: 0 ok, 1 throttled, 2 missing parameter,
3 invalid value, 4 bad credentials, 6 not found / no longer active / already verified,
9 no credit, 10 concurrent request (with the existing ``request_id``), 16 wrong code,
17 third wrong code, 19 cancel or next event not allowed now, 20 ``pin_code`` not
enabled, 29 trial destination not allowed, 101 search found nothing. Parameters come
as a form body or a query string (GET is accepted too).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.wrappers import Request

from sandbox.context import SandboxContext
from sandbox.credentials import Caller, CredentialError, key_secret_caller
from sandbox.responses import ApiResult, json_response
from sandbox.state import money
from sandbox.verify import ConcurrentVerificationError, Outcome, Step, Verification
from sandbox.verify_effects import carry_out
from sandbox.wire import read_fields

__all__ = ["WORKFLOWS", "handle_check", "handle_control", "handle_search", "handle_start"]

# workflow_id -> channels, in order (§8.2); "voice" is Vonage's "tts" event.
WORKFLOWS: dict[int, tuple[str, ...]] = {
    1: ("sms", "voice", "voice"),
    2: ("sms", "sms", "voice"),
    3: ("voice", "voice"),
    4: ("sms", "sms"),
    5: ("sms", "voice"),
    6: ("sms",),
    7: ("voice",),
}
DEFAULT_NEXT_EVENT_WAIT = 300
MAX_SEARCH_IDS = 10
_PHONE = re.compile(r"[0-9]{7,15}")
_EVENT_TYPES = {"voice": "tts"}  # legacy Verify calls a voice call a "tts" event
_STATUS_NAMES = {
    "in_progress": "IN PROGRESS",
    "completed": "SUCCESS",
    "failed": "FAILED",
    "expired": "EXPIRED",
    "cancelled": "CANCELLED",
}


def handle_start(ctx: SandboxContext, request: Request) -> ApiResult:
    """Start a verification: ``{"request_id", "status": "0"}``."""
    fields = read_fields(request, include_query=True)
    caller, refused = _admit(ctx, request, fields, with_request_id=True)
    if refused is not None:
        return refused
    refusal = _start_problem(fields)
    if refusal is not None:
        return _status(*refusal, caller=caller, request_id="")
    config = ctx.config
    number = fields["number"]
    if config.trial and number not in config.allow_list:
        return _status("29", "Non-Permitted Destination", caller=caller, request_id="")
    if not ctx.state.can_afford(config.verify_price):
        return _status("9", "Partner quota exceeded", caller=caller, request_id="")
    sender = fields.get("sender_id") or "VERIFY"
    channels = WORKFLOWS[int(fields.get("workflow_id") or 1)]
    try:
        verification, effects = ctx.verify.start(
            api="legacy",
            brand=fields["brand"],
            steps=[Step(channel=channel, to=number, sender=sender) for channel in channels],
            step_timeout=float(fields.get("next_event_wait") or DEFAULT_NEXT_EVENT_WAIT),
            code_length=int(fields.get("code_length") or 4),
            extra={"sender_id": sender},
        )
    except ConcurrentVerificationError as exc:
        return _status(
            "10",
            "Concurrent verifications to the same number are not allowed",
            caller=caller,
            request_id=exc.existing.request_id,
        )
    answer = json_response({"request_id": verification.request_id, "status": "0"})
    return ApiResult(answer, carry_out(ctx, effects), outcome="0", auth=caller.method)


def handle_check(ctx: SandboxContext, request: Request) -> ApiResult:
    """Check a code: status 0 with the price, or 16, 17, 6."""
    fields = read_fields(request, include_query=True)
    caller, refused = _admit(ctx, request, fields)
    if refused is not None:
        return refused
    for name in ("request_id", "code"):
        if not fields.get(name):
            return _status("2", _missing(name), caller=caller)
    request_id = fields["request_id"]
    outcome, verification, effects = ctx.verify.check(request_id, fields["code"])
    carry_out(ctx, effects)
    if outcome is Outcome.OK:
        assert verification is not None
        ctx.state.try_charge(ctx.config.verify_price)
        answer = {
            "request_id": request_id,
            "event_id": verification.step.event_id,
            "status": "0",
            "price": money(ctx.config.verify_price),
            "currency": "EUR",
            "estimated_price_messages_sent": money(_messages_price(ctx, verification)),
        }
        return ApiResult(json_response(answer), outcome="0", auth=caller.method)
    if outcome is Outcome.WRONG_CODE:
        text = "The code provided does not match the expected value"
        return _status("16", text, caller=caller, request_id=request_id)
    if outcome is Outcome.TOO_MANY:
        return _status("17", "The wrong code was provided too many times", caller=caller, request_id=request_id)
    return _status("6", _not_active(request_id), caller=caller, request_id=request_id)


def handle_control(ctx: SandboxContext, request: Request) -> ApiResult:
    """``cmd=cancel`` or ``cmd=trigger_next_event``: ``{"status": "0", "command"}``, or 6, 19."""
    fields = read_fields(request, include_query=True)
    caller, refused = _admit(ctx, request, fields)
    if refused is not None:
        return refused
    for name in ("request_id", "cmd"):
        if not fields.get(name):
            return _status("2", _missing(name), caller=caller)
    request_id, command = fields["request_id"], fields["cmd"]
    if command == "cancel":
        outcome, _, effects = ctx.verify.cancel(request_id, cancel_after=ctx.config.verify_cancel_after)
    elif command == "trigger_next_event":
        outcome, _, effects = ctx.verify.next_step(request_id)
    else:
        return _status("3", "Invalid value for param: cmd", caller=caller)
    carry_out(ctx, effects)
    if outcome is Outcome.OK:
        return ApiResult(json_response({"status": "0", "command": command}), outcome="0", auth=caller.method)
    if outcome is Outcome.TOO_EARLY:
        seconds = f"{ctx.config.verify_cancel_after:g}"
        text = f"Verification request  ['{request_id}'] can't be cancelled within the first {seconds} seconds."
        return _status("19", text, caller=caller)
    if outcome is Outcome.TOO_LATE:
        text = (
            f"Verification request  ['{request_id}'] can't be cancelled now. "
            "Too many attempts to re-deliver have already been made."
        )
        return _status("19", text, caller=caller)
    if outcome is Outcome.NO_MORE_STEPS:
        text = f"Verification request  ['{request_id}'] can't be triggered next event now. No more events are left."
        return _status("19", text, caller=caller)
    return _status("6", _not_active(request_id), caller=caller)


def handle_search(ctx: SandboxContext, request: Request) -> ApiResult:
    """Search by ``request_id`` (one object) or repeated ``request_ids`` (a list); 101 if none found."""
    fields = read_fields(request, include_query=True)
    caller, refused = _admit(ctx, request, fields)
    if refused is not None:
        return refused
    ids = _repeated(request, "request_ids")[:MAX_SEARCH_IDS]
    single = fields.get("request_id")
    if not single and not ids:
        return _status("2", _missing("request_id"), caller=caller)
    found = []
    for request_id in [single] if single else ids:
        verification, effects = ctx.verify.get(request_id)
        carry_out(ctx, effects)
        if verification is not None and verification.api == "legacy":
            found.append(_search_record(ctx, verification))
    if not found:
        return _status("101", "No response found", caller=caller)
    body: Any = found[0] if single else {"verification_requests": found}
    return ApiResult(json_response(body), outcome="0", auth=caller.method)


# ---- helpers -------------------------------------------------------------------


def _admit(
    ctx: SandboxContext, request: Request, fields: dict[str, str], *, with_request_id: bool = False
) -> tuple[Caller, ApiResult | None]:
    extra = {"request_id": ""} if with_request_id else {}
    try:
        caller = key_secret_caller(ctx.config, fields, request.headers.get("Authorization"))
    except CredentialError as exc:
        return Caller("none"), _status(exc.status, exc.text, caller=None, **extra)
    if not ctx.state.rates.check("verify_legacy", ctx.config.rate_limit, ctx.clock()).allowed:
        return caller, _status("1", "Throttled", caller=caller, **extra)
    return caller, None


def _status(status: str, text: str, *, caller: Caller | None, request_id: str | None = None) -> ApiResult:
    body: dict[str, str] = {}
    if request_id is not None:
        body["request_id"] = request_id
    body.update({"status": status, "error_text": text})
    return ApiResult(json_response(body), outcome=status, auth=caller.method if caller else None)


def _start_problem(fields: dict[str, str]) -> tuple[str, str] | None:
    for name in ("number", "brand"):
        if not fields.get(name):
            return "2", _missing(name)
    if "pin_code" in fields:
        return "20", "This account does not support the parameter: pin_code."
    checks: tuple[tuple[str, Callable[[str], bool]], ...] = (
        ("number", lambda v: bool(_PHONE.fullmatch(v))),
        ("brand", lambda v: len(v) <= 18),
        ("sender_id", lambda v: 0 < len(v) <= 11),
        ("code_length", lambda v: v in ("4", "6")),
        ("workflow_id", lambda v: v.isdigit() and int(v) in WORKFLOWS),
        ("pin_expiry", lambda v: v.isdigit() and 60 <= int(v) <= 3600),
        ("next_event_wait", lambda v: v.isdigit() and 60 <= int(v) <= 900),
    )
    for name, is_valid in checks:
        if name in fields and not is_valid(fields[name]):
            return "3", f"Invalid value for param: {name}"
    return None


def _search_record(ctx: SandboxContext, verification: Verification) -> dict[str, Any]:
    started = [step for step in verification.steps if step.started_at is not None]
    return {
        "request_id": verification.request_id,
        "account_id": ctx.config.api_key,
        "status": _STATUS_NAMES[verification.status],
        "number": verification.number,
        "price": money(ctx.config.verify_price if verification.status == "completed" else Decimal(0)),
        "currency": "EUR",
        "sender_id": verification.extra.get("sender_id", "VERIFY"),
        "date_submitted": _date(verification.created_at),
        "date_finalized": _date(verification.finalized_at),
        "first_event_date": _date(started[0].started_at if started else None),
        "last_event_date": _date(started[-1].started_at if started else None),
        # The codes a user typed are not shown: a code never leaves the sandbox in an API answer.
        "checks": [
            {"date_received": _date(check["at"]), "code": "****", "status": check["status"], "ip_address": ""}
            for check in verification.checks
        ],
        "events": [{"type": _EVENT_TYPES.get(step.channel, step.channel), "id": step.event_id} for step in started],
        "estimated_price_messages_sent": money(_messages_price(ctx, verification)),
    }


def _messages_price(ctx: SandboxContext, verification: Verification) -> Decimal:
    """What the SMS sent so far cost (voice calls are not priced here)."""
    sent = sum(1 for step in verification.steps if step.started_at is not None and step.channel == "sms")
    return ctx.config.sms_price * sent


def _repeated(request: Request, name: str) -> list[str]:
    pairs = parse_qsl(request.query_string.decode("utf-8", "replace"), keep_blank_values=False)
    if request.mimetype != "application/json":
        pairs += parse_qsl(request.get_data(cache=True).decode("utf-8", "replace"), keep_blank_values=False)
    return [value for key, value in pairs if key == name]


def _date(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _missing(name: str) -> str:
    return f"Your request is incomplete and missing the mandatory parameter `{name}`"


def _not_active(request_id: str) -> str:
    return f"The requestId '{request_id}' does not exist or its no longer active."
