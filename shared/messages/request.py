"""The send request: what a caller may ask for, checked before anything is stored or sent.

:func:`parse_send_request` turns the JSON body of ``POST /send`` into a :class:`SendRequest`
or raises a ``ValidationError`` (422) that names the field. Nothing here touches the store or
the network. Limits come from vonage-api.md (sections 1.3, 5.3, 5.4, 11):

- ``to``: one recipient (a string) or a list (bulk, up to ``BULK_MAX_RECIPIENTS``). Phone
  numbers in any human format go through ``shared.phone``; Messenger takes a page-scoped id.
  In a bulk send a bad number fails only its own entry, and a repeated number is sent once.
- content: ``text``, or one media object (``image``/``audio``/``video``/``file`` with ``url``
  and optional ``caption``), or a WhatsApp ``template`` (``name``, ``parameters``, ``locale``);
  which ones a channel takes is in :data:`CONTENT_BY_CHANNEL`.
- ``ttl`` is in SECONDS from our callers on every API (the SMS API wants milliseconds; the
  payload builder converts); its range depends on the channel (:data:`TTL_RANGES`).
- SMS texts are analysed (GSM-7 / UCS-2, parts) and refused above ``max_segments`` parts,
  except in a ``dry_run``, whose answer is the analysis.
- Rich content (``shared.messages.rich``): WhatsApp ``location``, ``sticker``, ``reaction``,
  ``interactive`` and ``custom``, MMS ``vcard``, Viber ``video``, RCS ``card``, ``carousel``,
  ``custom`` and ``suggestions``; WhatsApp ``context`` (a quoted reply).
- ``failover``: further items ``[{channel, from?, ttl?, <content>}]`` tried in order by Vonage when
  the previous one is rejected, sent as ONE Messages API request; the top-level fields are the
  first item. ``channels`` (e.g. ``["whatsapp", "sms"]``) instead lets the send path build that
  list per recipient (``shared.messages.failover``): free-form WhatsApp only inside the 24-hour
  window, else ``template``, else the next channel. ``from`` may then be an object
  ``{channel: sender}``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.errors import ConfigError, InvalidPhoneError, ServiceError, ValidationError
from shared.messages import rich
from shared.messages.encoding import TextAnalysis, analyze_text
from shared.phone import parse_phone
from shared.text import refuse_unsafe_characters

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = [
    "APIS",
    "CHANNELS",
    "CONTENT_BY_CHANNEL",
    "SEND_FIELDS",
    "CONTENT_KINDS",
    "MAX_ITEMS",
    "MessageItem",
    "MAX_SEGMENTS_LIMIT",
    "MEDIA_KINDS",
    "TEXT_LIMITS",
    "TTL_RANGES",
    "Content",
    "Recipient",
    "SendRequest",
    "parse_send_request",
]

CHANNELS = ("sms", "mms", "whatsapp", "messenger", "viber", "rcs")
APIS = ("sms", "messages")
MEDIA_KINDS = ("image", "audio", "video", "file")
# Every content field a request may carry; exactly one per message item.
CONTENT_KINDS = (
    "text", *MEDIA_KINDS, "template", "location", "sticker", "reaction", "interactive", "custom", "vcard", "card", "carousel"
)
CONTENT_BY_CHANNEL: Mapping[str, frozenset[str]] = {
    "sms": frozenset({"text"}),
    "mms": frozenset({"text", "image", "audio", "video", "file", "vcard"}),
    "whatsapp": frozenset(
        {"text", "image", "audio", "video", "file", "template", "location", "sticker", "reaction", "interactive", "custom"}
    ),
    "messenger": frozenset({"text", "image", "audio", "video", "file"}),
    # Viber video carries thumb_url, duration and file_size (vonage-api.md 5.4).
    "viber": frozenset({"text", "image", "video", "file"}),
    "rcs": frozenset({"text", "image", "video", "file", "card", "carousel", "custom"}),
}
# One request of at most this many items (the first and its failover). Vonage documents no limit;
# each further item is one more channel the person may be charged on, so the list stays short.
MAX_ITEMS = 5
# (channel, media kind) pairs whose Messages API object takes a caption (vonage-api.md 5.4).
_CAPTIONED = frozenset(
    {("mms", kind) for kind in MEDIA_KINDS}
    | {("whatsapp", "image"), ("whatsapp", "video"), ("whatsapp", "file"), ("viber", "image")}
)
TEXT_LIMITS: Mapping[str, int] = {
    "sms": 3200,  # Vonage's maximum for one SMS text (section 11)
    "mms": 3000,  # no documented text limit; the MMS caption limit is used
    "whatsapp": 4096,
    "messenger": 640,
    "viber": 1000,
    "rcs": 3072,
}
CAPTION_LIMIT = 3000
VIBER_FILE_NAME_LIMIT = 25
URL_LIMIT = 2000
CLIENT_REF_LIMIT = 100  # current SMS and Messages specs (older docs said 40)
MAX_SEGMENTS_LIMIT = 50  # 3200 UCS-2 characters are 49 parts of 66
SMS_API_CALLBACK_LIMIT = 100
# ttl in seconds, per (channel, api) (vonage-api.md 1.3 and 5.3). Channels not listed take no ttl.
TTL_RANGES: Mapping[tuple[str, str], tuple[int, int]] = {
    ("sms", "sms"): (20, 604_800),
    ("sms", "messages"): (20, 604_800),
    ("mms", "messages"): (300, 259_200),
    ("rcs", "messages"): (20, 259_200),
    ("viber", "messages"): (30, 259_200),
}
SEND_FIELDS = frozenset(  # every field a send request may carry
    {"to", "channel", "api", "from", "client_ref", "ttl", "max_segments", "dry_run", *CONTENT_KINDS,
     "suggestions", "context", "rcs", "failover", "channels"}
)
_ITEM_FIELDS = frozenset({"channel", "from", "ttl", *CONTENT_KINDS, "suggestions", "context", "rcs"})
_NUMERIC_SENDER = re.compile(r"\+?[0-9][0-9 ()\-.]*")
_ALPHA_SENDER = re.compile(r"[A-Za-z0-9 ]{1,11}")
_CHANNEL_ID = re.compile(r"[A-Za-z0-9_.\-]{1,50}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,4})?")


@dataclass(frozen=True)
class Content:
    """What is sent: ``kind`` is one of :data:`CONTENT_KINDS`."""

    kind: str
    text: str | None = None
    media: Mapping[str, str] | None = None  # url, caption?, name?
    template: Mapping[str, Any] | None = None  # name, parameters, locale
    obj: Mapping[str, Any] | None = None  # the checked wire object of the other kinds
    options: Mapping[str, str] | None = None  # channel options: viber_service (video) or rcs
    suggestions: tuple[Mapping[str, Any], ...] | None = None  # RCS text chips
    context: Mapping[str, str] | None = None  # WhatsApp quoted reply / reaction target

    @property
    def message_type(self) -> str:
        """The Messages API ``message_type``: an interactive object travels as ``custom``."""
        return "custom" if self.kind == "interactive" else self.kind

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for the request fingerprint)."""
        data: dict[str, Any] = {"kind": self.kind}
        if self.text is not None:
            data["text"] = self.text
        if self.media is not None:
            data["media"] = dict(self.media)
        if self.template is not None:
            data["template"] = {**self.template, "parameters": list(self.template.get("parameters", []))}
        for name in ("obj", "options", "context"):
            value = getattr(self, name)
            if value is not None:
                data[name] = dict(value)
        if self.suggestions is not None:
            data["suggestions"] = [dict(s) for s in self.suggestions]
        return data


