"""The fraud guard of verify-start: checked before Vonage is called, so a refused start costs nothing.

SMS pumping (toll fraud) sends codes to numbers the attacker is paid for, usually many
numbers in one range or one country, from many addresses. The guard refuses, in order:

1. countries outside ``VERIFY_ALLOWED_COUNTRIES`` (when set) — 403 ``country_not_allowed``;
2. number types that cannot receive a code (premium rate, shared cost, pager, ...) —
   403 ``number_type_not_allowed`` (invalid numbers never get here: parsing refuses them);
3. sliding-window limits on starts, most specific first — per number, per client IP, per
   number prefix (the number without its last ``VERIFY_PREFIX_DROP_DIGITS`` digits) and
   per country — 429 ``<scope>_rate_limited`` with ``Retry-After``.

The cheap 403 checks come first and consume no counters. A limit refuses without
recording the refused hit, so a refused caller is not locked out longer than the window; all
the counters are counted in one transaction (``StateStore.hit_many``). Numbers are hashed in
rate-limit keys: the store never holds a readable phone number. Every refusal is logged with its reason (number masked).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from shared.config import RateLimit, Settings
from shared.errors import ForbiddenError, RateLimitedError
from shared.log import get_logger
from shared.phone import PhoneNumber
from shared.store.base import Charge, RateHit, StateStore

__all__ = ["BUCKET_PREFIX", "FraudGuard", "FraudLimits"]

log = get_logger("shared.verify.fraud")

BUCKET_PREFIX = "verify_start"


@dataclass(frozen=True)
class FraudLimits:
    """The guard's configuration (from Settings, or built directly in tests)."""

    per_number: RateLimit
    per_ip: RateLimit
    per_prefix: RateLimit
    per_country: RateLimit | None  # off by default: a count of starts lets one attacker lock a country out
    allowed_countries: tuple[str, ...] = ()
    prefix_drop_digits: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> FraudLimits:
        """Limits from VERIFY_LIMIT_PER_*, VERIFY_ALLOWED_COUNTRIES and VERIFY_PREFIX_DROP_DIGITS."""
        return cls(
            per_number=settings.verify_limit_number,
            per_ip=settings.verify_limit_ip,
            per_prefix=settings.verify_limit_prefix,
            per_country=settings.verify_limit_country,
            allowed_countries=tuple(c.upper() for c in settings.verify_allowed_countries),
            prefix_drop_digits=settings.verify_prefix_drop_digits,
        )


class FraudGuard:
    """Decides whether a verification may be started for ``phone`` from ``ip``."""

    def __init__(self, store: StateStore, limits: FraudLimits) -> None:
        self.store = store
        self.limits = limits

    def check(self, phone: PhoneNumber, *, ip: str, then: Sequence[Charge] = ()) -> None:
        """Return when the start is allowed (and count it); raise ForbiddenError (403) or
        RateLimitedError (429) with a stable code otherwise.

        ``then``: charges made in the counters' transaction once every counter allowed the start
        (the spend budgets, ``shared.budget.verify_start_charges``); their refusal propagates
        (BudgetExhaustedError) with no charge written and the counters counted."""
        limits = self.limits
        if limits.allowed_countries and phone.region.upper() not in limits.allowed_countries:
            self._refuse(
                ForbiddenError(
                    "verification codes are not sent to numbers of this country",
                    code="country_not_allowed",
                    details={"country": phone.region},
                ),
                phone,
                ip,
            )
        if not phone.can_receive_codes:
            self._refuse(
                ForbiddenError(
                    f"a {phone.number_type.replace('_', ' ')} number cannot receive a verification code",
                    code="number_type_not_allowed",
                    details={"number_type": phone.number_type},
                ),
                phone,
                ip,
            )
        scopes: list[tuple[str, str, RateLimit]] = [
            ("number", _digest(phone.e164), limits.per_number),
            ("ip", ip or "unknown", limits.per_ip),
            ("prefix", _digest(prefix_of(phone, limits.prefix_drop_digits)), limits.per_prefix),
        ]
        if limits.per_country is not None:
            scopes.append(("country", phone.region.upper(), limits.per_country))
        # One transaction for every counter (StateStore.hit_many): the same decisions as one hit()
        # per counter in this order, stopping at the first refusal (counters before it keep their
        # hit, counters after it are not counted), in one store round trip instead of four.
        decisions = self.store.hit_many(
            [RateHit(f"{BUCKET_PREFIX}_{scope}", key, limit.count, limit.window) for scope, key, limit in scopes],
            then=then,
        )
        for (scope, _key, limit), decision in zip(scopes, decisions):
            if not decision.allowed:
                self._refuse(
                    RateLimitedError(
                        f"too many verifications started for this {_SCOPE_WORDS[scope]}; try again later",
                        code=f"{scope}_rate_limited",
                        details={"limit": str(limit), "retry_after": round(decision.retry_after, 1)},
                        retry_after=decision.retry_after,
                    ),
                    phone,
                    ip,
                )

    def _refuse(self, error: ForbiddenError | RateLimitedError, phone: PhoneNumber, ip: str) -> NoReturn:
        log.warning(
            "verification start refused",
            extra={
                "reason": error.code,
                "phone": phone.e164,  # masked by the log formatter
                "country": phone.region,
                "number_type": phone.number_type,
                "ip": ip,
                **({"limit": error.details["limit"]} if "limit" in error.details else {}),
            },
        )
        raise error


def prefix_of(phone: PhoneNumber, drop_digits: int) -> str:
    """The number without its last ``drop_digits`` digits (never shorter than the country code)."""
    digits = phone.e164[1:]
    keep = max(len(str(phone.country_code)), len(digits) - drop_digits)
    return "+" + digits[:keep]


def _digest(value: str) -> str:
    # Not a secret hash, just not a readable number in the store's keys.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


_SCOPE_WORDS = {"number": "number", "ip": "address", "prefix": "number range", "country": "country"}
