"""Characters that must never reach a message: C0/C1 controls and bidirectional overrides.

A control character can split or hide part of an SMS on some handsets, and a bidi override
(U+202E RIGHT-TO-LEFT OVERRIDE and friends) makes a text read differently from what it is
("Trojan Source", CVE-2021-42574): "Your code is 1234 \u202e..." can show a different
number or link. Brands, client references and sender ids never need either; a message text
may keep newlines and tabs (``\\r\\n`` counts as a newline).

Bidi *marks* (U+200E, U+200F, U+061C) stay allowed: right-to-left scripts use them and they
cannot reorder text the way overrides and isolates can.
"""

from __future__ import annotations

from shared.errors import ValidationError

__all__ = ["BIDI_CONTROLS", "describe_character", "find_unsafe_character", "refuse_unsafe_characters"]

# Embeddings, overrides and isolates (Unicode TR9): the characters that can reorder a text.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TEXT_WHITESPACE = frozenset("\n\t")


def find_unsafe_character(value: str, *, allow_newlines: bool = False) -> int | None:
    """The index of the first control or bidi-override character in ``value``, or None.

    ``allow_newlines`` keeps ``\\n``, ``\\t`` and the ``\\r`` of a ``\\r\\n`` (message texts).
    """
    for index, char in enumerate(value):
        code = ord(char)
        if char in BIDI_CONTROLS:
            return index
        if code < 0x20 or 0x7F <= code <= 0x9F:
            if allow_newlines and (char in _TEXT_WHITESPACE or (char == "\r" and value[index + 1 : index + 2] == "\n")):
                continue
            return index
    return None


def describe_character(char: str) -> str:
    """``U+202E`` style name of a character, for error messages (never the text around it)."""
    return f"U+{ord(char):04X}"


def refuse_unsafe_characters(value: str, name: str, *, allow_newlines: bool = False) -> None:
    """422 ``unsafe_characters`` when ``value`` holds a control or bidi-override character."""
    index = find_unsafe_character(value, allow_newlines=allow_newlines)
    if index is not None:
        char = describe_character(value[index])
        raise ValidationError(
            f"{name} contains the control or bidirectional-override character {char} at position {index}; "
            "it could hide or reorder what the recipient reads",
            field=name,
            code="unsafe_characters",
            details={"character": char, "position": index},
        )