@dataclass(frozen=True)
class MessageItem:
    """One message of a workflow: a channel, its sender, its content (and SMS analysis, ttl)."""

    channel: str
    sender: str
    content: Content
    analysis: TextAnalysis | None = None
    ttl: int | None = None

    @property
    def whatsapp_free_form(self) -> bool:
        """True for WhatsApp content other than a template: it only arrives inside the 24 h window."""
        return self.channel == "whatsapp" and self.content.kind != "template"

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "from": self.sender, "content": self.content.to_dict(), "ttl": self.ttl}

    def summary(self) -> dict[str, Any]:
        """What a caller sees of the item: channel, type, sender and, for SMS, the encoding."""
        data: dict[str, Any] = {"channel": self.channel, "message_type": self.content.kind, "from": self.sender}
        if self.analysis is not None:
            data.update(encoding=self.analysis.encoding, segments=self.analysis.segments)
        return data


@dataclass(frozen=True)
class Recipient:
    """One entry of ``to``: ``address`` is E.164 (Messenger: the page-scoped id).

    ``error`` is set for an entry that cannot be sent (a bad number in a bulk send);
    ``duplicate_of`` for a repeat of an earlier entry (sent once, reported as skipped).
    """

    index: int
    raw: Any
    address: str | None = None
    error: ServiceError | None = None
    duplicate_of: int | None = None

    @property
    def wire(self) -> str:
        """The form Vonage wants: digits without ``+`` (Messenger ids as they are)."""
        return (self.address or "").removeprefix("+")


