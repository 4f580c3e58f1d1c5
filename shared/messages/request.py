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
from shared.messages.encoding import TextAnalysis, analyze_text
from shared.phone import parse_phone
from shared.text import refuse_unsafe_characters

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = [
    "APIS",
    "CHANNELS",
    "CONTENT_BY_CHANNEL",
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
CONTENT_BY_CHANNEL: Mapping[str, frozenset[str]] = {
    "sms": frozenset({"text"}),
    "mms": frozenset({"text", "image", "audio", "video", "file"}),
    "whatsapp": frozenset({"text", "image", "audio", "video", "file", "template"}),
    "messenger": frozenset({"text", "image", "audio", "video", "file"}),
    # Viber video needs thumb_url, duration and file_size (vonage-api.md 5.4): not offered here.
    "viber": frozenset({"text", "image", "file"}),
    "rcs": frozenset({"text", "image", "video", "file"}),
}
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
_FIELDS = frozenset(
    {"to", "text", "template", "channel", "api", "from", "client_ref", "ttl", "max_segments", "dry_run", *MEDIA_KINDS}
)
_NUMERIC_SENDER = re.compile(r"\+?[0-9][0-9 ()\-.]*")
_ALPHA_SENDER = re.compile(r"[A-Za-z0-9 ]{1,11}")
_CHANNEL_ID = re.compile(r"[A-Za-z0-9_.\-]{1,50}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,4})?")


@dataclass(frozen=True)
class Content:
    """What is sent: ``kind`` is ``text``, a media kind, or ``template``."""

    kind: str
    text: str | None = None
    media: Mapping[str, str] | None = None  # url, caption?, name?
    template: Mapping[str, Any] | None = None  # name, parameters, locale

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for the request fingerprint)."""
        data: dict[str, Any] = {"kind": self.kind}
        if self.text is not None:
            data["text"] = self.text
        if self.media is not None:
            data["media"] = dict(self.media)
        if self.template is not None:
            data["template"] = {**self.template, "parameters": list(self.template.get("parameters", []))}
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
        data = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(data.encode("utf-8")).hexdigest()


def parse_send_request(body: Mapping[str, Any], settings: Settings) -> SendRequest:
    """Validate the JSON body of a send; raise ValidationError (422) naming the first bad field."""
    if not isinstance(body, Mapping):
        raise ValidationError("the body must be a JSON object", code="invalid_json")
    unknown = sorted(str(name) for name in body if name not in _FIELDS)
    if unknown:
        raise ValidationError(
            f"unknown field {unknown[0]!r}; the fields are: {', '.join(sorted(_FIELDS))}",
            field=unknown[0],
            code="unknown_field",
        )
    channel = _channel(body.get("channel"))
    api = _api(body.get("api"), channel, settings)
    dry_run = _boolean(body, "dry_run", False)
    content = _content(body, channel)
    if content.text is not None and not settings.send_allow_control_characters:
        refuse_unsafe_characters(content.text, "text", allow_newlines=True)
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
    analysis = None
    if channel == "sms":
        assert content.text is not None  # sms takes text only
        analysis = analyze_text(content.text)
        if analysis.segments > max_segments and not dry_run:
            raise ValidationError(
                f"the text would be sent as {analysis.segments} SMS parts ({analysis.encoding}), more than "
                f"max_segments={max_segments}; shorten it"
                + (", or replace the characters that force UCS-2" if analysis.is_unicode else "")
                + ", or raise max_segments",
                field="text",
                code="too_many_segments",
                details=analysis.to_dict() | {"max_segments": max_segments},
            )
    bulk, recipients = _recipients(body.get("to"), channel, settings)
    sender = _sender(body.get("from", settings.brand_number), channel)
    client_ref = _client_ref(body.get("client_ref"))
    ttl = _ttl(body, channel, api)
    callback = settings.status_webhook_url
    if callback and api == "sms" and len(callback) > SMS_API_CALLBACK_LIMIT:
        raise ConfigError(f"STATUS_WEBHOOK_URL is longer than the {SMS_API_CALLBACK_LIMIT} characters the SMS API accepts")
    return SendRequest(
        channel=channel,
        api=api,
        bulk=bulk,
        recipients=recipients,
        sender=sender,
        content=content,
        client_ref=client_ref,
        ttl=ttl,
        max_segments=max_segments,
        dry_run=dry_run,
        analysis=analysis,
        callback_url=callback,
    )


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


def _api(value: Any, channel: str, settings: Settings) -> str:
    if value is None:
        if channel != "sms":
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
    given = [name for name in ("text", *MEDIA_KINDS, "template") if body.get(name) is not None]
    if not given:
        kinds = ", ".join(sorted(CONTENT_BY_CHANNEL[channel]))
        raise ValidationError(f"nothing to send: give one of {kinds}", field="text", code="missing_field")
    if len(given) > 1:
        raise ValidationError(
            f"give only one of text, a media object or a template (got {', '.join(given)})", field=given[1]
        )
    kind = given[0]
    if kind not in CONTENT_BY_CHANNEL[channel]:
        raise ValidationError(
            f"channel {channel!r} does not take {kind}; it takes {', '.join(sorted(CONTENT_BY_CHANNEL[channel]))}",
            field=kind,
            code="unsupported_content",
        )
    if kind == "text":
        return Content("text", text=_text(body["text"], channel))
    if kind == "template":
        return Content("template", template=_template(body["template"]))
    return Content(kind, media=_media(body[kind], kind, channel))


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
