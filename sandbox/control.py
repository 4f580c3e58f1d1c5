"""Control and inspection endpoints under ``/_sandbox/`` (for tests, the local runner and people).

    GET  /_sandbox/health                 {"ok": true}
    GET  /_sandbox/messages[?api=&to=]    accepted messages, with the exact request fields
    GET  /_sandbox/requests[?api=]        every API request: fields, auth, status, faults
    GET  /_sandbox/deliveries[?kind=]     webhook deliveries: URL, attempts, status answered
    GET  /_sandbox/inbox?to=<number>      what a phone (or email address) received, latest first
    POST /_sandbox/inbound                inject an inbound message, or {"answer": {message_uuid, choice}}
                                          (a phone taps a button / list row / suggestion; see sandbox.inbound)
    POST /_sandbox/reset                  forget everything, restore the balance
    GET  /_sandbox/config                 settings (without secrets) and the current balance
    POST /_sandbox/config                 change settings: {"trial": true, "allow_list": [...], "no_whatsapp": [...], ...}
    GET  /_sandbox/faults                 fault rules and seed
    POST /_sandbox/faults                 {"faults": [{"kind": "5xx", "rate": 0.5}], "seed": 7}
    POST /_sandbox/wait_idle?timeout=5    wait until every queued webhook is done (local run: and the app's event consumers)
    POST /_sandbox/tick                   advance Verify timers now (expiry, next channel)

There is no authentication: the sandbox only ever listens on a loopback address.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.context import SandboxContext
from sandbox.faults import ActiveFaults
from sandbox.inbound import InboundError, inject_inbound
from sandbox.responses import json_response, problem
from sandbox.state import money
from sandbox.verify_effects import carry_out
from sandbox.wire import read_json

__all__ = ["CONTROL_ROUTES", "handle_control", "tick"]

_SANDBOX_ERRORS = "urn:vonage-sandbox:"  # problems of the sandbox itself, not of Vonage


def handle_control(ctx: SandboxContext, request: Request, name: str, faults: ActiveFaults) -> Response:
    """Dispatch ``/_sandbox/<name>``; 404/405 for unknown names or methods."""
    route = CONTROL_ROUTES.get(name)
    if route is None:
        return problem(404, f"{_SANDBOX_ERRORS}not-found", "Not Found", f"no sandbox endpoint /_sandbox/{name}")
    methods, handler = route
    if request.method not in methods:
        return problem(
            405,
            f"{_SANDBOX_ERRORS}method-not-allowed",
            "Method Not Allowed",
            f"/_sandbox/{name} takes {', '.join(methods)}",
            headers={"Allow": ", ".join(methods)},
        )
    try:
        return handler(ctx, request, faults)
    except ValueError as exc:
        return problem(400, f"{_SANDBOX_ERRORS}bad-request", "Bad Request", str(exc))


def tick(ctx: SandboxContext) -> int:
    """Advance Verify timers and deliver what that causes; returns how many effects there were."""
    effects = ctx.verify.tick()
    if effects:
        ctx.dispatcher.submit(carry_out(ctx, effects))
    return len(effects)


def _health(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    return json_response({"ok": True})


def _messages(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    records = _filter(ctx.state.messages(), request, ("api", "to", "channel"))
    return json_response({"messages": records})


def _requests(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    return json_response({"requests": _filter(ctx.state.requests(), request, ("api", "path"))})


def _deliveries(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    return json_response({"deliveries": _filter(ctx.dispatcher.deliveries(), request, ("kind", "state"))})


def _inbox(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    to = request.args.get("to", "").strip()
    if not to:
        raise ValueError("give the number (or email address) as ?to=")
    tick(ctx)  # a code for a channel that just started should be there when someone looks
    return json_response({"to": to, "messages": ctx.state.inbox(to)})


def _inbound(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    spec = read_json(request)
    if not isinstance(spec, dict):
        raise ValueError("send a JSON object: {from, to, text, ...}")
    try:
        return json_response(inject_inbound(ctx, spec, faults))
    except InboundError as exc:
        raise ValueError(str(exc)) from exc


def _reset(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    ctx.reset()
    return json_response({"reset": True})


def _config(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    if request.method == "POST":
        changes = read_json(request)
        if not isinstance(changes, dict):
            raise ValueError("send a JSON object of settings to change")
        ctx.update_config(changes)
    body = ctx.config.public_dict()
    body["current_balance"] = money(ctx.state.balance)
    return json_response(body)


def _faults(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    if request.method == "POST":
        body = read_json(request)
        if not isinstance(body, dict) or "faults" not in body:
            raise ValueError('send {"faults": [...], "seed": N}')
        changes: dict[str, Any] = {"faults": body["faults"]}
        if body.get("seed") is not None:
            changes["seed"] = body["seed"]
        ctx.update_config(changes)
    config = ctx.config
    return json_response({"faults": [rule.to_dict() for rule in config.faults], "seed": config.seed})


def _wait_idle(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    try:
        timeout = min(float(request.args.get("timeout", "5")), 60.0)
    except ValueError as exc:
        raise ValueError("timeout must be a number of seconds") from exc
    return json_response({"idle": ctx.wait_idle(timeout)})


def _tick(ctx: SandboxContext, request: Request, faults: ActiveFaults) -> Response:
    return json_response({"effects": tick(ctx)})


def _filter(records: list[dict[str, Any]], request: Request, names: tuple[str, ...]) -> list[dict[str, Any]]:
    for name in names:
        wanted = request.args.get(name)
        if wanted is not None:
            records = [record for record in records if str(record.get(name)) == wanted]
    return records


_Handler = Callable[[SandboxContext, Request, ActiveFaults], Response]
CONTROL_ROUTES: dict[str, tuple[tuple[str, ...], _Handler]] = {
    "health": (("GET",), _health),
    "messages": (("GET",), _messages),
    "requests": (("GET",), _requests),
    "deliveries": (("GET",), _deliveries),
    "inbox": (("GET",), _inbox),
    "inbound": (("POST",), _inbound),
    "reset": (("POST",), _reset),
    "config": (("GET", "POST"), _config),
    "faults": (("GET", "POST"), _faults),
    "wait_idle": (("POST",), _wait_idle),
    "tick": (("POST",), _tick),
}
