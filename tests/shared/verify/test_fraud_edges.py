"""Fraud guard edges that mutation testing found unguarded (issue 19)."""

from __future__ import annotations

import pytest

from shared.config import RateLimit
from shared.errors import RateLimitedError
from shared.phone import parse_phone
from shared.verify.fraud import FraudGuard, FraudLimits
from tests.fixtures.verify import GB_MOBILE

WIDE = RateLimit(1000, 3600)


def test_a_refusal_gives_the_wait_rounded_to_a_tenth_of_a_second(store, store_clock):
    guard = FraudGuard(store, FraudLimits(per_number=RateLimit(1, 600), per_ip=WIDE, per_prefix=WIDE, per_country=WIDE))
    phone = parse_phone(GB_MOBILE)
    guard.check(phone, ip="203.0.113.9")
    store_clock.advance(0.26)
    with pytest.raises(RateLimitedError) as info:
        guard.check(phone, ip="203.0.113.9")
    assert info.value.code == "number_rate_limited" and info.value.status == 429
    assert info.value.retry_after == pytest.approx(599.74)
    assert info.value.details == {"limit": "1/600", "retry_after": 599.7}
