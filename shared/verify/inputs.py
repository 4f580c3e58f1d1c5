"""The bodies of verify-start and verify-check, validated into small frozen objects.

Every problem is a 422 (``ValidationError`` with the field) or 400, never a 500, and no
message ever repeats the value of ``code``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config import Settings
from shared.errors import ConfigError, ValidationError
from shared.phone import PhoneNumber, parse_phone
from shared.text import refuse_unsafe_characters

__all__ = [
    "CHANNELS",
    "DEFAULT_CODE_LENGTH",
    "DEFAULT_CHANNELS",
    "LEGACY_WORKFLOWS",
    "CheckRequest",
    "StartRequest",
    "parse_check",
    "parse_request_id",
    "parse_start",
]

CHANNELS = ("sms", "whatsapp", "voice", "email")
DEFAULT_CHANNELS = ("sms", "voice")
# The legacy API has numbered workflows instead of a channel list (vonage-api.md 8.2);
# these are the ones that are exactly a list of distinct channels.
LEGACY_WORKFLOWS: dict[tuple[str, ...], int] = {("sms", "voice"): 5, ("sms",): 6, ("voice",): 7}
BRAND_MAX = 18  # Vonage: 1-18 characters, both APIs
CODE_LENGTHS_V2 = range(4, 11)
CODE_LENGTHS_LEGACY = (4, 6)
# Vonage's own default is 4 digits (1 in 10,000 per guess); 6 digits make a guess 100 times harder.
DEFAULT_CODE_LENGTH = 6
_BRAND_FORBIDDEN = re.compile(r"[/{}:$]")  # Verify v2 refuses these (422)
_LOCALE = re.compile(r"^[a-z]{2,3}-[a-z]{2,4}$")
_CLIENT_REF = re.compile(r"^[A-Za-z0-9]{1,40}$")  # Verify v2: 1-40 alphanumeric
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")  # v2: a UUID; legacy: 32 hex characters
_CODE = re.compile(r"^[A-Za-z0-9]{4,10}$")  # 4-10 digits, or a custom alphanumeric code


@dataclass(frozen=True)
class StartRequest:
    """A validated verify-start body."""

    phone: PhoneNumber
    brand: str
    channels: tuple[str, ...]
    code_length: int | None = None
    locale: str | None = None
    client_ref: str | None = None
    email: str | None = None
    client_ip: str | None = None  # the end user's address, as told by a trusted (token) caller
    captcha_token: str | None = field(default=None, repr=False)  # public mode: the human check's token


@dataclass(frozen=True)
class CheckRequest:
    """A validated verify-check body. ``repr`` never shows the code."""

    request_id: str
    code: str

    def __repr__(self) -> str:
        return f"CheckRequest(request_id={self.request_id!r}, code=[redacted])"


def parse_start(body: Mapping[str, Any], settings: Settings, *, trusted: bool = True) -> StartRequest:
    """Validate a verify-start body for the configured API (VERIFY_API).

    The brand is the server's (``VERIFY_BRAND``) whenever one is set and always for a public
    (untrusted) caller: otherwise a stranger could make your number text "Your PayPal Call
    0800... verification code is". A trusted (token) caller may name its own brand.
    """
    legacy = settings.verify_api == "legacy"
    phone = parse_phone(body.get("number"), default_region=settings.default_region, field="number")
    public = settings.verify_public and not trusted
    if settings.verify_brand and (public or body.get("brand") is None):
        brand = _brand(settings.verify_brand)
    elif public:
        raise ConfigError("VERIFY_BRAND is not set: public callers cannot choose the brand of the code message")
    else:
        brand = _brand(body.get("brand"))
    channels = _channels(body.get("channels"), legacy=legacy, settings=settings)
    code_length = _code_length(body.get("code_length"), legacy=legacy)
    if code_length is None:
        code_length = DEFAULT_CODE_LENGTH
    locale = _optional_text(body, "locale", _LOCALE, "a locale such as en-us or es-mx", lower=True)
    client_ref = _optional_text(body, "client_ref", _CLIENT_REF, "1 to 40 letters or digits")
    email = None
    if "email" in channels:
        email = _optional_text(body, "email", _EMAIL, "an email address")
        if email is None:
            raise ValidationError("the email channel needs an email address in 'email'", field="email")
    return StartRequest(
        phone=phone,
        brand=brand,
        channels=channels,
        code_length=code_length,
        locale=locale,
        client_ref=client_ref,
        email=email,
        client_ip=_client_ip(body.get("client_ip")),
        captcha_token=body.get("captcha_token") if isinstance(body.get("captcha_token"), str) else None,
    )


def parse_request_id(value: Any) -> str:
    """A Vonage verification request id (v2 UUID or legacy hex), or 422."""
    if not isinstance(value, str) or not _REQUEST_ID.match(value.strip()):
        raise ValidationError("request_id must be the request_id that verify-start returned", field="request_id")
    return value.strip()


def parse_check(body: Mapping[str, Any]) -> CheckRequest:
    """Validate a verify-check body ``{request_id, code}``."""
    request_id = parse_request_id(body.get("request_id"))
    code = body.get("code")
    if isinstance(code, (int, float)) and not isinstance(code, bool):
        # A number loses leading zeros ("0123" -> 123): refuse rather than check the wrong code.
        raise ValidationError("code must be a string (a number would lose its leading zeros)", field="code")
    if not isinstance(code, str) or not _CODE.match(code.strip()):
        raise ValidationError("code must be the 4 to 10 characters that were sent", field="code")
    return CheckRequest(request_id=request_id, code=code.strip())


# ---- fields ------------------------------------------------------------------


def _brand(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("brand is required: the name shown in the message, e.g. 'Acme'", field="brand")
    brand = value.strip()
    if len(brand) > BRAND_MAX:
        raise ValidationError(f"brand must be at most {BRAND_MAX} characters", field="brand")
    if _BRAND_FORBIDDEN.search(brand):
        raise ValidationError("brand must not contain / { } : or $", field="brand")
    refuse_unsafe_characters(value, "brand")  # the raw value: strip() would hide \x1c-\x1f
    return brand


def _channels(value: Any, *, legacy: bool, settings: Settings) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_CHANNELS
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
        raise ValidationError(f"channels must be a list of {', '.join(CHANNELS)}", field="channels")
    channels = tuple(c.strip().lower() for c in value)
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ValidationError(f"unknown channel {unknown[0]!r}; use {', '.join(CHANNELS)}", field="channels")
    if len(set(channels)) != len(channels) or len(channels) > 3:
        raise ValidationError("channels must be 1 to 3 different channels, tried in order", field="channels")
    if legacy and channels not in LEGACY_WORKFLOWS:
        raise ValidationError(
            "the legacy Verify API (VERIFY_API=legacy) only sends [sms], [voice] or [sms, voice]",
            code="channel_not_supported",
            field="channels",
        )
    if "whatsapp" in channels and not settings.brand_number:
        raise ValidationError(
            "the whatsapp channel needs a WhatsApp Business number: VONAGE_BRAND_NUMBER is not set",
            code="channel_not_available",
            field="channels",
        )
    return channels


def _code_length(value: Any, *, legacy: bool) -> int | None:
    if value is None:
        return None
    allowed = CODE_LENGTHS_LEGACY if legacy else CODE_LENGTHS_V2
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        words = "4 or 6" if legacy else "a whole number from 4 to 10"
        raise ValidationError(f"code_length must be {words}", field="code_length")
    return value


def _optional_text(body: Mapping[str, Any], name: str, pattern: re.Pattern[str], what: str, *, lower: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else None
    if lower and text is not None:
        text = text.lower()
    if not text or not pattern.match(text):
        raise ValidationError(f"{name} must be {what}", field=name)
    return text


def _client_ip(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError as exc:
        raise ValidationError("client_ip must be an IPv4 or IPv6 address", field="client_ip") from exc
