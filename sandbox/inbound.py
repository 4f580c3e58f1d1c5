"""Inject an inbound message, as if a phone had texted a Vonage number.

``POST /_sandbox/inbound`` (or ``Sandbox.inject_inbound``) with
``{from, to, text, channel?, api?, format?, parts?, shuffle?, duplicate?, url?}``:

- ``api="sms"`` (default): the SMS API inbound webhook (vonage-api.md §2.2), one webhook per
  part with ``concat``, ``concat-ref``, ``concat-total``, ``concat-part`` and its own
  ``messageId`` when the text is long (or ``parts`` is given); signed with
  ``timestamp``/``nonce``/``sig`` when SMS signing is on; in ``format`` GET, POST or POST-JSON.
- ``api="messages"``: one Messages API inbound JSON (§6.1), already reassembled
  (``sms.num_messages``), signed with an HS256 bearer JWT.

``{answer: {message_uuid, choice}, url?}`` makes the phone answer an interactive message the
sandbox accepted: a WhatsApp reply button or list row (by its ``id``), an RCS suggestion (by its
``postback_data``) or a template quick-reply button (by its text); the webhook is the Messages API
inbound ``reply`` (or ``button``) with ``context.message_uuid`` naming the message answered.

``shuffle`` delivers the parts out of order (seeded, and never in order), ``duplicate``
delivers each webhook twice. The answer lists the ids sent so a test can assert on them.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from sandbox.config import WEBHOOK_FORMATS
from sandbox.context import SandboxContext
from sandbox.encoding import is_gsm7, split_even, split_parts
from sandbox.faults import ActiveFaults
from sandbox.state import iso_time
from sandbox.webhook_requests import json_webhook, sms_api_webhook
from sandbox.webhooks import Delivery, OutgoingRequest

__all__ = ["InboundError", "inject_inbound"]

MESSAGES_CHANNELS = ("sms", "mms", "whatsapp", "messenger", "viber_service", "rcs")
INBOUND_SMS_PRICE = "0.0057"  # what Vonage reports for a received SMS in `usage` (illustrative)


class InboundError(ValueError):
    """The injection request is not usable (missing field, unknown option, no URL configured)."""


def inject_inbound(ctx: SandboxContext, spec: dict[str, Any], faults: ActiveFaults | None = None) -> dict[str, Any]:
    """Queue the inbound webhook(s) described by ``spec``; return what was sent."""
    faults = faults or ActiveFaults()
    if spec.get("answer") is not None:
        spec = _answer_spec(ctx, spec)
    for name in ("from", "to", "text"):
        if not isinstance(spec.get(name), str) or not spec[name]:
            raise InboundError(f"{name} is required (a non-empty string)")
    api = spec.get("api") or "sms"
    channel = spec.get("channel") or "sms"
    url = spec.get("url") or ctx.config.inbound_webhook_url
    if not url:
        raise InboundError("no inbound webhook URL: set inbound_webhook_url or pass url")
    if api == "sms":
        if channel != "sms":
            raise InboundError("the SMS API only carries channel sms; use api=messages for other channels")
        deliveries, result = _sms_api(ctx, spec, url)
    elif api == "messages":
        if channel not in MESSAGES_CHANNELS:
            raise InboundError(f"channel must be one of {', '.join(MESSAGES_CHANNELS)}")
        deliveries, result = _messages_api(ctx, spec, url, channel)
    else:
        raise InboundError("api must be sms or messages")
    if spec.get("shuffle") and len(deliveries) > 1:
        shuffled = ctx.faults.shuffle(deliveries)
        deliveries = shuffled if shuffled != deliveries else list(reversed(deliveries))
    sent = ctx.dispatcher.submit(
        deliveries,
        delay=faults.value("webhook_delay", ctx.config.delivery_delay),
        duplicate=bool(spec.get("duplicate")) or faults.has("duplicate"),
        reorder=faults.has("reorder"),
        early=faults.has("early_receipt"),
    )
    result["delivery_ids"] = [delivery.id for delivery in sent]
    result["order"] = [delivery.ref.get("message_id") or delivery.ref.get("message_uuid") for delivery in sent]
    ctx.state.record_inbound(
        {
            "from": spec["from"].lstrip("+"),
            "to": spec["to"].lstrip("+"),
            "text": spec["text"],
            "api": api,
            "channel": channel,
            "delivery_ids": list(result["delivery_ids"]),
            "received_at": iso_time(ctx.clock()),
        }
    )
    return result


def _sms_api(ctx: SandboxContext, spec: dict[str, Any], url: str) -> tuple[list[Delivery], dict[str, Any]]:
    fmt = str(spec.get("format") or ctx.config.webhook_format).upper()
    if fmt not in WEBHOOK_FORMATS:
        raise InboundError(f"format must be one of {', '.join(WEBHOOK_FORMATS)}")
    text: str = spec["text"]
    kind = "text" if is_gsm7(text) else "unicode"
    if spec.get("parts") is not None:
        try:
            count = int(spec["parts"])
        except (TypeError, ValueError) as exc:
            raise InboundError("parts must be a whole number") from exc
        if not 1 <= count <= max(1, len(text)):
            raise InboundError("parts must be between 1 and the length of the text")
        pieces = split_even(text, count)
    else:
        pieces = split_parts(text, kind)
    concat_ref = str(secrets.randbelow(255) + 1) if len(pieces) > 1 else None
    message_ids = [secrets.token_hex(8).upper() for _ in pieces]
    deliveries = []
    for index, (piece, message_id) in enumerate(zip(pieces, message_ids, strict=True), start=1):
        fields = {
            "msisdn": spec["from"].lstrip("+"),
            "to": spec["to"].lstrip("+"),
            "messageId": message_id,
            "text": piece,
            "type": kind,
            "keyword": (piece.split() or [""])[0].upper(),
            "api-key": ctx.config.api_key,
        }
        if concat_ref is not None:
            fields["concat"] = "true"
            fields["concat-ref"] = concat_ref
            fields["concat-total"] = str(len(pieces))
            fields["concat-part"] = str(index)
        deliveries.append(
            Delivery(
                kind="sms-inbound",
                url=url,
                render=_sms_renderer(ctx, url, fields, fmt),
                ref={"message_id": message_id, "part": index},
                format=fmt,
            )
        )
    result = {"api": "sms", "format": fmt, "message_ids": message_ids, "concat_ref": concat_ref, "parts": len(pieces)}
    return deliveries, result


def _messages_api(
    ctx: SandboxContext, spec: dict[str, Any], url: str, channel: str
) -> tuple[list[Delivery], dict[str, Any]]:
    text: str = spec["text"]
    message_uuid = str(uuid.uuid4())
    payload: dict[str, Any] = {
        "channel": channel,
        "message_uuid": message_uuid,
        "to": spec["to"].lstrip("+"),
        "from": spec["from"].lstrip("+"),
        "timestamp": iso_time(ctx.clock()),
        "message_type": "text",
        "text": text,
        "context_status": "none",
    }
    if spec.get("reply") is not None or spec.get("button") is not None:
        kind = "reply" if spec.get("reply") is not None else "button"
        del payload["text"]
        payload["message_type"] = kind
        payload[kind] = spec[kind]
        payload["context_status"] = "available" if channel == "whatsapp" else "none"
        if channel == "whatsapp":
            # WhatsApp names the message answered; RCS sends no context (its context_status is
            # always "none", vonage-api.md 6.1): the postback_data is what identifies the choice.
            payload["context"] = {"message_uuid": spec["in_reply_to"], "message_from": spec["to"].lstrip("+")}
    if channel == "sms":
        parts = spec.get("parts") or len(split_parts(text, "text" if is_gsm7(text) else "unicode"))
        payload["sms"] = {"num_messages": str(parts), "keyword": (text.split() or [""])[0].upper()}
        payload["usage"] = {"currency": "EUR", "price": INBOUND_SMS_PRICE}
        payload["origin"] = {"network_code": ctx.config.network_code}
    elif channel == "whatsapp":
        payload["profile"] = {"name": spec.get("profile_name") or "Sandbox User"}
    application_id = ctx.config.application_id

    def render() -> OutgoingRequest:
        return json_webhook(url, payload, config=ctx.config, application_id=application_id, now=ctx.clock())

    delivery = Delivery(
        kind="message-inbound", url=url, render=render, ref={"message_uuid": message_uuid}, format="POST-JSON"
    )
    return [delivery], {"api": "messages", "channel": channel, "message_uuid": message_uuid}


def _answer_spec(ctx: SandboxContext, spec: dict[str, Any]) -> dict[str, Any]:
    """The inbound spec of a phone answering an interactive message the sandbox accepted."""
    answer = spec["answer"]
    if not isinstance(answer, dict) or not isinstance(answer.get("message_uuid"), str) or not isinstance(answer.get("choice"), str):
        raise InboundError("answer needs message_uuid (the message answered) and choice (an option's id)")
    sent = _sent_message(ctx, answer["message_uuid"])
    if sent is None:
        raise InboundError("answer: no message with this message_uuid was accepted")
    channel, choice = sent["channel"], answer["choice"]
    reply, button = _find_option(sent, choice)
    if reply is None and button is None:
        raise InboundError(f"answer: the message offers no option {choice!r}")
    return {
        "from": sent["to"],
        "to": sent["from"],
        "text": (reply or button or {}).get("title") or (button or {}).get("text") or choice,
        "api": "messages",
        "channel": channel,
        "url": spec.get("url"),
        "reply": reply,
        "button": button,
        "in_reply_to": answer["message_uuid"],
    }


def _sent_message(ctx: SandboxContext, message_uuid: str) -> dict[str, Any] | None:
    for record in ctx.state.messages():
        if record.get("api") == "messages" and message_uuid in (record.get("message_ids") or [record.get("id")]):
            return record
    return None


def _find_option(sent: dict[str, Any], choice: str) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    """(reply, button): the reply object for an interactive/RCS option, or the button of a template."""
    fields = sent.get("item_fields") or sent.get("fields") or {}
    interactive = ((fields.get("custom") or {}).get("interactive") or {}) if isinstance(fields.get("custom"), dict) else {}
    action = interactive.get("action") or {}
    for button in action.get("buttons") or []:
        reply = button.get("reply") or {}
        if reply.get("id") == choice:
            return {"id": reply["id"], "title": reply.get("title", "")}, None
    for section in action.get("sections") or []:
        for row in section.get("rows") or []:
            if row.get("id") == choice:
                found = {"id": row["id"], "title": row.get("title", "")}
                if row.get("description"):
                    found["description"] = row["description"]
                return found, None
    suggestions = list(fields.get("suggestions") or [])
    for card in [fields.get("card") or {}, *((fields.get("carousel") or {}).get("cards") or [])]:
        suggestions.extend(card.get("suggestions") or [])
    for suggestion in suggestions:
        if suggestion.get("postback_data") == choice:
            return {"id": choice, "title": suggestion.get("text", "")}, None
    if fields.get("message_type") == "template":
        return None, {"payload": choice, "text": choice, "subtype": "quick_reply"}
    return None, None


def _sms_renderer(
    ctx: SandboxContext, url: str, fields: dict[str, str], fmt: str
) -> Callable[[], OutgoingRequest]:
    def render() -> OutgoingRequest:
        now = ctx.clock()
        # message-timestamp is when Vonage started pushing this webhook (§2.2).
        moment = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        return sms_api_webhook(url, {**fields, "message-timestamp": moment}, fmt=fmt, config=ctx.config, now=now)

    return render