@dataclass(frozen=True)
class SendRequest:
    """A validated send request."""

    channel: str
    api: str
    bulk: bool
    recipients: tuple[Recipient, ...]
    sender: str  # wire form: digits without "+", an alphanumeric sender ID, or a channel id
    content: Content
    client_ref: str | None = None
    ttl: int | None = None  # seconds
    max_segments: int = 6
    dry_run: bool = False
    analysis: TextAnalysis | None = None  # SMS texts only
    callback_url: str | None = field(default=None, repr=False)
    failover: tuple[MessageItem, ...] = ()  # further items after the first, as the caller gave them
    channels: tuple[str, ...] = ()  # channel preference: the list is built per recipient
    candidates: tuple[MessageItem, ...] = ()  # with ``channels``: every item the plan may use, in order

    @property
    def first(self) -> MessageItem:
        """The first item (the top-level channel, sender and content)."""
        return MessageItem(self.channel, self.sender, self.content, self.analysis, self.ttl)

    @property
    def items(self) -> tuple[MessageItem, ...]:
        """The explicit workflow: the first item and its failover."""
        return (self.first, *self.failover)

    @property
    def is_workflow(self) -> bool:
        """True when the send may carry several items (``failover`` or ``channels``)."""
        return bool(self.failover or self.channels)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the normalised request: the same send in any spelling has the same one.

        ``"+44 7700 900123"`` and ``"447700900123"`` are one request; a different text,
        recipient, sender or option is another. ``dry_run`` is left out (it never claims a key).
        """
        canonical = {
            "channel": self.channel,
            "api": self.api,
            "bulk": self.bulk,
            "to": [r.address if r.address is not None else repr(r.raw) for r in self.recipients],
            "from": self.sender,
            "content": self.content.to_dict(),
            "client_ref": self.client_ref,
            "ttl": self.ttl,
            "max_segments": self.max_segments,
        }
        if self.failover:
            canonical["failover"] = [item.to_dict() for item in self.failover]
        if self.channels:
            canonical["channels"] = list(self.channels)
            canonical["candidates"] = [item.to_dict() for item in self.candidates]
        data = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(data.encode("utf-8")).hexdigest()


def parse_send_request(body: Mapping[str, Any], settings: Settings) -> SendRequest:
    """Validate the JSON body of a send; raise ValidationError (422) naming the first bad field."""
    if not isinstance(body, Mapping):
        raise ValidationError("the body must be a JSON object", code="invalid_json")
    unknown = sorted(str(name) for name in body if name not in SEND_FIELDS)
    if unknown:
        raise ValidationError(
            f"unknown field {unknown[0]!r}; the fields are: {', '.join(sorted(SEND_FIELDS))}",
            field=unknown[0],
            code="unknown_field",
        )
    channels = _channel_list(body.get("channels"))
    if channels and body.get("channel") is not None:
        raise ValidationError("give channel or channels, not both", field="channels")
    if channels and body.get("failover") is not None:
        raise ValidationError(
            "give failover (your own list) or channels (a list built from the WhatsApp window), not both", field="failover"
        )
    channel = channels[0] if channels else _channel(body.get("channel"))
    workflow = bool(channels) or body.get("failover") is not None
    api = _api(body.get("api"), channel, settings, workflow=workflow)
    dry_run = _boolean(body, "dry_run", False)
    max_segments = _integer(body, "max_segments", 1, MAX_SEGMENTS_LIMIT)
    if max_segments is None:
        max_segments = settings.max_segments
    elif max_segments > settings.max_segments:
        # A caller may ask for fewer parts than the deployment allows, never more: the ceiling
        # (SEND_MAX_SEGMENTS) bounds what one message can cost.
        raise ValidationError(
            f"max_segments can only lower the deployment's ceiling of {settings.max_segments} SMS parts "
            "(SEND_MAX_SEGMENTS), not raise it",
            field="max_segments",
            code="max_segments_too_high",
            details={"max_segments": max_segments, "ceiling": settings.max_segments},
        )
    limits = _ItemLimits(settings, api, max_segments, dry_run)
    candidates: tuple[MessageItem, ...] = ()
    failover: tuple[MessageItem, ...] = ()
    if channels:
        if body.get("ttl") is not None:
            raise ValidationError("ttl differs per channel: use failover items to give one per channel", field="ttl")
        candidates = _candidates(body, channels, limits)
        first = candidates[0]
    else:
        first = _item(body, channel, _sender_for(body.get("from"), channel, settings), limits)
        if body.get("failover") is not None:
            failover = _failover(body["failover"], body, limits)
    used = {item.channel for item in (first, *failover, *candidates)}
    if "messenger" in used and (failover or channels):
        raise ValidationError(
            "messenger addresses people by page-scoped id, not by phone number: it cannot share a workflow with other channels",
            field="failover" if failover else "channels",
            code="unsupported_content",
        )
    bulk, recipients = _recipients(body.get("to"), channel, settings)
    client_ref = _client_ref(body.get("client_ref"))
    callback = settings.status_webhook_url
    if callback and api == "sms" and len(callback) > SMS_API_CALLBACK_LIMIT:
        raise ConfigError(f"STATUS_WEBHOOK_URL is longer than the {SMS_API_CALLBACK_LIMIT} characters the SMS API accepts")
    return SendRequest(
        channel=first.channel,
        api=api,
        bulk=bulk,
        recipients=recipients,
        sender=first.sender,
        content=first.content,
        client_ref=client_ref,
        ttl=first.ttl,
        max_segments=max_segments,
        dry_run=dry_run,
        analysis=first.analysis,
        callback_url=callback,
        failover=failover,
        channels=channels,
        candidates=candidates,
    )


@dataclass(frozen=True)
class _ItemLimits:
    settings: Settings
    api: str
    max_segments: int
    dry_run: bool


def _item(source: Mapping[str, Any], channel: str, sender: str, limits: _ItemLimits) -> MessageItem:
    """One message item: its content checked for ``channel``, SMS texts analysed."""
    if not limits.settings.send_allow_control_characters:
        # Every string the recipient may read: text, captions, template parameters, buttons,
        # cards, suggestions (the sender id is checked with the sender).
        for name in sorted(_ITEM_FIELDS - {"channel", "from", "ttl"}):
            if name in source:
                _refuse_unsafe_strings(source[name], name)
    content = _content(source, channel)
    analysis = None
    if channel == "sms":
        assert content.text is not None  # sms takes text only
        analysis = analyze_text(content.text)
        if analysis.segments > limits.max_segments and not limits.dry_run:
            raise ValidationError(
                f"the text would be sent as {analysis.segments} SMS parts ({analysis.encoding}), more than "
                f"max_segments={limits.max_segments}; shorten it"
                + (", or replace the characters that force UCS-2" if analysis.is_unicode else "")
                + ", or raise max_segments",
                field="text",
                code="too_many_segments",
                details=analysis.to_dict() | {"max_segments": limits.max_segments},
            )
    return MessageItem(channel, sender, content, analysis, _ttl(source, channel, limits.api))


def _refuse_unsafe_strings(value: Any, path: str) -> None:
    """422 ``unsafe_characters`` for a control or bidi-override character in any string inside
    ``value`` (newlines and tabs pass): they could hide or reorder what the recipient reads."""
    if isinstance(value, str):
        refuse_unsafe_characters(value, path, allow_newlines=True)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_unsafe_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_unsafe_strings(item, f"{path}[{index}]")


def _failover(value: Any, body: Mapping[str, Any], limits: _ItemLimits) -> tuple[MessageItem, ...]:
    if not isinstance(value, list) or not value:
        raise ValidationError("failover must be a non-empty list of message items ({channel, <content>})", field="failover")
    if len(value) + 1 > MAX_ITEMS:
        raise ValidationError(f"a send takes at most {MAX_ITEMS} items (the first and {MAX_ITEMS - 1} failover items)",
                              field="failover")
    items = []
    for index, raw in enumerate(value):
        prefix = f"failover[{index}]"
        with _prefixed(prefix):
            if not isinstance(raw, Mapping):
                raise ValidationError("must be an object: {channel, from?, ttl?, <content>}")
            unknown = sorted(str(name) for name in raw if name not in _ITEM_FIELDS)
            if unknown:
                raise ValidationError(f"unknown field {unknown[0]!r}; an item takes {', '.join(sorted(_ITEM_FIELDS))}",
                                      field=unknown[0], code="unknown_field")
            if raw.get("channel") is None:
                raise ValidationError("channel is required", field="channel", code="missing_field")
            channel = _channel(raw["channel"])
            # An item's sender defaults to the top-level one, else the brand number.
            sender_raw = raw.get("from", body.get("from"))
            items.append(_item(raw, channel, _sender_for(sender_raw, channel, limits.settings), limits))
    return tuple(items)


def _candidates(body: Mapping[str, Any], channels: tuple[str, ...], limits: _ItemLimits) -> tuple[MessageItem, ...]:
    """Channel preference: per channel the free-form item and, for WhatsApp, the template item."""
    free = [name for name in CONTENT_KINDS if name != "template" and body.get(name) is not None]
    template = body.get("template")
    if len(free) > 1:
        raise ValidationError(f"give only one content besides a template (got {', '.join(free)})", field=free[1])
    if not free and template is None:
        raise ValidationError("nothing to send: give a text (or other content) and, for WhatsApp, a template",
                              field="text", code="missing_field")
    if template is not None and "whatsapp" not in channels:
        raise ValidationError("template is for WhatsApp: add whatsapp to channels", field="template")
    out: list[MessageItem] = []
    for channel in channels:
        sender = _sender_for(body.get("from"), channel, limits.settings)
        made = False
        if free and free[0] in CONTENT_BY_CHANNEL[channel]:
            source = {free[0]: body[free[0]]}
            if channel == "rcs" and body.get("suggestions") is not None:
                source["suggestions"] = body["suggestions"]
            if channel == "whatsapp" and body.get("context") is not None:
                source["context"] = body["context"]
            with _prefixed(None, channel=channel):
                out.append(_item(source, channel, sender, limits))
            made = True
        if channel == "whatsapp" and template is not None:
            out.append(_item({"template": template}, channel, sender, limits))
            made = True
        if not made:
            kind = free[0] if free else "template"
            raise ValidationError(
                f"channel {channel!r} does not take {kind}; it takes {', '.join(sorted(CONTENT_BY_CHANNEL[channel]))}",
                field="channels",
                code="unsupported_content",
            )
    return tuple(out)


class _prefixed:
    """Re-raise a ValidationError of a nested item with the item's place in the request."""

    def __init__(self, prefix: str | None, *, channel: str | None = None) -> None:
        self.prefix = prefix
        self.channel = channel

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if not isinstance(exc, ValidationError):
            return False
        where = self.prefix or f"channels[{self.channel}]"
        field_name = f"{self.prefix}.{exc.field}" if self.prefix and exc.field else (exc.field or where)
        details = {**exc.details, "field": field_name}
        raise ValidationError(f"{where}: {exc.message}", field=field_name, code=exc.code, details=details) from exc


