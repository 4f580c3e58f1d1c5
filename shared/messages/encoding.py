"""GSM-7 or UCS-2: which encoding an SMS text needs, and how many parts it becomes.

One character outside the GSM 03.38 alphabet turns the WHOLE message into UCS-2 (70
characters a part instead of 160), which is why the analysis names the characters that
forced it, with their position and, when there is one, a GSM look-alike to use instead.

Counting follows vonage-api.md section 11 and is conservative on purpose:

- GSM-7: 160 septets fit one SMS; a longer text is split into parts of at most 152
  septets (Vonage's documented chunk; the standard's 153 would under-count). The
  extension characters ``| ^ € { } [ ] ~ \\`` and form feed take two septets (ESC + char)
  and an ESC pair is never split across parts.
- UCS-2: 70 UTF-16 units fit one SMS; a longer text is split into parts of at most 66
  units (standard: 67). A character outside the BMP (most emoji) is a surrogate pair of
  two units, and a pair is never split across parts.

Pure functions, no I/O: the send function calls :func:`analyze_text` for ``dry_run``,
for ``max_segments`` and to decide ``type=unicode`` on the SMS API.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "GSM7",
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "GSM_LOOKALIKES",
    "MULTIPART_GSM7",
    "MULTIPART_UCS2",
    "SINGLE_GSM7",
    "SINGLE_UCS2",
    "UCS2",
    "TextAnalysis",
    "analyze_text",
    "is_gsm7",
]

GSM7 = "GSM-7"
UCS2 = "UCS-2"

SINGLE_GSM7 = 160  # septets in one SMS
SINGLE_UCS2 = 70  # UTF-16 units in one SMS
MULTIPART_GSM7 = 152  # septets per part of a long SMS (Vonage KB 204014833; standard 153)
MULTIPART_UCS2 = 66  # UTF-16 units per part (standard 67)
MAX_REPORTED = 20  # characters listed in the UCS-2 report; the count covers them all

# 3GPP TS 23.038 default alphabet, in table order (0x00-0x7F; 0x1B ESC is not a character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension table: ESC + one of these, two septets each.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

# Common characters that are not GSM-7 but have a GSM-7 stand-in (typed by word processors
# and phone keyboards). Reported as a hint only: the text is never changed behind the caller's back.
GSM_LOOKALIKES: dict[str, str] = {
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark / apostrophe
    "\u201a": "'",
    "\u201b": "'",
    "\u201c": '"',  # left double quotation mark
    "\u201d": '"',
    "\u201e": '"',
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2212": "-",  # minus sign
    "\u2026": "...",  # ellipsis
    "\u00a0": " ",  # no-break space
    "\u2009": " ",  # thin space
    "\u202f": " ",  # narrow no-break space
    "\t": " ",
    "\u00b4": "'",  # acute accent
    "`": "'",
    "\u00e7": "Ç",  # c cedilla: only the capital is in the GSM table
}


@dataclass(frozen=True)
class TextAnalysis:
    """How a text travels as SMS.

    ``units`` are septets for GSM-7 (extension characters count two) and UTF-16 code units
    for UCS-2 (a surrogate pair counts two). ``unicode_characters`` lists, for UCS-2, the
    first :data:`MAX_REPORTED` characters that are not GSM-7: ``{"char", "codepoint",
    "position", "name", "replacement"?}`` (``position`` counts Unicode characters from 0).
    """

    encoding: str
    characters: int
    units: int
    segments: int
    unicode_characters: tuple[dict[str, Any], ...] = field(default=())
    unicode_character_count: int = 0

    @property
    def is_unicode(self) -> bool:
        """True when the text must be sent as UCS-2 (SMS API ``type=unicode``)."""
        return self.encoding == UCS2

    @property
    def units_per_segment(self) -> int:
        """The part size this text is counted with (single-part or multipart)."""
        if self.encoding == GSM7:
            return SINGLE_GSM7 if self.segments <= 1 else MULTIPART_GSM7
        return SINGLE_UCS2 if self.segments <= 1 else MULTIPART_UCS2

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in responses and ``dry_run``."""
        data: dict[str, Any] = {
            "encoding": self.encoding,
            "characters": self.characters,
            "units": self.units,
            "segments": self.segments,
            "units_per_segment": self.units_per_segment,
        }
        if self.is_unicode:
            data["unicode_characters"] = [dict(item) for item in self.unicode_characters]
            data["unicode_character_count"] = self.unicode_character_count
        return data


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 basic or extension table."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def analyze_text(text: str) -> TextAnalysis:
    """Encoding, size and number of SMS parts of ``text`` (see the module docstring)."""
    offenders: list[dict[str, Any]] = []
    offender_count = 0
    for position, char in enumerate(text):
        if char in GSM7_BASIC or char in GSM7_EXTENSION:
            continue
        offender_count += 1
        if len(offenders) < MAX_REPORTED:
            offenders.append(_describe(char, position))
    if offender_count == 0:
        widths = [2 if char in GSM7_EXTENSION else 1 for char in text]
        segments = _count_parts(widths, SINGLE_GSM7, MULTIPART_GSM7)
        return TextAnalysis(GSM7, len(text), sum(widths), segments)
    # UTF-16 code units: two for a character outside the Basic Multilingual Plane.
    widths = [2 if ord(char) > 0xFFFF else 1 for char in text]
    segments = _count_parts(widths, SINGLE_UCS2, MULTIPART_UCS2)
    return TextAnalysis(UCS2, len(text), sum(widths), segments, tuple(offenders), offender_count)


def _count_parts(widths: list[int], single: int, per_part: int) -> int:
    """Parts needed when no character (of width 1 or 2) may straddle two parts."""
    total = sum(widths)
    if total <= single:
        return 1 if total else 0
    parts, used = 1, 0
    for width in widths:
        if used + width > per_part:
            parts += 1
            used = 0
        used += width
    return parts


def _describe(char: str, position: int) -> dict[str, Any]:
    info: dict[str, Any] = {
        "char": char,
        "codepoint": f"U+{ord(char):04X}",
        "position": position,
        "name": unicodedata.name(char, "UNNAMED CHARACTER"),
    }
    replacement = GSM_LOOKALIKES.get(char)
    if replacement is not None:
        info["replacement"] = replacement
    return info
