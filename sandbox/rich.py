"""The sandbox's checks of the Messages API content objects beyond text and media, as Vonage makes them.

Written from Vonage's definitions (``messages-olympus.yml`` 1.4.0 and the official SDK models,
vonage-api.md 5.4), independently of the project's own request checks so that each catches the
other's mistakes: WhatsApp ``location``, ``sticker``, ``reaction`` (needs ``context``),
``custom``; ``context``; MMS ``vcard``; Viber ``video`` (``thumb_url`` and
``viber_service.duration``/``file_size``); RCS ``suggestions``, ``card``, ``carousel``, ``custom``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["rich_problems"]

SUGGESTION_FIELDS = {
    "reply": (),
    "dial": ("phone_number",),
    "view_location": ("latitude", "longitude", "pin_label"),
    "share_location": (),
    "open_url": ("url", "description"),
    "open_url_in_webview": ("url", "description"),
    "create_calendar_event": ("start_time", "end_time", "title", "description"),
}


def rich_problems(body: dict[str, Any], channel: str, message_type: str) -> list[tuple[str, str]]:
    """``(name, reason)`` for each thing wrong with the rich parts of a message body."""
    problems: list[tuple[str, str]] = []
    value = body.get(message_type)
    context = body.get("context")
    if context is not None and (not isinstance(context, dict) or not isinstance(context.get("message_uuid"), str)):
        problems.append(("context", "must be an object with a message_uuid"))
    if message_type == "location":
        if not isinstance(value, dict) or not _number_in(value.get("lat"), 90) or not _number_in(value.get("long"), 180):
            problems.append(("location", "must have a numeric lat (-90..90) and long (-180..180)"))
    elif message_type == "sticker" and channel == "whatsapp":
        if not isinstance(value, dict) or not (isinstance(value.get("url"), str) or isinstance(value.get("id"), str)):
            problems.append(("sticker", "must be an object with a url or an id"))
    elif message_type == "reaction":
        if not isinstance(value, dict) or value.get("action") not in ("react", "unreact"):
            problems.append(("reaction.action", "must be react or unreact"))
        elif value["action"] == "react" and not (isinstance(value.get("emoji"), str) and value["emoji"]):
            problems.append(("reaction.emoji", "is required to react"))
        if not isinstance(context, dict):
            problems.append(("context", "is required for a reaction"))
    elif message_type == "custom":
        if not isinstance(value, dict):
            problems.append(("custom", "must be an object"))
    elif message_type == "vcard":
        if not isinstance(value, dict) or not str(value.get("url") or "").lower().endswith(".vcf"):
            problems.append(("vcard.url", "must be the URL of a .vcf file"))
    elif message_type == "video" and channel == "viber_service":
        if not isinstance(value, dict) or not isinstance(value.get("thumb_url"), str):
            problems.append(("video.thumb_url", "is required"))
        options = body.get("viber_service") if isinstance(body.get("viber_service"), dict) else {}
        for name, high in (("duration", 600), ("file_size", 200)):
            raw = options.get(name)
            if not (isinstance(raw, str) and raw.isdigit() and 1 <= int(raw) <= high):
                problems.append((f"viber_service.{name}", f"must be a string from 1 to {high}"))
    elif message_type == "card":
        problems.extend(_card_problems(value, "card"))
    elif message_type == "carousel":
        cards = value.get("cards") if isinstance(value, dict) else None
        options = body.get("rcs") if isinstance(body.get("rcs"), dict) else {}
        if options.get("card_width") not in ("SMALL", "MEDIUM"):
            problems.append(("rcs.card_width", "is required for a carousel: SMALL or MEDIUM"))
        if not isinstance(cards, list) or not 2 <= len(cards) <= 10:
            problems.append(("carousel.cards", "must hold 2 to 10 cards"))
        else:
            for index, card in enumerate(cards):
                problems.extend(_card_problems(card, f"carousel.cards[{index}]"))
    if body.get("suggestions") is not None:
        if channel != "rcs" or message_type != "text":
            problems.append(("suggestions", "are only taken by an RCS text"))
        else:
            problems.extend(_suggestion_problems(body["suggestions"], "suggestions", 11))
    return problems


def _card_problems(card: Any, name: str) -> list[tuple[str, str]]:
    if not isinstance(card, dict):
        return [(name, "must be an object")]
    problems = []
    for field, limit in (("title", 200), ("text", 2000)):
        value = card.get(field)
        if not isinstance(value, str) or not 1 <= len(value) <= limit:
            problems.append((f"{name}.{field}", f"must be 1 to {limit} characters"))
    if not isinstance(card.get("media_url"), str):
        problems.append((f"{name}.media_url", "is required"))
    if card.get("suggestions") is not None:
        problems.extend(_suggestion_problems(card["suggestions"], f"{name}.suggestions", 4))
    return problems


def _suggestion_problems(suggestions: Any, name: str, limit: int) -> list[tuple[str, str]]:
    if not isinstance(suggestions, list) or not 1 <= len(suggestions) <= limit:
        return [(name, f"must hold 1 to {limit} suggestions")]
    problems = []
    for index, item in enumerate(suggestions):
        where = f"{name}[{index}]"
        if not isinstance(item, dict) or item.get("type") not in SUGGESTION_FIELDS:
            problems.append((f"{where}.type", f"must be one of {', '.join(SUGGESTION_FIELDS)}"))
            continue
        text = item.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 25:
            problems.append((f"{where}.text", "must be 1 to 25 characters"))
        if not isinstance(item.get("postback_data"), str):
            problems.append((f"{where}.postback_data", "is required"))
        for field in SUGGESTION_FIELDS[item["type"]]:
            if not isinstance(item.get(field), str) or not item[field]:
                problems.append((f"{where}.{field}", "is required"))
    return problems


def _number_in(value: Any, bound: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and -bound <= value <= bound