def _sender_for(value: Any, channel: str, settings: Settings) -> str:
    """``from`` as a string, or an object naming a sender per channel; the brand number by default."""
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if _channel_or_none(k) is None)
        if unknown:
            raise ValidationError(f"from names an unknown channel {unknown[0]!r}", field=f"from.{unknown[0]}")
        by_channel = {_channel_or_none(k): v for k, v in value.items()}
        value = by_channel.get(channel)
    return _sender(value if value is not None else settings.brand_number, channel)


def _channel_or_none(value: Any) -> str | None:
    try:
        return _channel(value)
    except ValidationError:
        return None


def _channel_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ValidationError('channels must be a non-empty list, e.g. ["whatsapp", "sms"]', field="channels")
    channels = tuple(_channel(item) for item in value)
    if len(set(channels)) != len(channels):
        raise ValidationError("channels lists a channel twice", field="channels")
    if len(channels) > MAX_ITEMS:
        raise ValidationError(f"channels takes at most {MAX_ITEMS} channels", field="channels")
    return channels


# ---- fields ---------------------------------------------------------------------------------


def _channel(value: Any) -> str:
    if value is None:
        return "sms"
    if not isinstance(value, str):
        raise ValidationError("channel must be a string", field="channel")
    channel = value.strip().lower()
    if channel == "viber_service":  # the Messages API's own name for Viber
        channel = "viber"
    if channel not in CHANNELS:
        raise ValidationError(
            f"unknown channel {value!r}; use one of {', '.join(CHANNELS)}", field="channel", code="invalid_channel"
        )
    return channel


