"""The sandbox's WSGI application: routing, per-request faults, the request log.

Each Vonage endpoint goes through the same steps: draw faults (configured rules plus the
``X-Sandbox-Fault`` header), maybe delay, maybe fail without handling (5xx, 429,
throttle), handle, queue the webhooks it caused (duplicated, reordered, or delivered
before the answer, as the faults say), maybe hold the answer past the client's timeout,
and log the request with the fields it carried.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox import account, messages, sms, verify_legacy, verify_v2
from sandbox.context import SandboxContext
from sandbox.control import handle_control
from sandbox.devphone_page import handle_phone
from sandbox.faults import ActiveFaults, parse_fault_rules
from sandbox.responses import ERRORS, ApiResult, json_response, problem, rate_limited
from sandbox.state import iso_time
from sandbox.wire import read_fields, read_json, redact_fields

__all__ = ["FAULT_HEADER", "SandboxApp"]

FAULT_HEADER = "X-Sandbox-Fault"
MAX_BODY_BYTES = 1024 * 1024
log = logging.getLogger("sandbox")

_Handler = Callable[..., ApiResult]
# endpoint name -> (api, handler)
_API: dict[str, tuple[str, _Handler]] = {
    "sms": ("sms", sms.handle_sms),
    "messages": ("messages", messages.handle_messages),
    "verify_start": ("verify", verify_v2.handle_start),
    "verify_check": ("verify", verify_v2.handle_check),
    "verify_cancel": ("verify", verify_v2.handle_cancel),
    "verify_next": ("verify", verify_v2.handle_next_workflow),
    "verify_silent_auth": ("verify", verify_v2.handle_silent_auth_redirect),
    "legacy_start": ("verify_legacy", verify_legacy.handle_start),
    "legacy_check": ("verify_legacy", verify_legacy.handle_check),
    "legacy_control": ("verify_legacy", verify_legacy.handle_control),
    "legacy_search": ("verify_legacy", verify_legacy.handle_search),
    "account_balance": ("account", account.handle_balance),
    "account_pricing": ("account", account.handle_pricing),
}
# Webhooks the drop_receipts fault withholds: the receipts of sent messages (not inbound, not Verify).
RECEIPT_KINDS = frozenset({"sms-dlr", "message-status"})
_LEGACY_METHODS = ["GET", "POST"]
URL_MAP = Map(
    [
        Rule("/sms/json", methods=["POST"], endpoint="sms"),
        Rule("/v1/messages", methods=["POST"], endpoint="messages"),
        Rule("/v2/verify", methods=["POST"], endpoint="verify_start"),
        Rule("/v2/verify/<request_id>", methods=["POST"], endpoint="verify_check"),
        Rule("/v2/verify/<request_id>", methods=["DELETE"], endpoint="verify_cancel"),
        Rule("/v2/verify/<request_id>/next_workflow", methods=["POST"], endpoint="verify_next"),
        Rule("/v2/verify/<request_id>/silent-auth/redirect", methods=["GET"], endpoint="verify_silent_auth"),
        Rule("/verify/json", methods=_LEGACY_METHODS, endpoint="legacy_start"),
        Rule("/verify/check/json", methods=_LEGACY_METHODS, endpoint="legacy_check"),
        Rule("/verify/control/json", methods=_LEGACY_METHODS, endpoint="legacy_control"),
        Rule("/verify/search/json", methods=_LEGACY_METHODS, endpoint="legacy_search"),
        Rule("/account/get-balance", methods=["GET"], endpoint="account_balance"),
        Rule("/account/get-pricing/outbound/<kind>", methods=["GET"], endpoint="account_pricing"),
        Rule("/_sandbox/<name>", methods=["GET", "POST"], endpoint="control"),
        Rule("/phone", methods=["GET"], endpoint="phone"),
        Rule("/phone/<path:rest>", methods=["GET", "POST"], endpoint="phone"),
    ],
    strict_slashes=False,
)
# Never shown in the request log: credentials and the codes people type.
_HIDDEN_FIELDS = frozenset({"api_secret", "code", "pin_code"})


class SandboxApp:
    """WSGI callable serving the Vonage endpoints and ``/_sandbox/...``."""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        try:
            response = self._dispatch(request)
        except HTTPException as exc:  # e.g. a body over the size limit
            response = problem(exc.code or 400, f"{ERRORS}#bad-request", exc.name, exc.description or "")
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        adapter = URL_MAP.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return problem(404, f"{ERRORS}#not-found", "Not Found", f"{request.path} is not an endpoint here")
        except MethodNotAllowed as exc:
            allowed = ", ".join(exc.valid_methods or [])
            return problem(
                405, f"{ERRORS}#method-not-allowed", "Method Not Allowed", f"use {allowed}", headers={"Allow": allowed}
            )
        if endpoint == "phone":  # the dev phone page (sandbox.devphone_page), not a Vonage API
            return handle_phone(self.ctx, request, args.get("rest", ""))
        try:
            forced = parse_fault_rules(request.headers.get(FAULT_HEADER, ""))
        except ValueError as exc:
            return problem(400, "urn:vonage-sandbox:bad-fault", "Bad Request", f"{FAULT_HEADER}: {exc}")
        if endpoint == "control":
            faults = self.ctx.faults.draw("inbound", forced) if args["name"] == "inbound" else ActiveFaults()
            return handle_control(self.ctx, request, args["name"], faults)
        api, handler = _API[endpoint]
        return self._api(api, handler, request, dict(args), self.ctx.faults.draw(api, forced))

    def _api(
        self, api: str, handler: _Handler, request: Request, args: dict[str, Any], faults: ActiveFaults
    ) -> Response:
        ctx = self.ctx
        received_at = ctx.clock()
        if faults.has("delay"):
            ctx.hold(faults.value("delay", 1.0))
        result = _injected_failure(ctx, api, faults)
        if result is None:
            try:
                result = handler(ctx, request, **args)
            except Exception:  # a sandbox bug must still answer, like a real 500 would
                log.exception("sandbox handler failed", extra={"api": api, "path": request.path})
                result = ApiResult(
                    problem(500, f"{ERRORS}#internal-error", "Internal Error", "The sandbox failed."), outcome="500"
                )
        deliveries = result.deliveries
        if faults.has("drop_receipts"):
            deliveries = [delivery for delivery in deliveries if delivery.kind not in RECEIPT_KINDS]
        if deliveries:
            ctx.dispatcher.submit(
                deliveries,
                delay=faults.value("webhook_delay", ctx.config.delivery_delay),
                duplicate=faults.has("duplicate"),
                reorder=faults.has("reorder"),
                early=faults.has("early_receipt"),
            )
        if faults.has("timeout"):
            ctx.hold(faults.value("timeout", ctx.config.timeout_hold))
        ctx.state.record_request(
            {
                "id": str(uuid.uuid4()),
                "api": api,
                "method": request.method,
                "path": request.path,
                "content_type": request.content_type,
                "fields": _logged_fields(api, request),
                "auth": result.auth,
                "status": result.response.status_code,
                "outcome": result.outcome,
                "faults": faults.kinds,
                "received_at": iso_time(received_at),
                "responded_at": iso_time(ctx.clock()),
            }
        )
        log.info(
            "sandbox request",
            extra={"api": api, "path": request.path, "status": result.response.status_code, "faults": faults.kinds},
        )
        return result.response


def _injected_failure(ctx: SandboxContext, api: str, faults: ActiveFaults) -> ApiResult | None:
    """The answer for a 5xx, 429 or throttle fault, given without handling the request."""
    now = ctx.clock()
    if faults.has("5xx"):
        status = int(faults.value("5xx", 500))
        status = status if 500 <= status <= 599 else 500
        detail = "The sandbox injected a server error (fault 5xx)."
        return ApiResult(problem(status, f"{ERRORS}#internal-error", "Internal Error", detail), outcome=str(status))
    if faults.has("429"):
        return ApiResult(rate_limited(None, now), outcome="429")
    if faults.has("throttle"):
        if api == "sms":
            return sms.sms_error("1", "Throttled")
        if api == "verify_legacy":
            return ApiResult(json_response({"status": "1", "error_text": "Throttled"}), outcome="1")
        return ApiResult(rate_limited(None, now), outcome="429")
    return None


def _logged_fields(api: str, request: Request) -> Any:
    """The request's fields as received, with credentials and typed codes hidden."""
    if api in ("messages", "verify"):
        body = read_json(request)
        return _hide(body) if isinstance(body, dict) else body
    return _hide(redact_fields(read_fields(request, include_query=api == "verify_legacy")))


def _hide(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: "[redacted]" if name in _HIDDEN_FIELDS else value for name, value in fields.items()}
