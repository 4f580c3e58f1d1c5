"""The Messages API: ``POST /v1/messages`` and its status webhooks (vonage-api.md §5, §6.2).

Answers 202 ``{"message_uuid"}`` or a problem: 401 (credentials, expired JWT), 402 (low
balance), 422 (invalid JSON, channel, message type, sender, recipient, text), 429 (rate).
Then sends signed status webhooks: ``submitted``, ``delivered`` and, on WhatsApp,
Messenger, Viber and RCS, ``read``. A trial account accepts a message to a number off its
allow-list and then reports it ``rejected`` with error 1160, as Vonage does.

``failover`` (vonage-api.md 5.3, 6.2): the answer adds ``workflow_id``; the items are tried in
order, an item rejected (trial allow-list, or a number in the ``no_whatsapp`` toggle for a
WhatsApp item, error 1300) gets its ``rejected`` status and the next item is sent; each item has
its own ``message_uuid`` and every status carries ``workflow{workflow_id, items_number,
items_total}``. Only the item that goes out is charged.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.context import SandboxContext
from sandbox.credentials import CredentialError, application_caller
from sandbox.encoding import is_gsm7, split_parts
from sandbox.rich import rich_problems
from sandbox.responses import (
    MESSAGES_ERRORS,
    ApiResult,
    invalid_params,
    json_response,
    low_balance,
    problem,
    rate_limited,
    unauthorized,
)
from sandbox.state import iso_time
from sandbox.webhook_requests import json_webhook
from sandbox.webhooks import Delivery, OutgoingRequest
from sandbox.wire import read_json

__all__ = ["CHANNEL_TYPES", "handle_messages", "status_payload", "validate_message"]

# Message types each channel takes (§5.4).
CHANNEL_TYPES: dict[str, frozenset[str]] = {
    "sms": frozenset({"text"}),
    "mms": frozenset({"text", "image", "vcard", "audio", "video", "file", "content"}),
    "whatsapp": frozenset(
        {"text", "image", "audio", "video", "file", "template", "location", "sticker", "reaction", "custom"}
    ),
    "messenger": frozenset({"text", "image", "audio", "video", "file"}),
    "viber_service": frozenset({"text", "image", "video", "file"}),
    "rcs": frozenset({"text", "image", "video", "file", "card", "carousel", "custom"}),
}
TEXT_LIMITS = {"sms": 3200, "mms": 3000, "whatsapp": 4096, "messenger": 640, "viber_service": 1000, "rcs": 3072}
READ_CHANNELS = frozenset({"whatsapp", "messenger", "viber_service", "rcs"})
PRICED_CHANNELS = frozenset({"sms", "mms", "messenger", "viber_service"})  # carry `usage` in status webhooks
_PHONE = re.compile(r"[0-9]{7,15}")
_BSUID = re.compile(r"[A-Z]{2}\.[0-9]{5,30}")  # WhatsApp business-scoped user id
_MEDIA_TYPES = frozenset({"image", "audio", "video", "file", "vcard", "sticker"})
TRIAL_ERROR = {"code": "1160", "detail": "Non White-listed Destination - rejected"}
# A WhatsApp message to a number with no WhatsApp account (the sandbox's ``no_whatsapp`` toggle).
NO_WHATSAPP_ERROR = {"code": "1300", "detail": "Not part of the provider network: the number has no WhatsApp account"}


def handle_messages(ctx: SandboxContext, request: Request) -> ApiResult:
    """Handle ``POST /v1/messages``."""
    config = ctx.config
    now = ctx.clock()
    try:
        caller = application_caller(
            config, request.headers.get("Authorization"), public_key=ctx.public_key(), now=now
        )
    except CredentialError as exc:
        return ApiResult(unauthorized(expired=exc.expired), outcome="401")
    decision = ctx.state.rates.check("messages", config.rate_limit, now)
    if not decision.allowed:
        return ApiResult(rate_limited(decision, now), outcome="429", auth=caller.method)
    body = read_json(request)
    if not isinstance(body, dict):
        bad_json = problem(
            422, f"{MESSAGES_ERRORS}#invalid-json", "Invalid JSON", "The request body did not contain valid JSON"
        )
        return ApiResult(bad_json, outcome="422", auth=caller.method)
    refusal = validate_message(body)
    if refusal is not None:
        return ApiResult(refusal, outcome="422", auth=caller.method)

    # A failover workflow: the items are tried in order; an item Vonage rejects (trial allow-list,
    # a number with no WhatsApp) passes to the next. Only the item that goes out is charged.
    items = [body, *(body.get("failover") or [])]
    chosen: int | None = None
    rejections: list[dict[str, str]] = []
    for index, item in enumerate(items):
        reason = _rejection(config, item)
        if reason is None:
            chosen = index
            break
        rejections.append(reason)
    delivered_item = items[chosen] if chosen is not None else body
    channel = delivered_item["channel"]
    parts = _sms_parts(delivered_item) if channel == "sms" else 1
    price = config.sms_price * parts if channel in ("sms", "mms") else config.ott_price
    if chosen is not None and ctx.state.try_charge(price) is None:
        return ApiResult(low_balance(), outcome="402", auth=caller.method)

    message_uuid = str(uuid.uuid4())
    answer: dict[str, str] = {"message_uuid": message_uuid}
    if len(items) > 1:
        answer["workflow_id"] = str(uuid.uuid4())
    # Each item of a workflow is its own message with its own uuid; the first is the one answered.
    uuids = [message_uuid] + [str(uuid.uuid4()) for _ in items[1:]]
    attempted = len(items) if chosen is None else chosen + 1
    trial_rejected = chosen is None and bool(rejections) and rejections[0]["code"] == TRIAL_ERROR["code"]
    ctx.state.record_message(
        {
            "api": "messages",
            "id": message_uuid,
            "message_ids": uuids[:attempted],
            "channel": channel,
            "message_type": delivered_item["message_type"],
            "to": body["to"],
            "from": delivered_item["from"],
            "text": delivered_item.get("text"),
            "parts": parts,
            "client_ref": body.get("client_ref"),
            "auth": caller.method,
            "content_type": request.content_type,
            "fields": body,
            "item_fields": delivered_item,
            "workflow_id": answer.get("workflow_id"),
            "delivered_item": None if chosen is None else chosen + 1,
            "received_at": iso_time(now),
            "price": "0" if chosen is None else _usage_price(price),
            "trial_rejected": trial_rejected,
        }
    )
    if chosen is not None:
        ctx.state.add_to_inbox(
            body["to"],
            {
                "kind": "message",
                "api": "messages",
                "channel": channel,
                "from": delivered_item["from"],
                "text": delivered_item.get("text") or f"[{delivered_item['message_type']}]",
                "message_ids": [uuids[chosen]],
            },
        )
    deliveries: list[Delivery] = []
    step = 0
    for index in range(attempted):
        item = items[index]
        item_answer = {**answer, "message_uuid": uuids[index]}
        if index < len(rejections) and (chosen is None or index < chosen):
            statuses, error = ["rejected"], rejections[index]
        else:
            statuses, error = ["submitted", "delivered"], None
            if item["channel"] in READ_CHANNELS:
                statuses.append("read")
        item_price = config.sms_price * (_sms_parts(item) if item["channel"] == "sms" else 1) if item["channel"] in (
            "sms", "mms") else config.ott_price
        deliveries.extend(
            _status_webhooks(
                ctx, item, item_answer, statuses, parts, item_price, caller.application_id, now + step / 1000,
                workflow=(index + 1, len(items)) if len(items) > 1 else None, error=error, client_ref=body.get("client_ref"),
            )
        )
        step += len(statuses)
    return ApiResult(json_response(answer, status=202), deliveries, outcome="202", auth=caller.method)


def _rejection(config: Any, item: dict[str, Any]) -> dict[str, str] | None:
    """Why Vonage would reject this item after accepting the request (None: it goes out)."""
    if config.trial and item["to"] not in config.allow_list:
        return TRIAL_ERROR
    if item["channel"] == "whatsapp" and item["to"] in config.no_whatsapp:
        return NO_WHATSAPP_ERROR
    return None


def validate_message(body: dict[str, Any]) -> Response | None:
    """A 422 problem response for the first thing wrong with a message body, or None."""
    channel = body.get("channel")
    if channel not in CHANNEL_TYPES:
        return invalid_params(
            [("channel", f"must be one of {', '.join(sorted(CHANNEL_TYPES))}")],
            type_=f"{MESSAGES_ERRORS}#1100",
            title="Unsupported channel",
        )
    message_type = body.get("message_type")
    if message_type not in CHANNEL_TYPES[channel]:
        return invalid_params(
            [("message_type", f"{channel} takes {', '.join(sorted(CHANNEL_TYPES[channel]))}")],
            type_=f"{MESSAGES_ERRORS}#1140",
            title="Invalid message type",
        )
    problems: list[tuple[str, str]] = []
    to = body.get("to")
    if channel == "messenger":
        if not isinstance(to, str) or not 1 <= len(to) <= 50:
            problems.append(("to", "must be a page-scoped ID of 1-50 characters"))
    elif not isinstance(to, str) or not (_PHONE.fullmatch(to) or (channel == "whatsapp" and _BSUID.fullmatch(to))):
        problems.append(("to", "must be an E.164 number without + or 00 (7-15 digits)"))
    sender = body.get("from")
    if not isinstance(sender, str) or not sender.strip():
        problems.append(("from", "is required"))
    if message_type == "text":
        text = body.get("text")
        if not isinstance(text, str) or not text:
            problems.append(("text", "is required"))
        elif len(text) > TEXT_LIMITS[channel]:
            problems.append(("text", f"must be at most {TEXT_LIMITS[channel]} characters on {channel}"))
    elif message_type in _MEDIA_TYPES:
        media = body.get(message_type)
        if not isinstance(media, dict) or not (media.get("url") or media.get("id")):
            problems.append((message_type, "must be an object with a url"))
    elif message_type == "template" and not isinstance(body.get("template"), dict):
        problems.append(("template", "must be an object with a name"))
    problems.extend(rich_problems(body, channel, message_type))
    failover = body.get("failover")
    if failover is not None:
        if not isinstance(failover, list) or not failover:
            problems.append(("failover", "must be a non-empty array of message objects"))
        else:
            for index, item in enumerate(failover):
                if not isinstance(item, dict) or "failover" in item:
                    problems.append((f"failover[{index}]", "must be a message object without its own failover"))
                    continue
                refusal = validate_message(item)
                if refusal is not None:
                    listed = json.loads(refusal.get_data(as_text=True)).get("invalid_parameters") or [
                        {"name": "message_type", "reason": "is not valid on this channel"}
                    ]
                    problems.extend((f"failover[{index}].{p['name']}", p["reason"]) for p in listed)
    return invalid_params(problems) if problems else None


def status_payload(
    body: dict[str, Any],
    answer: dict[str, str],
    status: str,
    *,
    at: float,
    parts: int,
    price: Decimal,
    network_code: str,
    workflow: tuple[int, int] | None = None,
    error: dict[str, str] | None = None,
    client_ref: str | None = None,
) -> dict[str, Any]:
    """A Messages API status webhook body (§6.2); ``workflow`` is (this item, items in all)."""
    payload: dict[str, Any] = {
        "message_uuid": answer["message_uuid"],
        "to": body["to"],
        "from": body["from"],
        "timestamp": iso_time(at),
        "status": status,
        "channel": body["channel"],
    }
    if client_ref or body.get("client_ref"):
        payload["client_ref"] = client_ref or body["client_ref"]
    if status == "rejected":
        reason = error or TRIAL_ERROR
        payload["error"] = {
            "type": f"https://developer.vonage.com/api-errors/messages#{reason['code']}",
            "title": reason["code"],
            "detail": reason["detail"],
            "instance": str(uuid.uuid4()),
        }
    elif body["channel"] in PRICED_CHANNELS:
        payload["usage"] = {"currency": "EUR", "price": _usage_price(price)}
    if body["channel"] == "sms":
        payload["sms"] = {"count_total": str(parts)}
        payload["destination"] = {"network_code": network_code}
    if "workflow_id" in answer:
        number, total = workflow or (1, 1 + len(body.get("failover") or []))
        payload["workflow"] = {"workflow_id": answer["workflow_id"], "items_number": str(number), "items_total": str(total)}
    return payload


def _status_webhooks(
    ctx: SandboxContext,
    body: dict[str, Any],
    answer: dict[str, str],
    statuses: list[str],
    parts: int,
    price: Decimal,
    application_id: str | None,
    now: float,
    *,
    workflow: tuple[int, int] | None = None,
    error: dict[str, str] | None = None,
    client_ref: str | None = None,
) -> list[Delivery]:
    url = body.get("webhook_url") or ctx.config.status_webhook_url
    if not url:
        return []
    deliveries = []
    for index, status in enumerate(statuses):
        # Each status happened a millisecond after the previous one, so a receiver can order them.
        payload = status_payload(
            body, answer, status, at=now + index / 1000, parts=parts, price=price, network_code=ctx.config.network_code,
            workflow=workflow, error=error, client_ref=client_ref,
        )
        deliveries.append(
            Delivery(
                kind="message-status",
                url=url,
                render=_renderer(ctx, url, payload, application_id),
                ref={"message_uuid": answer["message_uuid"], "status": status},
                format="POST-JSON",
            )
        )
    return deliveries


def _renderer(
    ctx: SandboxContext, url: str, payload: dict[str, Any], application_id: str | None
) -> Callable[[], OutgoingRequest]:
    def render() -> OutgoingRequest:
        return json_webhook(url, payload, config=ctx.config, application_id=application_id, now=ctx.clock())

    return render


def _sms_parts(body: dict[str, Any]) -> int:
    """Parts an SMS text costs: ``sms.encoding_type`` auto (default) picks UCS-2 for non-GSM text."""
    text = body.get("text") or ""
    options = body.get("sms")
    encoding = options.get("encoding_type", "auto") if isinstance(options, dict) else "auto"
    if encoding not in ("text", "unicode"):
        encoding = "text" if is_gsm7(text) else "unicode"
    return len(split_parts(text, encoding))


def _usage_price(price: Decimal) -> str:
    """Messages API prices are short decimals, e.g. ``0.0333``."""
    return format(price.normalize(), "f")
