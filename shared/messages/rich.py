"""The content objects beyond text, media and templates: checked, then put on the wire as is.

Each parser takes the caller's JSON value and returns the Messages API object for it, or
raises ``ValidationError`` (422) naming the field. Shapes and limits come from Vonage's
Messages API definition (``messages-olympus.yml`` 1.4.0: WhatsApp ``location``, ``custom``;
MMS ``vcard``; Viber ``video`` with ``viber_service{duration, file_size}``) and, where that
version predates the feature, from the official SDK models (vonage-api.md 5.4: WhatsApp
``sticker``, ``reaction``, ``context``; RCS ``suggestions``, ``card``, ``carousel``):

- WhatsApp ``location`` ``{lat, long, name?, address?}``; ``sticker`` ``{url}`` (.webp) or
  ``{id}``; ``reaction`` ``{action: "react", emoji}`` or ``{action: "unreact"}`` (needs
  ``context``); ``custom`` (any object, passed to WhatsApp unchanged); ``interactive``: WhatsApp's
  own interactive object (reply ``button``s or a ``list``), checked against WhatsApp's limits and
  sent as ``message_type: custom`` with ``custom: {type: "interactive", interactive: {...}}``,
  which is how the Messages API carries it.
- ``context`` ``{message_uuid}``: a WhatsApp quoted reply (or the message a reaction is for).
- MMS ``vcard`` ``{url, caption?}``.
- Viber ``video`` ``{url, thumb_url, caption?, duration, file_size}``: ``duration`` (1-600 s)
  and ``file_size`` (1-200 MB) go into ``viber_service`` as strings.
- RCS ``suggestions`` (on a text, at most 11; on a card, at most 4): ``reply``, ``dial``,
  ``view_location``, ``share_location``, ``open_url``, ``open_url_in_webview``,
  ``create_calendar_event``; ``card`` ``{title, text, media_url, ...}``; ``carousel``
  ``{cards: [2-10 cards]}``; ``custom``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.errors import ValidationError

__all__ = [
    "CARD_SUGGESTION_LIMIT",
    "SUGGESTION_TYPES",
    "TEXT_SUGGESTION_LIMIT",
    "parse_card",
    "parse_carousel",
    "parse_context",
    "parse_custom",
    "parse_interactive",
    "parse_location",
    "parse_rcs_options",
    "parse_reaction",
    "parse_sticker",
    "parse_suggestions",
    "parse_vcard",
    "parse_viber_video",
]

URL_LIMIT = 2000
CAPTION_LIMIT = 3000
VIBER_VIDEO_CAPTION_LIMIT = 1000  # the official SDK model's limit
TEXT_SUGGESTION_LIMIT = 11
CARD_SUGGESTION_LIMIT = 4
SUGGESTION_TEXT_LIMIT = 25
POSTBACK_LIMIT = 2048
CARD_TITLE_LIMIT = 200
CARD_TEXT_LIMIT = 2000
CAROUSEL_CARDS = (2, 10)
MEDIA_HEIGHTS = ("SHORT", "MEDIUM", "TALL")
WEBVIEW_MODES = ("FULL", "TALL", "HALF")
# WhatsApp's interactive limits (Cloud API reference, mirrored by Vonage's custom-object docs).
BUTTONS_MAX = 3
BUTTON_TITLE_LIMIT = 20
REPLY_ID_LIMIT = 256
LIST_BUTTON_LIMIT = 20
LIST_SECTIONS_MAX = 10
LIST_ROWS_MAX = 10
ROW_TITLE_LIMIT = 24
ROW_ID_LIMIT = 200
ROW_DESCRIPTION_LIMIT = 72
SECTION_TITLE_LIMIT = 24
INTERACTIVE_BODY_LIMIT = 1024
INTERACTIVE_HEADER_LIMIT = 60
INTERACTIVE_FOOTER_LIMIT = 60
SUGGESTION_TYPES: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    # type -> (required fields besides text/postback_data, optional fields)
    "reply": (frozenset(), frozenset()),
    "dial": (frozenset({"phone_number"}), frozenset({"fallback_url"})),
    "view_location": (frozenset({"latitude", "longitude", "pin_label"}), frozenset({"fallback_url"})),
    "share_location": (frozenset(), frozenset()),
    "open_url": (frozenset({"url", "description"}), frozenset()),
    "open_url_in_webview": (frozenset({"url", "description"}), frozenset({"view_mode"})),
    "create_calendar_event": (frozenset({"start_time", "end_time", "title", "description"}), frozenset({"fallback_url"})),
}
_UUID = re.compile(r"[0-9A-Za-z-]{8,64}")
_DIGITS = re.compile(r"[0-9]{7,15}")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})")


# ---- WhatsApp -------------------------------------------------------------------------------


def parse_location(value: Any) -> dict[str, Any]:
    """WhatsApp ``location``: ``lat`` -90..90, ``long`` -180..180, optional ``name`` and ``address``."""
    obj = _object(value, "location", required=("lat", "long"), optional=("name", "address"))
    location: dict[str, Any] = {
        "lat": _coordinate(obj["lat"], "location.lat", 90),
        "long": _coordinate(obj["long"], "location.long", 180),
    }
    for name in ("name", "address"):
        if obj.get(name) is not None:
            location[name] = _string(obj[name], f"location.{name}", 1000)
    if "address" in location and "name" not in location:
        # WhatsApp shows the address only under a name (Messages API definition).
        raise ValidationError("location.address is only shown with a location.name; give both", field="location.name",
                              code="missing_field")
    return location


def parse_sticker(value: Any) -> dict[str, str]:
    """WhatsApp ``sticker``: ``{url}`` of a .webp image, or ``{id}`` of an uploaded sticker."""
    obj = _object(value, "sticker", optional=("url", "id"))
    if (obj.get("url") is None) == (obj.get("id") is None):
        raise ValidationError("sticker takes exactly one of url (a .webp image) or id", field="sticker",
                              code="missing_field")
    if obj.get("url") is not None:
        url = _url(obj["url"], "sticker.url")
        if not urlsplit(url).path.lower().endswith(".webp"):
            raise ValidationError("a WhatsApp sticker must be a .webp image", field="sticker.url")
        return {"url": url}
    return {"id": _string(obj["id"], "sticker.id", 200)}


def parse_reaction(value: Any) -> dict[str, str]:
    """WhatsApp ``reaction``: ``{action: "react", emoji}`` or ``{action: "unreact"}``."""
    obj = _object(value, "reaction", required=("action",), optional=("emoji",))
    action = obj["action"]
    if action == "react":
        emoji = _string(obj.get("emoji"), "reaction.emoji", 20)
        return {"action": "react", "emoji": emoji}
    if action == "unreact":
        if obj.get("emoji") is not None:
            raise ValidationError("an unreact takes no emoji", field="reaction.emoji")
        return {"action": "unreact"}
    raise ValidationError('reaction.action must be "react" or "unreact"', field="reaction.action")


def parse_custom(value: Any, channel: str) -> dict[str, Any]:
    """``custom``: a non-empty object, passed to the channel unchanged."""
    if not isinstance(value, Mapping) or not value:
        raise ValidationError(f"custom must be a non-empty object (the {channel} payload to pass on)", field="custom")
    return dict(value)


def parse_interactive(value: Any) -> dict[str, Any]:
    """A WhatsApp interactive object (``type`` ``button`` or ``list``), checked against WhatsApp's limits."""
    obj = _object(value, "interactive", required=("type", "body", "action"), optional=("header", "footer"))
    kind = obj["type"]
    if kind not in ("button", "list"):
        raise ValidationError('interactive.type must be "button" (reply buttons) or "list"', field="interactive.type")
    body = _object(obj["body"], "interactive.body", required=("text",))
    interactive: dict[str, Any] = {
        "type": kind,
        "body": {"text": _string(body["text"], "interactive.body.text", INTERACTIVE_BODY_LIMIT)},
    }
    if obj.get("header") is not None:
        header = _object(obj["header"], "interactive.header", required=("type", "text"))
        if header["type"] != "text":
            raise ValidationError('interactive.header.type must be "text"', field="interactive.header.type")
        interactive["header"] = {"type": "text", "text": _string(header["text"], "interactive.header.text", INTERACTIVE_HEADER_LIMIT)}
    if obj.get("footer") is not None:
        footer = _object(obj["footer"], "interactive.footer", required=("text",))
        interactive["footer"] = {"text": _string(footer["text"], "interactive.footer.text", INTERACTIVE_FOOTER_LIMIT)}
    interactive["action"] = _buttons(obj["action"]) if kind == "button" else _list_action(obj["action"])
    return interactive