def _api(value: Any, channel: str, settings: Settings, *, workflow: bool = False) -> str:
    if workflow and value is not None and str(value).strip().lower() == "sms":
        raise ValidationError(
            "failover and channels go through the Messages API (api=messages); the SMS API sends one SMS",
            field="api",
            code="invalid_api",
        )
    if value is None:
        if channel != "sms" or workflow:
            return "messages"
        # The Messages API where an application is configured (JWT), else the SMS API (key + secret).
        return "messages" if settings.has_application else "sms"
    if not isinstance(value, str) or value.strip().lower() not in APIS:
        raise ValidationError(f"api must be one of {', '.join(APIS)}", field="api", code="invalid_api")
    api = value.strip().lower()
    if api == "sms" and channel != "sms":
        raise ValidationError(
            f"the SMS API only sends SMS; channel {channel!r} goes through the Messages API (api=messages)",
            field="api",
            code="invalid_api",
        )
    return api


def _content(body: Mapping[str, Any], channel: str) -> Content:
    given = [name for name in CONTENT_KINDS if body.get(name) is not None]
    if not given:
        kinds = ", ".join(sorted(CONTENT_BY_CHANNEL[channel]))
        raise ValidationError(f"nothing to send: give one of {kinds}", field="text", code="missing_field")
    if len(given) > 1:
        raise ValidationError(
            f"give only one of text, a media object, a template or another content object (got {', '.join(given)})",
            field=given[1],
        )
    kind = given[0]
    if kind not in CONTENT_BY_CHANNEL[channel]:
        raise ValidationError(
            f"channel {channel!r} does not take {kind}; it takes {', '.join(sorted(CONTENT_BY_CHANNEL[channel]))}",
            field=kind,
            code="unsupported_content",
        )
    context = None
    if body.get("context") is not None:
        if channel != "whatsapp":
            raise ValidationError("context (a quoted reply) is a WhatsApp option", field="context")
        context = rich.parse_context(body["context"])
    suggestions = None
    if body.get("suggestions") is not None:
        if channel != "rcs" or kind != "text":
            raise ValidationError("suggestions go on an RCS text (cards carry their own)", field="suggestions")
        suggestions = tuple(rich.parse_suggestions(body["suggestions"], "suggestions", rich.TEXT_SUGGESTION_LIMIT))
    value = body[kind]
    if body.get("rcs") is not None and channel != "rcs":
        raise ValidationError("rcs options are for the rcs channel", field="rcs")
    rcs_options = rich.parse_rcs_options(body.get("rcs"), kind) if channel == "rcs" else None
    if kind == "text":
        return Content("text", text=_text(value, channel), suggestions=suggestions, context=context, options=rcs_options)
    if kind == "template":
        return Content("template", template=_template(value), context=context)
    if kind == "video" and channel == "viber":
        video, options = rich.parse_viber_video(value)
        return Content("video", media=video, options=options)
    if kind in MEDIA_KINDS:
        return Content(kind, media=_media(value, kind, channel), context=context, options=rcs_options)
    if kind == "reaction":
        if context is None:
            raise ValidationError("a reaction needs context.message_uuid: the message it reacts to",
                                  field="context", code="missing_field")
        return Content(kind, obj=rich.parse_reaction(value), context=context)
    parsers = {
        "location": rich.parse_location,
        "sticker": rich.parse_sticker,
        "interactive": rich.parse_interactive,
        "vcard": rich.parse_vcard,
        "card": rich.parse_card,
        "carousel": rich.parse_carousel,
    }
    obj = rich.parse_custom(value, channel) if kind == "custom" else parsers[kind](value)
    return Content(kind, obj=obj, context=context, options=rcs_options)


