"""Carry out what the Verify engine decided: codes into the inbox, Verify v2 callbacks out.

Verify v2 sends two kinds of signed callback to the Verify capability's status URL
(vonage-api.md §9.4): an ``event`` per channel attempt that ends (completed / failed) and
a ``summary`` when the request ends (completed / failed / expired). Legacy Verify sends none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.context import SandboxContext
from sandbox.state import iso_time
from sandbox.verify import Effect, Step, Verification
from sandbox.webhook_requests import json_webhook
from sandbox.webhooks import Delivery, OutgoingRequest

__all__ = ["carry_out", "code_text", "event_payload", "summary_payload"]


def carry_out(ctx: SandboxContext, effects: list[Effect]) -> list[Delivery]:
    """Put sent codes in their inbox and return the v2 callbacks to deliver."""
    deliveries: list[Delivery] = []
    for effect in effects:
        verification = effect.verification
        if effect.kind == "code_sent":
            assert effect.step is not None
            if effect.step.channel != "silent_auth":  # the device fetches that code from the check_url
                _deliver_code(ctx, verification, effect.step)
            continue
        url = ctx.config.verify_callback_url
        if verification.api != "v2" or not url:
            continue
        if effect.kind == "event":
            assert effect.step is not None
            payload = event_payload(verification, effect.step, effect.status or "", effect.at)
        else:
            payload = summary_payload(verification, effect.status or verification.status)
        deliveries.append(
            Delivery(
                kind=f"verify-{effect.kind}",
                url=url,
                render=_renderer(ctx, url, payload, verification.extra.get("application_id")),
                ref={"request_id": verification.request_id, "status": payload["status"]},
                format="POST-JSON",
            )
        )
    return deliveries


def code_text(verification: Verification, step: Step) -> str:
    """What the person receives on ``step``'s channel."""
    if step.channel == "voice":
        return f"Your {verification.brand} verification code is {', '.join(verification.code)}."
    return f"Your {verification.brand} verification code is: {verification.code}"


def event_payload(verification: Verification, step: Step, status: str, at: float) -> dict[str, Any]:
    """Verify v2 ``event`` callback body."""
    payload: dict[str, Any] = {
        "request_id": verification.request_id,
        "triggered_at": iso_time(step.started_at or verification.created_at),
        "type": "event",
        "channel": step.channel,
        "status": status,
        "finalized_at": iso_time(at),
    }
    if verification.client_ref:
        payload["client_ref"] = verification.client_ref
    return payload


def summary_payload(verification: Verification, status: str) -> dict[str, Any]:
    """Verify v2 ``summary`` callback body."""
    workflow = []
    for step in verification.steps:
        item: dict[str, Any] = {"channel": step.channel, "status": step.status}
        if step.started_at is not None:
            item["initiated_at"] = iso_time(step.started_at)
        workflow.append(item)
    payload: dict[str, Any] = {
        "request_id": verification.request_id,
        "submitted_at": iso_time(verification.created_at),
        "status": status,
        "type": "summary",
        "channel_timeout": int(verification.step_timeout),
        "workflow": workflow,
    }
    if verification.finalized_at is not None:
        payload["finalized_at"] = iso_time(verification.finalized_at)
    if verification.client_ref:
        payload["client_ref"] = verification.client_ref
    return payload


def _deliver_code(ctx: SandboxContext, verification: Verification, step: Step) -> None:
    ctx.state.add_to_inbox(
        step.to,
        {
            "kind": "verify",
            "api": verification.api,
            "channel": step.channel,
            "from": step.sender or verification.brand,
            "text": code_text(verification, step),
            "code": verification.code,
            "request_id": verification.request_id,
        },
    )


def _renderer(
    ctx: SandboxContext, url: str, payload: dict[str, Any], application_id: str | None
) -> Callable[[], OutgoingRequest]:
    def render() -> OutgoingRequest:
        return json_webhook(url, payload, config=ctx.config, application_id=application_id, now=ctx.clock())

    return render