def _buttons(value: Any) -> dict[str, Any]:
    action = _object(value, "interactive.action", required=("buttons",))
    buttons = action["buttons"]
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= BUTTONS_MAX:
        raise ValidationError(f"interactive.action.buttons must list 1 to {BUTTONS_MAX} buttons", field="interactive.action.buttons")
    out, seen = [], set()
    for i, raw in enumerate(buttons):
        name = f"interactive.action.buttons[{i}]"
        button = _object(raw, name, required=("type", "reply"))
        if button["type"] != "reply":
            raise ValidationError(f'{name}.type must be "reply"', field=f"{name}.type")
        reply = _object(button["reply"], f"{name}.reply", required=("id", "title"))
        reply_id = _string(reply["id"], f"{name}.reply.id", REPLY_ID_LIMIT)
        if reply_id in seen:
            raise ValidationError(f"{name}.reply.id repeats another button's id", field=f"{name}.reply.id")
        seen.add(reply_id)
        out.append({"type": "reply", "reply": {"id": reply_id, "title": _string(reply["title"], f"{name}.reply.title", BUTTON_TITLE_LIMIT)}})
    return {"buttons": out}


def _list_action(value: Any) -> dict[str, Any]:
    action = _object(value, "interactive.action", required=("button", "sections"))
    sections = action["sections"]
    if not isinstance(sections, list) or not 1 <= len(sections) <= LIST_SECTIONS_MAX:
        raise ValidationError(f"interactive.action.sections must list 1 to {LIST_SECTIONS_MAX} sections",
                              field="interactive.action.sections")
    out_sections, rows_total, seen = [], 0, set()
    for s, raw_section in enumerate(sections):
        name = f"interactive.action.sections[{s}]"
        section = _object(raw_section, name, required=("rows",), optional=("title",))
        if len(sections) > 1 and section.get("title") is None:
            raise ValidationError(f"{name}.title is required when a list has several sections", field=f"{name}.title",
                                  code="missing_field")
        rows = section["rows"]
        if not isinstance(rows, list) or not rows:
            raise ValidationError(f"{name}.rows must list at least one row", field=f"{name}.rows")
        out_rows = []
        for r, raw_row in enumerate(rows):
            row_name = f"{name}.rows[{r}]"
            row = _object(raw_row, row_name, required=("id", "title"), optional=("description",))
            row_id = _string(row["id"], f"{row_name}.id", ROW_ID_LIMIT)
            if row_id in seen:
                raise ValidationError(f"{row_name}.id repeats another row's id", field=f"{row_name}.id")
            seen.add(row_id)
            item = {"id": row_id, "title": _string(row["title"], f"{row_name}.title", ROW_TITLE_LIMIT)}
            if row.get("description") is not None:
                item["description"] = _string(row["description"], f"{row_name}.description", ROW_DESCRIPTION_LIMIT)
            out_rows.append(item)
        rows_total += len(out_rows)
        out_section: dict[str, Any] = {"rows": out_rows}
        if section.get("title") is not None:
            out_section["title"] = _string(section["title"], f"{name}.title", SECTION_TITLE_LIMIT)
        out_sections.append(out_section)
    if rows_total > LIST_ROWS_MAX:
        raise ValidationError(f"a list takes at most {LIST_ROWS_MAX} rows in all (got {rows_total})",
                              field="interactive.action.sections")
    return {"button": _string(action["button"], "interactive.action.button", LIST_BUTTON_LIMIT), "sections": out_sections}


