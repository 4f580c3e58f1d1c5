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

CHANNELS = ("sms", "whatsapp", "voice", "email", "silent_auth", "whatsapp_interactive")
DEFAULT_CHANNELS = ("sms", "voice")
# Verify v2 only: silent authentication (the phone proves its number over mobile data; Vonage
# requires it first in the workflow) and WhatsApp's interactive approve/deny message (sent from
# Vonage's own WhatsApp number, so it needs no VONAGE_BRAND_NUMBER). The legacy API takes
# neither: only the LEGACY_WORKFLOWS below.
# The legacy API has numbered workflows instead of a channel list (vonage-api.md 8.2);
# these are the ones that are exactly a list of distinct channels.
LEGACY_WORKFLOWS: dict[tuple[str, ...], int] = {("sms", "voice"): 5, ("sms",): 6, ("voice",): 7}
# Limits from Vonage's definitions (vonage-specs: verify.v2.yml 0.0.18, verify.yml 1.2.4) and,
# where the official Python SDK is stricter than the docs, the SDK's (the safe reading):
# everything is refused here, before a paid call, rather than by Vonage.
BRAND_MAX_V2 = 16  # docs say 18, the official SDK caps v2 at 16
BRAND_MAX_LEGACY = 18  # verify.yml: brand maxLength 18
CLIENT_REF_MAX = 16  # docs say 1-40 alphanumeric, the official SDK caps it at 16
CODE_LENGTHS_V2 = range(4, 11)
CODE_LENGTHS_LEGACY = (4, 6)
CHANNEL_TIMEOUT_V2 = (60, 900)  # verify.v2.yml ChannelTimeout; legacy next_event_wait has the same range
CHECK_CODE_MAX_LEGACY = 6  # verify.yml check `code` maxLength 6 (no custom pin_code here)
# verify.v2.yml Language enum
LOCALES_V2 = frozenset(
    "en-us en-gb es-es es-mx es-us it-it fr-fr de-de ru-ru hi-in pt-br pt-pt id-id".split()
)
# verify.yml `lg` enum
LOCALES_LEGACY = frozenset(
    "ar-xa cs-cz cy-cy cy-gb da-dk de-de el-gr en-au en-gb en-in en-us es-es es-mx es-us fi-fi fil-ph fr-ca "
    "fr-fr hi-in hu-hu id-id is-is it-it ja-jp ko-kr nb-no nl-nl pl-pl pt-br pt-pt ro-ro ru-ru sv-se th-th "
    "tr-tr vi-vn yue-cn zh-cn zh-tw".split()
)
# Vonage's own default is 4 digits (1 in 10,000 per guess); 6 digits make a guess 100 times harder.
DEFAULT_CODE_LENGTH = 6
_BRAND_FORBIDDEN = re.compile(r"[/{}:$]")  # Verify v2 refuses these (422)
_CLIENT_REF = re.compile(rf"^[A-Za-z0-9]{{1,{CLIENT_REF_MAX}}}$")
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
    channel_timeout: int | None = None  # seconds before the next channel (legacy: next_event_wait)
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
        brand = _brand(settings.verify_brand, legacy=legacy)
    elif public:
        raise ConfigError("VERIFY_BRAND is not set: public callers cannot choose the brand of the code message")
    else:
        brand = _brand(body.get("brand"), legacy=legacy)
    channels = _channels(body.get("channels"), legacy=legacy, settings=settings)
    code_length = _code_length(body.get("code_length"), legacy=legacy)
    if code_length is None:
        code_length = DEFAULT_CODE_LENGTH
    locale = _locale(body.get("locale"), legacy=legacy)
    client_ref = _optional_text(body, "client_ref", _CLIENT_REF, f"1 to {CLIENT_REF_MAX} letters or digits")
    channel_timeout = _channel_timeout(body.get("channel_timeout"))
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
        channel_timeout=channel_timeout,
        captcha_token=body.get("captcha_token") if isinstance(body.get("captcha_token"), str) else None,
    )


def parse_request_id(value: Any) -> str:
    """A Vonage verification request id (v2 UUID or legacy hex), or 422."""
    if not isinstance(value, str) or not _REQUEST_ID.match(value.strip()):
        raise ValidationError("request_id must be the request_id that verify-start returned", field="request_id")
    return value.strip()


def parse_check(body: Mapping[str, Any], *, legacy: bool = False) -> CheckRequest:
    """Validate a verify-check body ``{request_id, code}`` (``legacy``: codes are 4 to 6 long)."""
    request_id = parse_request_id(body.get("request_id"))
    code = body.get("code")
    if isinstance(code, (int, float)) and not isinstance(code, bool):
        # A number loses leading zeros ("0123" -> 123): refuse rather than check the wrong code.
        raise ValidationError("code must be a string (a number would lose its leading zeros)", field="code")
    longest = CHECK_CODE_MAX_LEGACY if legacy else 10
    if not isinstance(code, str) or not _CODE.match(code.strip()) or len(code.strip()) > longest:
        # A code that cannot be right would still use up one of the attempts at Vonage.
        raise ValidationError(f"code must be the 4 to {longest} characters that were sent", field="code")
    return CheckRequest(request_id=request_id, code=code.strip())


# ---- fields ------------------------------------------------------------------


def _brand(value: Any, *, legacy: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("brand is required: the name shown in the message, e.g. 'Acme'", field="brand")
    brand = value.strip()
    longest = BRAND_MAX_LEGACY if legacy else BRAND_MAX_V2
    if len(brand) > longest:
        raise ValidationError(f"brand must be at most {longest} characters", field="brand")
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
    if "silent_auth" in channels[1:]:
        raise ValidationError(
            "silent_auth must be the first channel (Vonage tries it first, then falls back to the others)",
            field="channels",
        )
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


def _locale(value: Any, *, legacy: bool) -> str | None:
    if value is None:
        return None
    locale = value.strip().lower().replace("_", "-") if isinstance(value, str) else ""
    known = LOCALES_LEGACY if legacy else LOCALES_V2
    if locale not in known:
        raise ValidationError(
            f"locale must be one Vonage Verify {'(legacy) ' if legacy else ''}speaks: {', '.join(sorted(known))}",
            field="locale",
        )
    return locale


def _channel_timeout(value: Any) -> int | None:
    if value is None:
        return None
    low, high = CHANNEL_TIMEOUT_V2
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(
            f"channel_timeout must be a whole number of seconds from {low} to {high}", field="channel_timeout"
        )
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