def _text(value: Any, channel: str) -> str:
    if not isinstance(value, str):
        raise ValidationError("text must be a string", field="text")
    if not value.strip():
        raise ValidationError("text must not be empty", field="text", code="missing_field")
    limit = TEXT_LIMITS[channel]
    if len(value) > limit:
        raise ValidationError(
            f"text is {len(value)} characters; {channel} takes at most {limit}",
            field="text",
            code="text_too_long",
            details={"characters": len(value), "limit": limit},
        )
    return value


def _media(value: Any, kind: str, channel: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{kind} must be an object with a url (and optionally a caption)", field=kind)
    allowed = {"url", "caption"} | ({"name"} if kind == "file" and channel in ("whatsapp", "viber") else set())
    extra = sorted(str(k) for k in value if k not in allowed)
    if extra:
        raise ValidationError(
            f"{kind} takes only {', '.join(sorted(allowed))} on {channel} (got {extra[0]!r})",
            field=f"{kind}.{extra[0]}",
            code="unknown_field",
        )
    media = {"url": _url(value.get("url"), f"{kind}.url")}
    caption = value.get("caption")
    if caption is not None:
        if (channel, kind) not in _CAPTIONED:
            raise ValidationError(f"{channel} does not take a caption on {kind}", field=f"{kind}.caption")
        if not isinstance(caption, str) or not caption.strip():
            raise ValidationError(f"{kind}.caption must be a non-empty string", field=f"{kind}.caption")
        if len(caption) > CAPTION_LIMIT:
            raise ValidationError(
                f"{kind}.caption takes at most {CAPTION_LIMIT} characters", field=f"{kind}.caption", code="text_too_long"
            )
        media["caption"] = caption
    name = value.get("name")
    if channel == "viber" and kind == "file" and name is None:
        raise ValidationError("a Viber file needs a name (at most 25 characters)", field="file.name", code="missing_field")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("file.name must be a non-empty string", field="file.name")
        if channel == "viber" and len(name) > VIBER_FILE_NAME_LIMIT:
            raise ValidationError(f"a Viber file name takes at most {VIBER_FILE_NAME_LIMIT} characters", field="file.name")
        media["name"] = name
    return media


def _url(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} is required: the public URL of the media", field=name, code="missing_field")
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > URL_LIMIT or any(c.isspace() for c in url):
        raise ValidationError(f"{name} must be an http(s) URL of at most {URL_LIMIT} characters", field=name)
    return url


def _template(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError("template must be an object with name, parameters and locale", field="template")
    extra = sorted(str(k) for k in value if k not in ("name", "parameters", "locale"))
    if extra:
        raise ValidationError(
            f"template takes only name, parameters and locale (got {extra[0]!r})",
            field=f"template.{extra[0]}",
            code="unknown_field",
        )
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("template.name is required", field="template.name", code="missing_field")
    parameters = value.get("parameters", [])
    if not isinstance(parameters, list) or not all(isinstance(p, str) for p in parameters):
        raise ValidationError("template.parameters must be a list of strings", field="template.parameters")
    locale = value.get("locale")
    if locale is None:
        # WhatsApp matches templates by exact language: guessing one would fail at delivery time.
        raise ValidationError(
            "template.locale is required (the template's language, e.g. en_US)", field="template.locale", code="missing_field"
        )
    if not isinstance(locale, str) or not _LOCALE.fullmatch(locale.strip()):
        raise ValidationError("template.locale must look like en or en_US", field="template.locale")
    return {"name": name.strip(), "parameters": list(parameters), "locale": locale.strip()}


def _recipients(value: Any, channel: str, settings: Settings) -> tuple[bool, tuple[Recipient, ...]]:
    if value is None:
        raise ValidationError("to is required: a phone number, or a list of them", field="to", code="missing_field")
    if isinstance(value, str):
        return False, (Recipient(0, value, _address(value, channel, settings, "to")),)
    if not isinstance(value, list):
        raise ValidationError("to must be a string or a list of strings", field="to")
    if not value:
        raise ValidationError("to is an empty list", field="to", code="missing_field")
    limit = settings.bulk_max_recipients
    if len(value) > limit:
        raise ValidationError(
            f"to has {len(value)} recipients; at most {limit} per request",
            field="to",
            code="too_many_recipients",
            details={"recipients": len(value), "limit": limit},
        )
    seen: dict[str, int] = {}
    recipients = []
    for index, raw in enumerate(value):
        try:
            address = _address(raw, channel, settings, f"to[{index}]")
        except ValidationError as exc:
            recipients.append(Recipient(index, raw, error=exc))
            continue
        first = seen.setdefault(address, index)
        recipients.append(Recipient(index, raw, address, duplicate_of=None if first == index else first))
    return True, tuple(recipients)


def _address(raw: Any, channel: str, settings: Settings, name: str) -> str:
    if channel == "messenger":
        # Messenger addresses people by page-scoped id, not by phone number (vonage-api.md 5.3).
        if not isinstance(raw, str) or not _CHANNEL_ID.fullmatch(raw.strip()):
            raise ValidationError(f"{name} must be a Messenger page-scoped id (1-50 letters or digits)", field=name)
        return raw.strip()
    if not isinstance(raw, str):
        raise InvalidPhoneError("a phone number must be a string", field=name)
    return parse_phone(raw, default_region=settings.default_region, field=name).e164


def _sender(value: Any, channel: str) -> str:
    if value is None:
        raise ValidationError(
            "from is required: give a sender, or set VONAGE_BRAND_NUMBER as the default", field="from", code="missing_field"
        )
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("from must be a non-empty string", field="from")
    refuse_unsafe_characters(value, "from")
    text = value.strip()
    if channel in ("sms", "mms", "whatsapp") and _NUMERIC_SENDER.fullmatch(text):
        digits = re.sub(r"\D", "", text)
        # 3-15 digits: short codes up to full E.164 numbers. Vonage wants no "+" (section 1.3).
        if not 3 <= len(digits) <= 15:
            raise ValidationError("from must be a number of 3 to 15 digits", field="from", code="invalid_sender")
        return digits
    if channel == "sms":
        if _ALPHA_SENDER.fullmatch(text) and any(c.isalpha() for c in text):
            return text
        raise ValidationError(
            "from must be a phone number or an alphanumeric sender ID of at most 11 letters, digits and spaces",
            field="from",
            code="invalid_sender",
        )
    if channel in ("mms", "whatsapp"):
        raise ValidationError(f"{channel} needs a phone number as from", field="from", code="invalid_sender")
    if not _CHANNEL_ID.fullmatch(text):
        raise ValidationError(
            f"from must be your {channel} sender id (1-50 letters, digits, '_', '-' or '.')", field="from", code="invalid_sender"
        )
    return text


def _client_ref(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError("client_ref must be a non-empty string", field="client_ref")
    if len(value) > CLIENT_REF_LIMIT:
        raise ValidationError(f"client_ref takes at most {CLIENT_REF_LIMIT} characters", field="client_ref")
    refuse_unsafe_characters(value, "client_ref")
    return value


def _ttl(body: Mapping[str, Any], channel: str, api: str) -> int | None:
    if body.get("ttl") is None:
        return None
    limits = TTL_RANGES.get((channel, api))
    if limits is None:
        raise ValidationError(f"{channel} does not take a ttl", field="ttl")
    return _integer(body, "ttl", *limits, unit=" seconds")


def _integer(body: Mapping[str, Any], name: str, low: int, high: int, *, unit: str = "") -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number", field=name)
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low} and {high}{unit}", field=name)
    return value


def _boolean(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false", field=name)
    return value
