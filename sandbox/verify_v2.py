"""Verify v2: ``/v2/verify`` start, check, cancel and next_workflow (vonage-api.md §9).

HTTP codes as Vonage answers them: 202 started, 200 checked, 204 cancelled, 200 moved on;
400 wrong code, 401 credentials, 402 low balance, 404 unknown or already verified,
409 concurrent request (with its ``request_id``) / cancel not allowed now / no next
workflow, 410 third wrong code, 412 silent auth without coverage (``silent_auth_coverage``
off), 422 invalid parameters, 429 rate limit. Codes go to the inbox; callbacks go to the
Verify URL. Silent authentication (first in the workflow, as Vonage requires) answers the
start with a ``check_url``; the device's ``GET`` on it (``/v2/verify/{id}/silent-auth/redirect``)
answers ``{request_id, code}``, and the code is then checked like any other. A
``whatsapp_interactive`` step sends the code to the WhatsApp inbox (no ``from``: Vonage's number).
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.context import SandboxContext
from sandbox.credentials import Caller, CredentialError, application_caller
from sandbox.responses import (
    VERIFY_ERRORS,
    ApiResult,
    invalid_params,
    json_response,
    low_balance,
    problem,
    rate_limited,
    unauthorized,
)
from sandbox.verify import ConcurrentVerificationError, Outcome, Step
from sandbox.verify_effects import carry_out
from sandbox.wire import read_json

__all__ = ["handle_cancel", "handle_check", "handle_next_workflow", "handle_silent_auth_redirect", "handle_start"]

CHANNELS = ("sms", "whatsapp", "whatsapp_interactive", "voice", "email", "silent_auth", "rcs")
DEFAULT_CHANNEL_TIMEOUT = 180
_PHONE = re.compile(r"[0-9]{7,15}")
_BRAND = re.compile(r"[^/{}:$]{1,18}")
_CODE = re.compile(r"[A-Za-z0-9]{4,10}")
_CLIENT_REF = re.compile(r".{1,40}")


def handle_start(ctx: SandboxContext, request: Request) -> ApiResult:
    """``POST /v2/verify``: 202 ``{request_id}``."""
    caller, refused = _admit(ctx, request)
    if refused is not None:
        return refused
    body = read_json(request)
    if not isinstance(body, dict):
        return _result(invalid_params([("body", "must be a JSON object")], **_INVALID), caller, "422")
    problems = _start_problems(body)
    if problems:
        return _result(invalid_params(problems, **_INVALID), caller, "422")
    workflow = body["workflow"]
    silent = any(item["channel"] == "silent_auth" for item in workflow)
    if silent and not ctx.config.silent_auth_coverage:
        refusal = problem(
            412,
            f"{VERIFY_ERRORS}/verify#precondition-failed",
            "Precondition Failed",
            "Silent Authentication is not supported by this number's mobile network.",
        )
        return _result(refusal, caller, "412")
    if not ctx.state.can_afford(ctx.config.verify_price):
        return _result(low_balance(), caller, "402")
    steps = [Step(channel=item["channel"], to=str(item["to"]), sender=item.get("from")) for item in workflow]
    try:
        verification, effects = ctx.verify.start(
            api="v2",
            brand=body["brand"],
            steps=steps,
            step_timeout=float(body.get("channel_timeout", DEFAULT_CHANNEL_TIMEOUT)),
            code_length=int(body.get("code_length", 4)),
            code=body.get("code"),
            client_ref=body.get("client_ref"),
            extra={"application_id": caller.application_id or ctx.config.application_id},
        )
    except ConcurrentVerificationError as exc:
        refusal = problem(
            409,
            f"{VERIFY_ERRORS}/verify#conflict",
            "Conflict",
            "Concurrent verifications to the same number are not allowed.",
            extra={"request_id": exc.existing.request_id},
        )
        return _result(refusal, caller, "409")
    answer = {"request_id": verification.request_id}
    if silent:
        answer["check_url"] = f"{request.host_url.rstrip('/')}/v2/verify/{verification.request_id}/silent-auth/redirect"
    return ApiResult(
        json_response(answer, status=202),
        carry_out(ctx, effects),
        outcome="202",
        auth=caller.method,
    )


def handle_silent_auth_redirect(ctx: SandboxContext, request: Request, request_id: str) -> ApiResult:
    """``GET /v2/verify/{id}/silent-auth/redirect`` (the device, over its mobile data):
    200 ``{request_id, code}`` while the request is on its silent_auth step, else 404.
    No credentials: the device holds only the check_url."""
    verification, effects = ctx.verify.get(request_id)
    deliveries = carry_out(ctx, effects)
    if verification is None or not verification.is_active or verification.step.channel != "silent_auth":
        return ApiResult(_not_found(request_id), deliveries, outcome="404")
    body = {"request_id": request_id, "code": verification.code}
    return ApiResult(json_response(body, status=200), deliveries, outcome="200")


def handle_check(ctx: SandboxContext, request: Request, request_id: str) -> ApiResult:
    """``POST /v2/verify/{id}`` with ``{"code"}``: 200 completed, 400, 404 or 410."""
    caller, refused = _admit(ctx, request)
    if refused is not None:
        return refused
    body = read_json(request)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code:
        return _result(invalid_params([("code", "is required")], **_INVALID), caller, "422")
    outcome, _, effects = ctx.verify.check(request_id, code)
    deliveries = carry_out(ctx, effects)
    if outcome is Outcome.OK:
        ctx.state.try_charge(ctx.config.verify_price)  # Vonage charges a verification when it succeeds
        answer = json_response({"request_id": request_id, "status": "completed"})
        return ApiResult(answer, deliveries, outcome="200", auth=caller.method)
    if outcome is Outcome.WRONG_CODE:
        refusal = problem(
            400,
            f"{VERIFY_ERRORS}/verify#invalid-code",
            "Invalid Code",
            "The code you provided does not match the expected value.",
        )
        return ApiResult(refusal, deliveries, outcome="400", auth=caller.method)
    if outcome is Outcome.TOO_MANY:
        refusal = problem(
            410,
            f"{VERIFY_ERRORS}/verify#expired",
            "Invalid Code",
            "An incorrect code has been provided too many times. Workflow terminated.",
        )
        return ApiResult(refusal, deliveries, outcome="410", auth=caller.method)
    return ApiResult(_not_found(request_id), deliveries, outcome="404", auth=caller.method)


def handle_cancel(ctx: SandboxContext, request: Request, request_id: str) -> ApiResult:
    """``DELETE /v2/verify/{id}``: 204, 404, or 409 within the first seconds / after the second event."""
    caller, refused = _admit(ctx, request)
    if refused is not None:
        return refused
    outcome, _, effects = ctx.verify.cancel(request_id, cancel_after=ctx.config.verify_cancel_after)
    deliveries = carry_out(ctx, effects)
    if outcome is Outcome.OK:
        return ApiResult(Response(status=204), deliveries, outcome="204", auth=caller.method)
    if outcome in (Outcome.TOO_EARLY, Outcome.TOO_LATE):
        detail = (
            f"Verification request cannot be cancelled within the first {ctx.config.verify_cancel_after:g} seconds."
            if outcome is Outcome.TOO_EARLY
            else "Verification request cannot be cancelled after the second event has started."
        )
        refusal = problem(409, f"{VERIFY_ERRORS}/verify#conflict", "Conflict", detail)
        return ApiResult(refusal, deliveries, outcome="409", auth=caller.method)
    return ApiResult(_not_found(request_id), deliveries, outcome="404", auth=caller.method)


def handle_next_workflow(ctx: SandboxContext, request: Request, request_id: str) -> ApiResult:
    """``POST /v2/verify/{id}/next_workflow``: 200, 404, or 409 when no workflow is left."""
    caller, refused = _admit(ctx, request)
    if refused is not None:
        return refused
    outcome, _, effects = ctx.verify.next_step(request_id)
    deliveries = carry_out(ctx, effects)
    if outcome is Outcome.OK:
        return ApiResult(Response(status=200), deliveries, outcome="200", auth=caller.method)
    if outcome is Outcome.NO_MORE_STEPS:
        refusal = problem(
            409, f"{VERIFY_ERRORS}/verify#conflict", "Conflict", "There are no more workflows left to trigger."
        )
        return ApiResult(refusal, deliveries, outcome="409", auth=caller.method)
    return ApiResult(_not_found(request_id), deliveries, outcome="404", auth=caller.method)


# ---- helpers -------------------------------------------------------------------

_INVALID: dict[str, Any] = {"type_": f"{VERIFY_ERRORS}#invalid-params", "title": "Invalid params"}


def _admit(ctx: SandboxContext, request: Request) -> tuple[Caller, ApiResult | None]:
    """Authenticate and rate-limit; the second item is the refusal, if any."""
    now = ctx.clock()
    try:
        caller = application_caller(
            ctx.config, request.headers.get("Authorization"), public_key=ctx.public_key(), now=now
        )
    except CredentialError as exc:
        return Caller("none"), ApiResult(unauthorized(expired=exc.expired), outcome="401")
    decision = ctx.state.rates.check("verify", ctx.config.rate_limit, now)
    if not decision.allowed:
        refusal = rate_limited(decision, now, type_=f"{VERIFY_ERRORS}#throttled")
        return caller, ApiResult(refusal, outcome="429", auth=caller.method)
    return caller, None


def _result(response: Response, caller: Caller, outcome: str) -> ApiResult:
    return ApiResult(response, outcome=outcome, auth=caller.method)


def _not_found(request_id: str) -> Response:
    return problem(
        404,
        f"{VERIFY_ERRORS}#not-found",
        "Not Found",
        f"Request '{request_id}' was not found or it has been verified already.",
    )


def _start_problems(body: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    brand = body.get("brand")
    if not isinstance(brand, str) or not _BRAND.fullmatch(brand):
        problems.append(("brand", "1-18 characters, none of / { } : $"))
    workflow = body.get("workflow")
    if not isinstance(workflow, list) or not 1 <= len(workflow) <= 3:
        problems.append(("workflow", "a list of 1 to 3 channels"))
    else:
        for index, item in enumerate(workflow):
            problems.extend(_channel_problems(index, item))
            if index > 0 and isinstance(item, dict) and item.get("channel") == "silent_auth":
                problems.append((f"workflow[{index}].channel", "silent_auth must be the first channel"))
    for name, low, high in (("code_length", 4, 10), ("channel_timeout", 15, 900)):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
            problems.append((name, f"a whole number from {low} to {high}"))
    code = body.get("code")
    if code is not None and (not isinstance(code, str) or not _CODE.fullmatch(code)):
        problems.append(("code", "4-10 letters or digits"))
    client_ref = body.get("client_ref")
    if client_ref is not None and (not isinstance(client_ref, str) or not _CLIENT_REF.fullmatch(client_ref)):
        problems.append(("client_ref", "1-40 characters"))
    return problems


def _channel_problems(index: int, item: Any) -> list[tuple[str, str]]:
    where = f"workflow[{index}]"
    if not isinstance(item, dict) or item.get("channel") not in CHANNELS:
        return [(f"{where}.channel", f"one of {', '.join(CHANNELS)}")]
    to = item.get("to")
    if item["channel"] == "email":
        if not isinstance(to, str) or "@" not in to:
            return [(f"{where}.to", "an email address")]
    elif not isinstance(to, str) or not _PHONE.fullmatch(to):
        return [(f"{where}.to", "an E.164 number without + (7-15 digits)")]
    if item["channel"] in ("whatsapp", "rcs") and not item.get("from"):
        return [(f"{where}.from", f"required for {item['channel']}")]
    return []
