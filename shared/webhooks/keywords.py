"""Opt-out, opt-in and help keywords in inbound messages.

A message is a keyword only when the keyword is the whole message (case, surrounding
spaces, accents and trailing punctuation ignored): "stop", " STOP! " and "Arrêt" are;
"please don't stop" is not. Carriers and the CTIA handbook use the same whole-message
rule; matching words inside sentences would unsubscribe people who never asked to be.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["HELP", "OPT_IN", "OPT_OUT", "KeywordMatch", "match_keyword"]

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET"})
OPT_IN = frozenset({"START", "UNSTOP"})
HELP = frozenset({"HELP"})

_TRAILING = " \t\r\n.!?,;:\"'()[]"


@dataclass(frozen=True)
class KeywordMatch:
    """A recognised keyword: ``action`` is ``optout``, ``optin`` or ``help``."""

    keyword: str
    action: str


def match_keyword(text: str | None) -> KeywordMatch | None:
    """The keyword the whole message is, or None."""
    if not text:
        return None
    trimmed = text.strip(_TRAILING)
    if not trimmed or len(trimmed) > 20:  # no keyword is longer; skip folding long messages
        return None
    word = _fold(trimmed).strip(_TRAILING)
    if word in OPT_OUT:
        return KeywordMatch(word, "optout")
    if word in OPT_IN:
        return KeywordMatch(word, "optin")
    if word in HELP:
        return KeywordMatch(word, "help")
    return None


def _fold(text: str) -> str:
    # "Arrêt" -> "ARRET": drop combining marks after compatibility decomposition.
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()
