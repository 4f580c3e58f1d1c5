"""GSM-7 / UCS-2 text: which encoding a text needs and how Vonage splits it into SMS parts.

Vonage documents 152 GSM-7 or 66 UCS-2 characters per part of a long message (and 160 / 70
for a single SMS); extension characters take two septets and are never split from their
escape, and a UTF-16 surrogate pair is never split either (vonage-api.md §11).
"""

from __future__ import annotations

__all__ = [
    "GSM_BASIC",
    "GSM_EXTENDED",
    "MAX_TEXT_CHARS",
    "is_gsm7",
    "split_even",
    "split_parts",
]

# 3GPP TS 23.038 basic table (LF and CR included) and extension table.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("|^€{}[]~\\\f")
MAX_TEXT_CHARS = 3200  # longer texts are refused (SMS status 12, Messages 422)

_SINGLE = {"text": 160, "unicode": 70}
_PER_PART = {"text": 152, "unicode": 66}


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 basic or extension table."""
    return all(ch in GSM_BASIC or ch in GSM_EXTENDED for ch in text)


def split_parts(text: str, encoding: str) -> list[str]:
    """Split ``text`` as Vonage does for ``encoding`` ``text`` (GSM-7) or ``unicode`` (UCS-2).

    Sizes are counted in septets (GSM-7, extension characters count 2) or UTF-16 code
    units (UCS-2, astral characters count 2). An empty text is one empty part.
    """
    units = [_cost(ch, encoding) for ch in text]
    if sum(units) <= _SINGLE[encoding]:
        return [text]
    limit = _PER_PART[encoding]
    parts: list[str] = []
    start = used = 0
    for index, cost in enumerate(units):
        if used + cost > limit:  # the character does not fit: it opens the next part, whole
            parts.append(text[start:index])
            start, used = index, 0
        used += cost
    parts.append(text[start:])
    return parts


def split_even(text: str, count: int) -> list[str]:
    """Split ``text`` into ``count`` non-empty pieces of near-equal length (inbound multipart)."""
    count = max(1, min(count, len(text) or 1))
    size, extra = divmod(len(text), count)
    pieces, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _cost(ch: str, encoding: str) -> int:
    if encoding == "unicode":
        return 2 if ord(ch) > 0xFFFF else 1
    return 2 if ch in GSM_EXTENDED else 1