def parse_context(value: Any) -> dict[str, str]:
    """``context``: ``{message_uuid}`` of the message quoted (or reacted to)."""
    obj = _object(value, "context", required=("message_uuid",))
    uuid = obj["message_uuid"]
    if not isinstance(uuid, str) or not _UUID.fullmatch(uuid.strip()):
        raise ValidationError("context.message_uuid must be the message_uuid of a WhatsApp message", field="context.message_uuid")
    return {"message_uuid": uuid.strip()}


# ---- MMS and Viber --------------------------------------------------------------------------


def parse_vcard(value: Any) -> dict[str, str]:
    """MMS ``vcard``: ``{url}`` of a .vcf file, optional ``caption``."""
    obj = _object(value, "vcard", required=("url",), optional=("caption",))
    url = _url(obj["url"], "vcard.url")
    if not urlsplit(url).path.lower().endswith(".vcf"):
        raise ValidationError("a vCard must be a .vcf file", field="vcard.url")
    vcard = {"url": url}
    if obj.get("caption") is not None:
        vcard["caption"] = _string(obj["caption"], "vcard.caption", CAPTION_LIMIT)
    return vcard


def parse_viber_video(value: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Viber ``video``: the ``video`` object and the ``viber_service`` fields it needs."""
    obj = _object(value, "video", required=("url", "thumb_url", "duration", "file_size"), optional=("caption",))
    video = {"url": _url(obj["url"], "video.url"), "thumb_url": _url(obj["thumb_url"], "video.thumb_url", limit=1000)}
    if obj.get("caption") is not None:
        video["caption"] = _string(obj["caption"], "video.caption", VIBER_VIDEO_CAPTION_LIMIT)
    options = {
        # The Messages API takes both as strings ("123"), in seconds and megabytes.
        "duration": str(_whole(obj["duration"], "video.duration", 1, 600)),
        "file_size": str(_whole(obj["file_size"], "video.file_size", 1, 200)),
    }
    return video, options


# ---- RCS ------------------------------------------------------------------------------------


def parse_suggestions(value: Any, name: str, limit: int) -> list[dict[str, Any]]:
    """RCS suggestions (chips): each ``{type, text (<=25), postback_data, ...}``."""
    if not isinstance(value, list) or not 1 <= len(value) <= limit:
        raise ValidationError(f"{name} must list 1 to {limit} suggestions", field=name)
    out = []
    for i, raw in enumerate(value):
        item_name = f"{name}[{i}]"
        if not isinstance(raw, Mapping):
            raise ValidationError(f"{item_name} must be an object", field=item_name)
        kind = raw.get("type")
        if kind not in SUGGESTION_TYPES:
            raise ValidationError(f"{item_name}.type must be one of {', '.join(SUGGESTION_TYPES)}", field=f"{item_name}.type")
        required, optional = SUGGESTION_TYPES[kind]
        obj = _object(raw, item_name, required=("type", "text", "postback_data", *sorted(required)), optional=tuple(sorted(optional)))
        suggestion: dict[str, Any] = {
            "type": kind,
            "text": _string(obj["text"], f"{item_name}.text", SUGGESTION_TEXT_LIMIT),
            "postback_data": _string(obj["postback_data"], f"{item_name}.postback_data", POSTBACK_LIMIT),
        }
        for field_name in sorted(required | optional):
            if obj.get(field_name) is None:
                continue
            full = f"{item_name}.{field_name}"
            raw_value = obj[field_name]
            if field_name in ("url", "fallback_url"):
                suggestion[field_name] = _url(raw_value, full)
            elif field_name == "phone_number":
                digits = str(raw_value).strip().lstrip("+") if isinstance(raw_value, str) else ""
                if not _DIGITS.fullmatch(digits):
                    raise ValidationError(f"{full} must be an E.164 number (7-15 digits)", field=full)
                suggestion[field_name] = digits
            elif field_name in ("latitude", "longitude"):
                suggestion[field_name] = str(_coordinate(raw_value, full, 90 if field_name == "latitude" else 180))
            elif field_name in ("start_time", "end_time"):
                if not isinstance(raw_value, str) or not _ISO_TIME.fullmatch(raw_value.strip()):
                    raise ValidationError(f"{full} must be an ISO 8601 time with a zone, e.g. 2026-01-02T10:00:00Z", field=full)
                suggestion[field_name] = raw_value.strip()
            elif field_name == "view_mode":
                if raw_value not in WEBVIEW_MODES:
                    raise ValidationError(f"{full} must be one of {', '.join(WEBVIEW_MODES)}", field=full)
                suggestion[field_name] = raw_value
            else:
                limit_for = {"title": 100, "description": 500, "pin_label": 100}.get(field_name, 500)
                suggestion[field_name] = _string(raw_value, full, limit_for)
        if kind == "create_calendar_event" and suggestion["end_time"] < suggestion["start_time"]:
            raise ValidationError(f"{item_name}.end_time is before its start_time", field=f"{item_name}.end_time")
        out.append(suggestion)
    return out


def parse_card(value: Any, name: str = "card") -> dict[str, Any]:
    """An RCS rich card: ``title`` (<=200), ``text`` (<=2000), ``media_url`` and options."""
    obj = _object(
        value,
        name,
        required=("title", "text", "media_url"),
        optional=("media_description", "media_height", "thumbnail_url", "media_force_refresh", "suggestions"),
    )
    card: dict[str, Any] = {
        "title": _string(obj["title"], f"{name}.title", CARD_TITLE_LIMIT),
        "text": _string(obj["text"], f"{name}.text", CARD_TEXT_LIMIT),
        "media_url": _url(obj["media_url"], f"{name}.media_url"),
    }
    if obj.get("media_description") is not None:
        card["media_description"] = _string(obj["media_description"], f"{name}.media_description", 200)
    if obj.get("media_height") is not None:
        if obj["media_height"] not in MEDIA_HEIGHTS:
            raise ValidationError(f"{name}.media_height must be one of {', '.join(MEDIA_HEIGHTS)}", field=f"{name}.media_height")
        card["media_height"] = obj["media_height"]
    if obj.get("thumbnail_url") is not None:
        card["thumbnail_url"] = _url(obj["thumbnail_url"], f"{name}.thumbnail_url")
    if obj.get("media_force_refresh") is not None:
        if not isinstance(obj["media_force_refresh"], bool):
            raise ValidationError(f"{name}.media_force_refresh must be true or false", field=f"{name}.media_force_refresh")
        card["media_force_refresh"] = obj["media_force_refresh"]
    if obj.get("suggestions") is not None:
        card["suggestions"] = parse_suggestions(obj["suggestions"], f"{name}.suggestions", CARD_SUGGESTION_LIMIT)
    return card


RCS_CATEGORIES = ("acknowledgement", "authentication", "promotion", "service-request", "transaction")
CARD_ORIENTATIONS = ("VERTICAL", "HORIZONTAL")
IMAGE_ALIGNMENTS = ("LEFT", "RIGHT")
CARD_WIDTHS = ("SMALL", "MEDIUM")


def parse_rcs_options(value: Any, kind: str) -> dict[str, str] | None:
    """The ``rcs`` options: ``category``; a card's ``card_orientation``/``image_alignment``; a carousel's
    ``card_width`` (required for a carousel, as the official SDK model has it)."""
    if value is None:
        if kind == "carousel":
            raise ValidationError("a carousel needs rcs.card_width (SMALL or MEDIUM)", field="rcs.card_width",
                                  code="missing_field")
        return None
    optional = ("category",) + {"card": ("card_orientation", "image_alignment"), "carousel": ("card_width",)}.get(kind, ())
    obj = _object(value, "rcs", optional=optional, required=("card_width",) if kind == "carousel" else ())
    choices = {"category": RCS_CATEGORIES, "card_orientation": CARD_ORIENTATIONS, "image_alignment": IMAGE_ALIGNMENTS,
               "card_width": CARD_WIDTHS}
    options = {}
    for name in optional:
        if obj.get(name) is None:
            continue
        if obj[name] not in choices[name]:
            raise ValidationError(f"rcs.{name} must be one of {', '.join(choices[name])}", field=f"rcs.{name}")
        options[name] = obj[name]
    if options.get("card_orientation") == "HORIZONTAL" and "image_alignment" not in options:
        raise ValidationError("a HORIZONTAL card needs rcs.image_alignment (LEFT or RIGHT)", field="rcs.image_alignment",
                              code="missing_field")
    return options or None


def parse_carousel(value: Any) -> dict[str, Any]:
    """An RCS carousel: ``{cards: [2-10 cards]}``."""
    obj = _object(value, "carousel", required=("cards",))
    cards = obj["cards"]
    low, high = CAROUSEL_CARDS
    if not isinstance(cards, list) or not low <= len(cards) <= high:
        raise ValidationError(f"carousel.cards must list {low} to {high} cards", field="carousel.cards")
    return {"cards": [parse_card(card, f"carousel.cards[{i}]") for i, card in enumerate(cards)]}


# ---- helpers --------------------------------------------------------------------------------


def _object(value: Any, name: str, *, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        fields = ", ".join((*required, *optional))
        raise ValidationError(f"{name} must be an object ({fields})", field=name)
    allowed = set(required) | set(optional)
    extra = sorted(str(k) for k in value if k not in allowed)
    if extra:
        raise ValidationError(
            f"{name} takes only {', '.join(sorted(allowed))} (got {extra[0]!r})", field=f"{name}.{extra[0]}", code="unknown_field"
        )
    for key in required:
        if value.get(key) is None:
            raise ValidationError(f"{name}.{key} is required", field=f"{name}.{key}", code="missing_field")
    return value


def _string(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be a non-empty string", field=name, code="missing_field" if value is None else "invalid_field")
    if len(value) > limit:
        raise ValidationError(f"{name} takes at most {limit} characters", field=name, code="text_too_long",
                              details={"characters": len(value), "limit": limit})
    return value


def _url(value: Any, name: str, *, limit: int = URL_LIMIT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} is required: a public http(s) URL", field=name, code="missing_field")
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > limit or any(c.isspace() for c in url):
        raise ValidationError(f"{name} must be an http(s) URL of at most {limit} characters", field=name)
    return url


def _coordinate(value: Any, name: str, bound: int) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValidationError(f"{name} must be a number", field=name) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not -bound <= value <= bound:
        raise ValidationError(f"{name} must be a number from -{bound} to {bound}", field=name)
    return float(value)


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{name} must be a whole number from {low} to {high}", field=name)
    return value
