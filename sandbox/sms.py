"""The SMS API: ``POST /sms/json`` and its delivery receipts (vonage-api.md §1, §3).

Answers as Vonage does: HTTP 200 with string-valued JSON, one ``messages`` entry per
part of a long text (152 GSM-7 / 66 UCS-2 characters a part), each with its own
``message-id`` and price. Failures are entries with ``status`` and ``error-text``:
1 throttled, 2 missing parameter, 3 invalid parameter, 4 bad credentials, 9 no credit
(per part, so a send can partly fail), 12 too long, 14 bad signature, 23 bad callback,
29 trial destination not allowed, 32 ``sig`` with ``api_secret``.

Each accepted part gets a ``delivered`` receipt, sent to the ``callback`` field or the
configured status webhook in the configured format (GET, POST or POST-JSON).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request

from sandbox.context import SandboxContext
from sandbox.credentials import CredentialError, sms_api_caller
from sandbox.encoding import MAX_TEXT_CHARS, split_parts
from sandbox.responses import ApiResult, json_response
from sandbox.state import iso_time, money
from sandbox.webhook_requests import sms_api_webhook
from sandbox.webhooks import Delivery, OutgoingRequest
from sandbox.wire import read_fields, redact_fields

__all__ = ["handle_sms", "sms_error", "validate_sms"]

_PHONE = re.compile(r"[0-9]{7,15}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_TYPES = ("text", "unicode", "binary")
_BOOLEAN = ("true", "false", "1", "0")
MAX_BINARY_OCTETS = 140


def handle_sms(ctx: SandboxContext, request: Request) -> ApiResult:
    """Handle ``POST /sms/json``."""
    config = ctx.config
    now = ctx.clock()
    fields = read_fields(request)
    try:
        caller = sms_api_caller(config, fields, request.headers.get("Authorization"), now=now)
    except CredentialError as exc:
        return sms_error(exc.status, exc.text)
    if not ctx.state.rates.check("sms", config.rate_limit, now).allowed:
        return sms_error("1", "Throttled", auth=caller.method)
    refusal = validate_sms(fields)
    if refusal is not None:
        return sms_error(*refusal, auth=caller.method)
    to = fields["to"]
    if config.trial and to not in config.allow_list:
        return sms_error("29", "Non White-listed Destination - rejected", auth=caller.method)

    kind = fields.get("type") or "text"
    parts = [fields.get("body", "")] if kind == "binary" else split_parts(fields["text"], kind)
    entries: list[dict[str, str]] = []
    accepted: list[str] = []
    for _ in parts:
        remaining = ctx.state.try_charge(config.sms_price)
        if remaining is None:
            entries.append({"status": "9", "error-text": "Quota Exceeded - rejected"})
            continue
        message_id = str(uuid.uuid4())
        accepted.append(message_id)
        entry = {
            "to": to,
            "message-id": message_id,
            "status": "0",
            "remaining-balance": money(remaining),
            "message-price": money(config.sms_price),
            "network": config.network_code,
        }
        for name in ("client-ref", "account-ref"):
            if fields.get(name):
                entry[name] = fields[name]
        entries.append(entry)
    body = {"message-count": str(len(parts)), "messages": entries}
    if not accepted:
        return ApiResult(json_response(body), outcome="9", auth=caller.method)

    ctx.state.record_message(
        {
            "api": "sms",
            "id": accepted[0],
            "message_ids": accepted,
            "to": to,
            "from": fields["from"],
            "text": fields.get("text"),
            "type": kind,
            "parts": len(parts),
            "client_ref": fields.get("client-ref"),
            "auth": caller.method,
            "content_type": request.content_type,
            "fields": redact_fields(fields),
            "received_at": iso_time(now),
            "price": money(config.sms_price * len(accepted)),
        }
    )
    inbox_entry = {"kind": "sms", "api": "sms", "channel": "sms", "from": fields["from"], "message_ids": accepted}
    ctx.state.add_to_inbox(to, {**inbox_entry, "text": fields.get("text", "")})
    return ApiResult(json_response(body), _receipts(ctx, fields, accepted), outcome="0", auth=caller.method)


def sms_error(status: str, text: str, *, auth: str | None = None) -> ApiResult:
    """A refused send: HTTP 200 with one entry carrying ``status`` and ``error-text``."""
    body = {"message-count": "1", "messages": [{"status": status, "error-text": text}]}
    return ApiResult(json_response(body), outcome=status, auth=auth)


def validate_sms(fields: dict[str, str]) -> tuple[str, str] | None:
    """The first problem with the send parameters as ``(status, error-text)``, or None."""
    for name in ("from", "to"):
        if not fields.get(name):
            return "2", f"Missing {name} param"
    kind = fields.get("type") or "text"
    if kind not in _TYPES:
        return "3", "Invalid type param"
    if kind == "binary":
        body, udh = fields.get("body", ""), fields.get("udh", "")
        if not body:
            return "2", "Missing body param"
        if not _HEX.fullmatch(body) or not _HEX.fullmatch(udh):
            return "3", "Invalid body param: must be hex"
        if (len(body) + len(udh)) // 2 > MAX_BINARY_OCTETS:
            return "12", "Message too long"
    elif not fields.get("text"):
        return "2", "Missing Message Text"
    if not _PHONE.fullmatch(fields["to"]):
        return "3", "Invalid to param: expected 7-15 digits, no + or 00"
    sender = fields["from"].replace(" ", "")
    if not sender or len(sender) > (15 if sender.isdigit() else 11) or not sender.isalnum():
        return "3", "Invalid from param"
    if kind != "binary" and len(fields["text"]) > MAX_TEXT_CHARS:
        return "12", "Message too long"
    if len(fields.get("client-ref", "")) > 100:
        return "3", "Invalid client-ref param: at most 100 characters"
    callback = fields.get("callback")
    if callback is not None and (len(callback) > 100 or not callback.startswith(("http://", "https://"))):
        return "23", "Invalid Callback Url"
    for name, low, high in (("ttl", 20000, 604800000), ("message-class", 0, 3), ("protocol-id", 0, 255)):
        if name in fields and not (fields[name].isdigit() and low <= int(fields[name]) <= high):
            return "3", f"Invalid {name} param"
    if fields.get("status-report-req", "true").lower() not in _BOOLEAN:
        return "3", "Invalid status-report-req param"
    return None


def _receipts(ctx: SandboxContext, fields: dict[str, str], message_ids: list[str]) -> list[Delivery]:
    """One ``delivered`` receipt per accepted part, unless no receipt was asked for or configured."""
    if fields.get("status-report-req", "true").lower() in ("false", "0"):
        return []
    url = fields.get("callback") or ctx.config.status_webhook_url
    if not url:
        return []
    fmt = ctx.config.webhook_format
    return [
        Delivery(
            kind="sms-dlr",
            url=url,
            render=_dlr_renderer(ctx, url, fields, message_id, fmt),
            ref={"message_id": message_id, "status": "delivered"},
            format=fmt,
        )
        for message_id in message_ids
    ]


def _dlr_renderer(
    ctx: SandboxContext, url: str, fields: dict[str, str], message_id: str, fmt: str
) -> Callable[[], OutgoingRequest]:
    def render() -> OutgoingRequest:
        config = ctx.config
        now = ctx.clock()
        moment = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc)
        receipt: dict[str, Any] = {
            "msisdn": fields["to"],  # the recipient (sic, Vonage's naming)
            "to": fields["from"],  # the sender ID used
            "network-code": config.network_code,
            "messageId": message_id,
            "price": money(config.sms_price),
            "status": "delivered",
            "scts": moment.strftime("%y%m%d%H%M"),
            "err-code": "0",
            "api-key": config.api_key,
            "message-timestamp": moment.strftime("%Y-%m-%d %H:%M:%S"),
        }
        if fields.get("client-ref"):
            receipt["client-ref"] = fields["client-ref"]
        return sms_api_webhook(url, receipt, fmt=fmt, config=config, now=now)

    return render

