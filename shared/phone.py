"""Phone numbers: what people type in, E.164 and Vonage's wire form out.

Built on Google's libphonenumber port (`phonenumbers`): it knows every country's
numbering plan, which a regular expression cannot. Its metadata import costs ~30 ms,
so it is imported on first use, not at module import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field as dataclass_field
from functools import cached_property
from typing import Any

from shared.errors import InvalidPhoneError

__all__ = ["PhoneNumber", "mask_phone", "parse_phone", "to_e164", "to_wire"]

# Number types that cannot receive an SMS or voice code (verify refuses them).
UNREACHABLE_TYPES = frozenset({"premium_rate", "shared_cost", "uan", "voicemail", "pager", "unknown"})
_MAX_INPUT = 40  # longer than any human-formatted number plus spacing
_ALLOWED = re.compile(r"^[0-9+()\-.\s/]+$")


@dataclass(frozen=True)
class PhoneNumber:
    """A validated number. ``e164`` has the ``+``; ``wire`` is the digits Vonage wants.

    ``number_type`` is worked out on first use: it walks the country's whole numbering plan
    again, and a bulk send of 100,000 recipients needs only ``e164`` (it was a third of the
    time to accept one).
    """

    e164: str
    region: str
    country_code: int
    _parsed: Any = dataclass_field(default=None, repr=False, compare=False)

    @cached_property
    def number_type(self) -> str:
        import phonenumbers

        parsed = self._parsed if self._parsed is not None else phonenumbers.parse(self.e164, None)
        return _type_name(phonenumbers.number_type(parsed))

    @property
    def wire(self) -> str:
        return self.e164[1:]

    @property
    def masked(self) -> str:
        return mask_phone(self.e164)

    @property
    def can_receive_codes(self) -> bool:
        return self.number_type not in UNREACHABLE_TYPES


def parse_phone(raw_phone: Any, *, default_region: str | None = None, field: str = "to") -> PhoneNumber:
    """Parse what a person typed ("+1 (415) 555-0100", "0044 7911 123456", "07911 123456"
    with a default region) into a valid number. Raises InvalidPhoneError with a clear reason."""
    import phonenumbers

    if not isinstance(raw_phone, str) or not raw_phone.strip():
        raise InvalidPhoneError("a phone number must be a non-empty string", field=field)
    text = raw_phone.strip()
    if len(text) > _MAX_INPUT or not _ALLOWED.match(text):
        raise InvalidPhoneError(
            "a phone number may only contain digits, spaces, +, -, ., / and brackets", field=field
        )
    if text.startswith("00"):
        text = "+" + text[2:]  # international prefix written the European way
    candidates = [text]
    if not text.startswith("+") and len(re.sub(r"\D", "", text)) >= 8:
        # Vonage's own form (country code, no "+", as in webhooks) is tried after the national reading.
        candidates.append("+" + text)
    parsed = None
    problem = "not a phone number" + ("" if default_region else " (include the country code, e.g. +44..., or set DEFAULT_REGION)")
    for candidate in candidates:
        try:
            attempt = phonenumbers.parse(candidate, default_region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_possible_number(attempt):
            problem = "the number has the wrong length for its country"
            continue
        # is_valid_number() is exactly these two calls; the region is kept rather than looked
        # up again (for +1, +44, +7 that lookup matches the number against each region's plan).
        region = phonenumbers.region_code_for_number(attempt)
        if not phonenumbers.is_valid_number_for_region(attempt, region):
            problem = "the number is not in use in its country's numbering plan"
        else:
            parsed = attempt
            break
    if parsed is None:
        if not text.startswith("+") and not default_region:
            problem = _missing_country_code(text) or problem
        raise InvalidPhoneError(problem, field=field)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return PhoneNumber(e164=e164, region=region or "ZZ", country_code=int(parsed.country_code or 0), _parsed=parsed)


def _missing_country_code(text: str) -> str | None:
    """The advice for a national number typed without its country code and without DEFAULT_REGION.

    Read as international, "(415) 555-0124" is a Swiss number (+41) of the wrong length:
    telling the person to add the country code is the useful answer, not "wrong length".
    """
    import phonenumbers

    try:
        as_us = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException:
        as_us = None
    if as_us is not None and phonenumbers.is_valid_number(as_us):
        suggestion = phonenumbers.format_number(as_us, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return (
            f"add a country code (+1 ...): {suggestion} if it is a US or Canadian number, "
            "or the + and country code of its country (or set DEFAULT_REGION, e.g. US)"
        )
    if text.startswith(("0", "(")):
        return "add a country code (+44 ..., +1 ...): the number has none, and DEFAULT_REGION is not set"
    return None


def to_e164(raw_phone: Any, *, default_region: str | None = None, field: str = "to") -> str:
    """The E.164 form (with ``+``) of a number, or InvalidPhoneError."""
    return parse_phone(raw_phone, default_region=default_region, field=field).e164


def to_wire(phone: str) -> str:
    """Vonage's wire form of an E.164 number: digits only, no ``+``."""
    return phone.lstrip("+")


def mask_phone(phone: str | None) -> str:
    """Mask a number for logs: country code and last two digits stay, e.g. ``+44*******56``.

    Works on E.164, wire form and unparsed input alike; never raises."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", str(phone))
    if len(digits) < 5:
        return "*" * len(digits)
    cc_len = _country_code_length(digits)
    return "+" + digits[:cc_len] + "*" * (len(digits) - cc_len - 2) + digits[-2:]


def _country_code_length(digits: str) -> int:
    try:
        import phonenumbers

        for length in (1, 2, 3):
            if phonenumbers.region_code_for_country_code(int(digits[:length])) != "ZZ":
                return length
    except Exception:  # masking must never fail a log call
        pass
    return 1


def _type_name(number_type: int) -> str:
    from phonenumbers import PhoneNumberType as T

    names = {
        T.FIXED_LINE: "fixed_line",
        T.MOBILE: "mobile",
        T.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
        T.TOLL_FREE: "toll_free",
        T.PREMIUM_RATE: "premium_rate",
        T.SHARED_COST: "shared_cost",
        T.VOIP: "voip",
        T.PERSONAL_NUMBER: "personal_number",
        T.PAGER: "pager",
        T.UAN: "uan",
        T.VOICEMAIL: "voicemail",
    }
    return names.get(number_type, "unknown")
