"""Every Vonage webhook format, parsed into a few normalised shapes.

- SMS API inbound SMS (``msisdn``, ``to``, ``messageId``, ``text``, ``concat-*``: flat strings,
  from a GET query, a POST form or a POST JSON body) -> :class:`InboundEvent`.
- Messages API inbound message (JSON; ``channel``, ``message_uuid``, ``from``, ``to``,
  ``message_type`` and one object per type: text, image/audio/video/file/vcard/sticker,
  MMS ``content[]``, location, reply, button, reaction, contacts, order...) -> :class:`InboundEvent`.
- SMS API delivery receipt (``messageId``, ``status``, ``err-code``, ``price``...) and Messages API
  status (``message_uuid``, ``status``, ``error``, ``usage``...) -> ``StatusEvent`` of
  ``shared.messages.records``.
- Verify v2 event and summary callbacks are recognised here (:func:`classify`) and applied by
  ``shared.verify.callbacks``.

Field names and meanings: vonage-api.md sections 2, 3, 6.1, 6.2 and 9.4. A payload that is not
one of these raises ``BadRequestError`` (400, code ``invalid_webhook``) naming the missing field,
never quoting a value (values may be message bodies).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import BadRequestError
from shared.messages.records import StatusEvent
from shared.webhooks.codes import describe_dlr_error, describe_messages_error

__all__ = [
    "ConcatInfo",
    "InboundEvent",
    "KIND_MESSAGES_INBOUND",
    "KIND_MESSAGES_STATUS",
    "KIND_SMS_INBOUND",
    "KIND_SMS_RECEIPT",
    "KIND_VERIFY",
    "MEDIA_TYPES",
    "classify",
    "normalise_address",
    "parse_inbound",
    "parse_messages_inbound",
    "parse_messages_status",
    "parse_sms_inbound",
    "parse_sms_receipt",
    "parse_status",
    "raw_json",
]

KIND_SMS_INBOUND = "sms-inbound"
KIND_SMS_RECEIPT = "sms-receipt"
KIND_MESSAGES_INBOUND = "messages-inbound"
KIND_MESSAGES_STATUS = "messages-status"
KIND_VERIFY = "verify-callback"

# Message types whose object is a media attachment {url, caption?, name?}.
MEDIA_TYPES = ("image", "audio", "video", "file", "vcard", "sticker")
# Channels whose inbound `from` is the user's phone number (Messages spec: FromNumber). Messenger
# uses page-scoped ids both ways.
_PHONE_CHANNELS = frozenset({"sms", "mms", "whatsapp", "viber", "rcs"})
# Channels whose inbound `to` is our phone number. Viber's `to` is our Viber service id (spec:
# ToId, e.g. "0123456789") and RCS's our agent id: kept exactly as the channel gives them.
_PHONE_RECIPIENT_CHANNELS = frozenset({"sms", "mms", "whatsapp"})
# The Messages API calls Viber "viber_service"; we use the short name everywhere.
_CHANNEL_ALIASES = {"viber_service": "viber"}
_PHONE_LIKE = re.compile(r"\+?[0-9]{6,15}")
_SMS_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})")
_MAX_DEPTH = 8


@dataclass(frozen=True)
class ConcatInfo:
    """Where one part of a long SMS (SMS API) belongs: reference, total parts, this part (1-based)."""

    ref: str
    total: int
    part: int


@dataclass(frozen=True)
class InboundEvent:
    """One inbound webhook, normalised: a whole message, or one part of a long SMS (``concat``).

    ``sender`` and ``recipient`` are E.164 (``+`` and digits) when they are phone numbers,
    else the channel's own id. ``timestamp`` is Vonage's time of the message (ISO 8601 UTC).
    ``raw`` is the payload as received, as JSON text (kept for debugging, never logged).
    """

    api: str  # "sms" (SMS API) or "messages" (Messages API)
    vonage_id: str
    channel: str
    sender: str
    recipient: str
    message_type: str
    text: str | None
    timestamp: str | None
    raw: str
    media: tuple[dict[str, Any], ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    concat: ConcatInfo | None = None

    @property
    def dedupe_key(self) -> str:
        """One key per Vonage delivery: the SMS API ``messageId`` (per part) or ``message_uuid``."""
        return f"in:{self.api}:{self.vonage_id}"


# ---- classification --------------------------------------------------------------------


def classify(fields: Mapping[str, Any]) -> str:
    """Which webhook this is, from its fields; raises BadRequestError when it is none of them."""
    if "message_uuid" in fields:
        return KIND_MESSAGES_STATUS if "status" in fields else KIND_MESSAGES_INBOUND
    if "request_id" in fields and fields.get("type") in ("event", "summary"):
        return KIND_VERIFY
    if "messageId" in fields or "message-id" in fields or "msisdn" in fields:
        # A receipt has a status; an inbound SMS never does.
        return KIND_SMS_RECEIPT if "status" in fields else KIND_SMS_INBOUND
    if "message" in fields and "from" in fields:  # Messages API v0.1 shape
        return KIND_MESSAGES_INBOUND
    raise BadRequestError(
        "the payload is not a Vonage webhook: expected messageId/msisdn (SMS API), message_uuid "
        "(Messages API) or request_id with type event/summary (Verify v2)",
        code="invalid_webhook",
    )


def parse_inbound(fields: Mapping[str, Any]) -> InboundEvent:
    """An inbound message in any format; a status or Verify payload is refused with 400."""
    kind = classify(fields)
    if kind == KIND_SMS_INBOUND:
        return parse_sms_inbound(fields)
    if kind == KIND_MESSAGES_INBOUND:
        return parse_messages_inbound(fields)
    raise BadRequestError(
        "this is a status webhook (delivery receipt, message status or Verify callback), not an "
        "inbound message: point Vonage's status URL at the status function",
        code="invalid_webhook",
    )


def parse_status(fields: Mapping[str, Any]) -> StatusEvent:
    """A delivery receipt or Messages status; an inbound message is refused with 400."""
    kind = classify(fields)
    if kind == KIND_SMS_RECEIPT:
        return parse_sms_receipt(fields)
    if kind == KIND_MESSAGES_STATUS:
        return parse_messages_status(fields)
    raise BadRequestError(
        "this is an inbound message, not a status webhook: point Vonage's inbound URL at the inbound function",
        code="invalid_webhook",
    )


# ---- SMS API ---------------------------------------------------------------------------


def parse_sms_inbound(params: Mapping[str, Any]) -> InboundEvent:
    """An SMS API inbound SMS (vonage-api.md section 2.2); one part when ``concat`` fields are set."""
    msisdn = _required_str(params, "msisdn")
    to = _required_str(params, "to")
    vonage_id = _required_str(params, "messageId")
    message_type = _optional_str(params, "type") or "text"
    text = _optional_str(params, "text", strip=False)
    details: dict[str, Any] = {}
    for name, key in (("keyword", "keyword"), ("data", "data"), ("udh", "udh")):
        value = _optional_str(params, name, strip=False)
        if value:
            details[key] = value
    return InboundEvent(
        api="sms",
        vonage_id=vonage_id,
        channel="sms",
        sender=normalise_address(msisdn, phone=True),
        recipient=normalise_address(to, phone=True),
        message_type=message_type,
        text=text if text is not None or message_type == "binary" else "",
        timestamp=_sms_time(_optional_str(params, "message-timestamp")),
        raw=raw_json(params, drop=("sig",)),
        details=details,
        concat=_concat(params),
    )


def _concat(params: Mapping[str, Any]) -> ConcatInfo | None:
    ref = _optional_str(params, "concat-ref")
    total_text = _optional_str(params, "concat-total")
    part_text = _optional_str(params, "concat-part")
    flagged = (_optional_str(params, "concat") or "").lower() == "true"
    if not (flagged or ref or total_text or part_text):
        return None
    if not ref or not total_text or not part_text:
        raise BadRequestError(
            "a multipart SMS needs concat-ref, concat-total and concat-part", code="invalid_webhook"
        )
    try:
        total, part = int(total_text), int(part_text)
    except ValueError:
        raise BadRequestError("concat-total and concat-part must be whole numbers", code="invalid_webhook") from None
    if total < 1 or total > 255 or part < 1 or part > total:
        raise BadRequestError("concat-part must be between 1 and concat-total (at most 255)", code="invalid_webhook")
    if total == 1:
        return None  # a "long" message of one part is just a message
    return ConcatInfo(ref=ref, total=total, part=part)


def parse_sms_receipt(params: Mapping[str, Any]) -> StatusEvent:
    """An SMS API delivery receipt (vonage-api.md section 3): one part of one message."""
    vonage_id = _optional_str(params, "messageId") or _optional_str(params, "message-id")
    if not vonage_id:
        raise BadRequestError("the delivery receipt has no messageId", code="invalid_webhook")
    status = _required_str(params, "status").lower()
    error_code = _optional_str(params, "err-code")
    extra: dict[str, Any] = {"api": "sms"}
    for name, key in (
        ("network-code", "network_code"),
        ("scts", "scts"),
        ("client-ref", "client_ref"),
        ("msisdn", "recipient"),
        ("to", "sender"),
    ):
        value = _optional_str(params, name)
        if value:
            extra[key] = value
    return StatusEvent(
        vonage_id=vonage_id,
        status=status,
        # As sent: the dedupe key is built from it, and a retry carries the same value.
        timestamp=_optional_str(params, "message-timestamp") or _optional_str(params, "scts"),
        error_code=error_code,
        error_text=describe_dlr_error(error_code),
        price=_decimal_text(_optional_str(params, "price")),
        currency=None,  # the SMS API receipt does not say; the account currency applies
        source="sms",
        extra=extra,
    )


# ---- Messages API ----------------------------------------------------------------------


def parse_messages_inbound(payload: Mapping[str, Any]) -> InboundEvent:
    """A Messages API inbound message of any channel and type (vonage-api.md section 6.1)."""
    if isinstance(payload.get("message"), Mapping) and "channel" not in payload:
        return _parse_v01_inbound(payload)
    channel = _channel(payload)
    vonage_id = _required_str(payload, "message_uuid")
    sender = normalise_address(_address_field(payload, "from"), phone=channel in _PHONE_CHANNELS)
    # An RCS `to` is the agent id, a Viber `to` the service id: never phone numbers.
    recipient = normalise_address(_address_field(payload, "to"), phone=channel in _PHONE_RECIPIENT_CHANNELS)
    message_type = _optional_str(payload, "message_type") or ("text" if isinstance(payload.get("text"), str) else "unsupported")
    media = _media(payload, message_type)
    details: dict[str, Any] = {}
    for name in ("location", "reply", "button", "context", "reaction", "order"):
        value = payload.get(name)
        if isinstance(value, Mapping):
            details[name] = _plain(value)
    if isinstance(payload.get("contacts"), list):
        details["contacts"] = _plain(payload["contacts"])
    profile = payload.get("profile")
    if isinstance(profile, Mapping) and isinstance(profile.get("name"), str):
        details["profile_name"] = profile["name"]
    sms = payload.get("sms")
    if isinstance(sms, Mapping):
        if isinstance(sms.get("keyword"), str):
            details["keyword"] = sms["keyword"]
        if sms.get("num_messages") is not None:
            details["num_messages"] = str(sms["num_messages"])
    usage = payload.get("usage")
    if isinstance(usage, Mapping):
        details["usage"] = _plain({k: usage[k] for k in ("price", "currency") if k in usage})
    if isinstance(payload.get("context_status"), str):
        details["context_status"] = payload["context_status"]
    choice = _choice(payload, channel, message_type)
    if choice is not None:
        details["choice"] = choice
    return InboundEvent(
        api="messages",
        vonage_id=vonage_id,
        channel=channel,
        sender=sender,
        recipient=recipient,
        message_type=message_type,
        text=_visible_text(payload, media),
        timestamp=_optional_str(payload, "timestamp"),
        raw=raw_json(payload),
        media=tuple(media),
        details=details,
    )


def _parse_v01_inbound(payload: Mapping[str, Any]) -> InboundEvent:
    """The older Messages API v0.1 shape: ``{from: {type, number|id}, to: {...}, message: {content: {...}}}``."""
    sender_obj = payload.get("from") if isinstance(payload.get("from"), Mapping) else {}
    channel = _CHANNEL_ALIASES.get(str(sender_obj.get("type") or "sms"), str(sender_obj.get("type") or "sms"))
    vonage_id = _optional_str(payload, "message_uuid") or _optional_str(payload, "uuid")
    if not vonage_id:
        raise BadRequestError("the inbound message has no message_uuid", code="invalid_webhook")
    message = payload.get("message") if isinstance(payload.get("message"), Mapping) else {}
    content = message.get("content") if isinstance(message.get("content"), Mapping) else {}
    message_type = str(content.get("type") or "text")
    media = _media(content, message_type)
    return InboundEvent(
        api="messages",
        vonage_id=vonage_id,
        channel=channel,
        sender=normalise_address(_address_field(payload, "from"), phone=channel in _PHONE_CHANNELS),
        recipient=normalise_address(_address_field(payload, "to"), phone=channel in _PHONE_RECIPIENT_CHANNELS),
        message_type=message_type,
        text=_visible_text(content, media),
        timestamp=_optional_str(payload, "timestamp"),
        raw=raw_json(payload),
        media=tuple(media),
    )


def _choice(payload: Mapping[str, Any], channel: str, message_type: str) -> dict[str, Any] | None:
    """What the person chose, when the message answers an interactive one.

    - WhatsApp ``reply{id, title, description?}``: a reply button or a list row was tapped
      (``kind`` ``reply``; the inbound function refines it to ``button_reply`` or ``list_reply``
      when it knows the message answered).
    - RCS ``reply{id, title}``: a suggestion chip was tapped; ``id`` is its ``postback_data``
      (``kind`` ``suggestion``).
    - ``button{payload, text, subtype?}``: a template's quick-reply or URL button (``kind`` ``button``).
    The message it answers is ``in_reply_to`` (``context.message_uuid``), when Vonage says.
    """
    choice: dict[str, Any] | None = None
    reply = payload.get("reply")
    button = payload.get("button")
    if message_type == "reply" and isinstance(reply, Mapping):
        choice = {"kind": "suggestion" if channel == "rcs" else "reply"}
        for name in ("id", "title", "description"):
            if isinstance(reply.get(name), str):
                choice[name] = reply[name]
    elif message_type == "button" and isinstance(button, Mapping):
        choice = {"kind": "button"}
        for name in ("payload", "text", "subtype"):
            if isinstance(button.get(name), str):
                choice[name] = button[name]
        if "payload" in choice:
            choice["id"] = choice["payload"]
        if "text" in choice:
            choice["title"] = choice["text"]
    if choice is None:
        return None
    context = payload.get("context")
    if isinstance(context, Mapping) and isinstance(context.get("message_uuid"), str):
        choice["in_reply_to"] = context["message_uuid"]
    return choice


def parse_messages_status(payload: Mapping[str, Any]) -> StatusEvent:
    """A Messages API status webhook of any channel, ``read`` included (vonage-api.md section 6.2)."""
    vonage_id = _required_str(payload, "message_uuid")
    status = _required_str(payload, "status").lower()
    error_code: str | None = None
    error_detail: str | None = None
    error = payload.get("error")
    if isinstance(error, Mapping):
        error_code = _messages_error_code(error)
        detail = error.get("detail")
        error_detail = detail if isinstance(detail, str) else None
    extra: dict[str, Any] = {"api": "messages"}
    channel = payload.get("channel")
    if isinstance(channel, str):
        extra["channel"] = _CHANNEL_ALIASES.get(channel, channel)
    if isinstance(payload.get("client_ref"), str):
        extra["client_ref"] = payload["client_ref"]
    if error_detail:
        extra["error_detail"] = error_detail
    for name in ("workflow", "destination", "sms", "whatsapp"):
        value = payload.get(name)
        if isinstance(value, Mapping):
            extra[name] = _plain(value)
    usage = payload.get("usage") if isinstance(payload.get("usage"), Mapping) else {}
    price = usage.get("price")
    currency = usage.get("currency")
    return StatusEvent(
        vonage_id=vonage_id,
        status=status,
        timestamp=_optional_str(payload, "timestamp"),
        error_code=error_code,
        error_text=describe_messages_error(error_code) or error_detail,
        price=_decimal_text(str(price)) if isinstance(price, (str, int, float)) and not isinstance(price, bool) else None,
        currency=currency if isinstance(currency, str) and currency else None,
        source="messages",
        extra=extra,
    )


def _messages_error_code(error: Mapping[str, Any]) -> str | None:
    # The code is the anchor of `type` (".../api-errors/messages#1330") and usually also the `title`.
    kind = error.get("type")
    if isinstance(kind, str) and "#" in kind:
        anchor = kind.rsplit("#", 1)[1].strip()
        if anchor.isdigit():
            return anchor
    title = error.get("title")
    if isinstance(title, (str, int)) and not isinstance(title, bool) and str(title).strip().isdigit():
        return str(title).strip()
    if isinstance(kind, str) and kind.strip():
        return kind.strip()[-40:]
    return None


def _channel(payload: Mapping[str, Any]) -> str:
    channel = _required_str(payload, "channel").lower()
    return _CHANNEL_ALIASES.get(channel, channel)


def _address_field(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if isinstance(value, Mapping):  # v0.1: {"type": "sms", "number": "447..."} or {"type": "messenger", "id": "..."}
        value = value.get("number") or value.get("id")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(int(value))
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError(f"the webhook has no {name!r} field", code="invalid_webhook")
    return value.strip()


def _media(source: Mapping[str, Any], message_type: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if message_type in MEDIA_TYPES and isinstance(source.get(message_type), Mapping):
        items.append(_media_item(message_type, source[message_type]))
    content = source.get("content")
    if isinstance(content, list):  # MMS with several attachments
        for entry in content:
            if isinstance(entry, Mapping):
                items.append(_media_item(str(entry.get("type") or "file"), entry))
    return items


def _media_item(kind: str, value: Mapping[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"type": kind}
    for name in ("url", "caption", "name", "id"):
        if isinstance(value.get(name), str):
            item[name] = value[name]
    return item


def _visible_text(payload: Mapping[str, Any], media: list[dict[str, Any]]) -> str | None:
    """What the user wrote or chose: the text, a caption, a reply's title or a button's text."""
    if isinstance(payload.get("text"), str):
        return str(payload["text"])
    for item in media:
        if item.get("caption"):
            return str(item["caption"])
    reply = payload.get("reply")
    if isinstance(reply, Mapping) and isinstance(reply.get("title"), str):
        return str(reply["title"])
    button = payload.get("button")
    if isinstance(button, Mapping):
        for name in ("text", "payload"):
            if isinstance(button.get(name), str):
                return str(button[name])
    return None


# ---- helpers -----------------------------------------------------------------------


def normalise_address(value: str, *, phone: bool = True) -> str:
    """E.164 (``+`` and digits) for a phone-like value on a phone channel, else the value unchanged."""
    cleaned = value.strip()
    if phone:
        compact = re.sub(r"[\s\-().]", "", cleaned)
        if compact.startswith("00"):
            compact = "+" + compact[2:]
        if _PHONE_LIKE.fullmatch(compact):
            return "+" + compact.lstrip("+")
    return cleaned


def raw_json(payload: Mapping[str, Any], *, drop: tuple[str, ...] = ()) -> str:
    """The payload as compact JSON text (stored for debugging; text keeps every store happy)."""
    return json.dumps({k: v for k, v in payload.items() if k not in drop}, ensure_ascii=False, separators=(",", ":"), default=str)


def _required_str(fields: Mapping[str, Any], name: str) -> str:
    value = _optional_str(fields, name)
    if not value:
        raise BadRequestError(f"the webhook has no {name!r} field", code="invalid_webhook")
    return value


def _optional_str(fields: Mapping[str, Any], name: str, *, strip: bool = True) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise BadRequestError(f"the webhook field {name!r} must be a string", code="invalid_webhook")
    return value.strip() if strip else value


def _sms_time(value: str | None) -> str | None:
    """``YYYY-MM-DD HH:MM:SS`` (UTC, SMS API) as ISO 8601; other shapes are kept as sent."""
    if not value:
        return None
    match = _SMS_TIME.fullmatch(value.strip())
    return f"{match.group(1)}T{match.group(2)}Z" if match else value


def _decimal_text(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    return text if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", text) else None


def _plain_key(key: Any) -> str:
    # Firestore refuses empty field names and reserves __name__-style ones. A prefix that is not
    # an underscore takes a name out of that form ("_" + "__x__" + "_" would still be in it).
    text = str(key)
    if not text or (len(text) >= 4 and text.startswith("__") and text.endswith("__")):
        return "~" + text
    return text


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-like copy every store accepts: str keys (non-empty), 64-bit ints, bounded depth."""
    if depth > _MAX_DEPTH:
        return json.dumps(value, default=str)[:1000]
    if value is None or isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, Mapping):
        return {_plain_key(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # No store takes an array directly inside an array (Firestore refuses it): keep those as JSON text.
        return [json.dumps(v, default=str) if isinstance(v, (list, tuple)) else _plain(v, depth + 1) for v in value]
    return str(value)
