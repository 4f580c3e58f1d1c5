"""The fraud guard: each limit trips at its threshold and resets after its window (fake clock)."""

from __future__ import annotations

import json
import logging

import pytest

from shared.config import RateLimit
from shared.errors import ForbiddenError, RateLimitedError
from shared.phone import parse_phone
from shared.verify.fraud import FraudGuard, FraudLimits, prefix_of
from tests.fixtures.verify import (
    FR_MOBILE,
    GB_MOBILE,
    GB_MOBILE_OTHER_PREFIX,
    GB_MOBILE_SAME_PREFIX,
    GB_PREMIUM,
    US_NUMBER,
)

WIDE = RateLimit(1000, 3600)


def guard(store, **limits):
    values = dict(per_number=WIDE, per_ip=WIDE, per_prefix=WIDE, per_country=WIDE)
    values.update(limits)
    return FraudGuard(store, FraudLimits(**values))


def refused(action):
    with pytest.raises((RateLimitedError, ForbiddenError)) as info:
        action()
    return info.value


def test_per_number_limit_trips_at_threshold_and_resets_after_window(store, store_clock):
    g = guard(store, per_number=RateLimit(3, 600))
    phone = parse_phone(GB_MOBILE)
    for i in range(3):
        g.check(phone, ip=f"10.0.0.{i}")  # different addresses: only the number limit applies
    error = refused(lambda: g.check(phone, ip="10.0.0.9"))
    assert (error.status, error.code) == (429, "number_rate_limited")
    assert error.retry_after == pytest.approx(600)
    g.check(parse_phone(GB_MOBILE_SAME_PREFIX), ip="10.0.0.9")  # another number is not affected
    store_clock.advance(599)
    assert refused(lambda: g.check(phone, ip="10.0.0.9")).code == "number_rate_limited"
    store_clock.advance(1)
    g.check(phone, ip="10.0.0.9")  # the oldest start left the window


def test_sliding_window_frees_one_slot_per_expired_start(store, store_clock):
    g = guard(store, per_number=RateLimit(2, 100))
    phone = parse_phone(GB_MOBILE)
    g.check(phone, ip="1.1.1.1")
    store_clock.advance(50)
    g.check(phone, ip="1.1.1.1")
    error = refused(lambda: g.check(phone, ip="1.1.1.1"))
    assert error.retry_after == pytest.approx(50)
    store_clock.advance(50)
    g.check(phone, ip="1.1.1.1")
    assert refused(lambda: g.check(phone, ip="1.1.1.1")).retry_after == pytest.approx(50)


def test_per_ip_limit(store, store_clock):
    g = guard(store, per_ip=RateLimit(2, 3600))
    g.check(parse_phone(GB_MOBILE), ip="203.0.113.7")
    g.check(parse_phone(FR_MOBILE), ip="203.0.113.7")
    error = refused(lambda: g.check(parse_phone(US_NUMBER), ip="203.0.113.7"))
    assert (error.status, error.code) == (429, "ip_rate_limited")
    g.check(parse_phone(US_NUMBER), ip="203.0.113.8")
    store_clock.advance(3600)
    g.check(parse_phone(US_NUMBER), ip="203.0.113.7")


def test_per_prefix_limit_catches_a_number_range_from_many_addresses(store, store_clock):
    g = guard(store, per_prefix=RateLimit(2, 3600))
    g.check(parse_phone(GB_MOBILE), ip="10.0.0.1")
    g.check(parse_phone(GB_MOBILE_SAME_PREFIX), ip="10.0.0.2")
    error = refused(lambda: g.check(parse_phone("+447400123000"), ip="10.0.0.3"))
    assert (error.status, error.code) == (429, "prefix_rate_limited")
    g.check(parse_phone(GB_MOBILE_OTHER_PREFIX), ip="10.0.0.4")  # another range
    store_clock.advance(3600)
    g.check(parse_phone("+447400123000"), ip="10.0.0.3")


def test_per_country_limit(store, store_clock):
    g = guard(store, per_country=RateLimit(2, 60))
    g.check(parse_phone(GB_MOBILE), ip="10.0.0.1")
    g.check(parse_phone(GB_MOBILE_OTHER_PREFIX), ip="10.0.0.2")
    error = refused(lambda: g.check(parse_phone("+447500123456"), ip="10.0.0.3"))
    assert (error.status, error.code) == (429, "country_rate_limited")
    g.check(parse_phone(FR_MOBILE), ip="10.0.0.3")
    store_clock.advance(60)
    g.check(parse_phone("+447500123456"), ip="10.0.0.3")


def test_allow_list_refuses_other_countries_without_consuming_limits(store):
    g = guard(store, allowed_countries=("GB", "FR"), per_ip=RateLimit(1, 3600))
    for _ in range(3):
        error = refused(lambda: g.check(parse_phone(US_NUMBER), ip="10.0.0.1"))
        assert (error.status, error.code) == (403, "country_not_allowed")
        assert error.details == {"country": "US"}
    g.check(parse_phone(GB_MOBILE), ip="10.0.0.1")  # the refusals cost the address nothing


def test_no_allow_list_allows_every_country(store):
    g = guard(store)
    for number in (GB_MOBILE, FR_MOBILE, US_NUMBER):
        g.check(parse_phone(number), ip="10.0.0.1")


@pytest.mark.parametrize("number", [GB_PREMIUM, "+19005551234"])
def test_premium_rate_numbers_are_refused(store, number):
    error = refused(lambda: guard(store).check(parse_phone(number), ip="10.0.0.1"))
    assert (error.status, error.code) == (403, "number_type_not_allowed")
    assert error.details == {"number_type": "premium_rate"}


def test_every_refusal_is_logged_with_its_reason_and_a_masked_number(store, caplog):
    g = guard(store, per_number=RateLimit(1, 60), allowed_countries=("GB",))
    phone = parse_phone(GB_MOBILE)
    g.check(phone, ip="10.0.0.1")
    with caplog.at_level(logging.WARNING, logger="shared.verify.fraud"):
        refused(lambda: g.check(phone, ip="10.0.0.1"))
        refused(lambda: g.check(parse_phone(US_NUMBER), ip="10.0.0.1"))
    reasons = [r.reason for r in caplog.records if r.message == "verification start refused"]
    assert reasons == ["number_rate_limited", "country_not_allowed"]
    from shared.log import JsonFormatter

    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert all("7400123456" not in line and "4155550123" not in line for line in lines)
    assert json.loads(lines[0])["phone"] == "+44********56"
    assert json.loads(lines[0])["limit"] == "1/60"


def test_store_keys_hold_no_readable_number(store):
    from shared.verify.fraud import _digest

    guard(store).check(parse_phone(GB_MOBILE), ip="10.0.0.1")
    assert store.get("ratelimits", f"verify_start_number:{GB_MOBILE}") is None
    assert store.get("ratelimits", f"verify_start_number:{_digest(GB_MOBILE)}") is not None
    assert store.get("ratelimits", f"verify_start_prefix:{_digest('+447400123')}") is not None
    assert store.get("ratelimits", "verify_start_country:GB") is not None


def test_prefix_drops_the_configured_digits():
    phone = parse_phone(GB_MOBILE)
    assert prefix_of(phone, 3) == "+447400123"
    assert prefix_of(phone, 5) == "+4474001"
    assert prefix_of(phone, 50) == "+44"  # never shorter than the country code


def test_limits_come_from_settings(verify_settings):
    settings = verify_settings(
        verify_limit_number=RateLimit(1, 2), verify_allowed_countries=("gb",), verify_prefix_drop_digits=4
    )
    limits = FraudLimits.from_settings(settings)
    assert limits.per_number == RateLimit(1, 2)
    assert limits.allowed_countries == ("GB",)
    assert limits.prefix_drop_digits == 4
