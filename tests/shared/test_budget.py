"""Spend budgets (shared.budget): atomic in the store, all or nothing, fixed windows, per country by range."""

from __future__ import annotations

import threading

import pytest

from shared.budget import BUDGET_COLLECTION, charge_send, charge_verify_start
from shared.config import RateLimit, Settings
from shared.errors import BudgetExhaustedError
from shared.phone import parse_phone
from shared.verify.fraud import prefix_of

DAY = 86400.0


def settings(**overrides):
    values = dict(
        send_budget_per_token=None, send_budget_global=None, send_parts_budget_per_token=None,
        send_parts_budget_global=None, verify_budget_global=None, verify_budget_per_country=None,
    )
    values.update(overrides)
    return Settings(**values)


def send(store, clock, s, *, scope="api:a", parts=1):
    charge_send(store, s, scope=scope, parts=parts, clock=clock)


def test_per_token_message_budget_refuses_the_next_message_with_retry_after(store, store_clock):
    s = settings(send_budget_per_token=RateLimit(3, DAY))
    for _ in range(3):
        send(store, store_clock, s)
    with pytest.raises(BudgetExhaustedError) as caught:
        send(store, store_clock, s)
    error = caught.value
    assert (error.status, error.code) == (429, "budget_exhausted")
    assert error.details["budget"] == "SEND_BUDGET_PER_TOKEN"
    assert 0 < error.retry_after <= DAY
    # another caller has its own budget
    send(store, store_clock, s, scope="api:b")


def test_parts_are_counted_so_one_long_text_uses_its_parts(store, store_clock):
    s = settings(send_parts_budget_global=RateLimit(10, DAY))
    send(store, store_clock, s, parts=6)
    with pytest.raises(BudgetExhaustedError) as caught:
        send(store, store_clock, s, scope="api:other", parts=5)
    assert caught.value.details["budget"] == "SEND_PARTS_BUDGET_GLOBAL"
    send(store, store_clock, s, scope="api:other", parts=4)  # exactly the rest fits


def test_a_refused_charge_takes_nothing_from_any_budget(store, store_clock):
    s = settings(send_budget_per_token=RateLimit(5, DAY), send_budget_global=RateLimit(1, DAY))
    send(store, store_clock, s, scope="api:a")
    with pytest.raises(BudgetExhaustedError):
        send(store, store_clock, s, scope="api:b")  # b's caller budget would allow it, the global one refuses
    counts = sorted(d.get("messages", 0) for d in _budget_docs(store))
    # a's caller doc and the global doc hold 1; b's caller doc holds 0 or was never written
    assert [c for c in counts if c] == [1, 1] and len(counts) in (2, 3)


def test_the_budget_comes_back_when_the_window_ends(store, store_clock):
    s = settings(send_budget_global=RateLimit(1, 3600))
    send(store, store_clock, s)
    with pytest.raises(BudgetExhaustedError) as caught:
        send(store, store_clock, s)
    store_clock.advance(caught.value.retry_after + 0.01)
    send(store, store_clock, s)


def test_concurrent_charges_never_exceed_the_budget(sqlite_store, store_clock):
    s = settings(send_budget_global=RateLimit(7, DAY))
    outcomes: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def one() -> None:
        barrier.wait()
        try:
            send(sqlite_store, store_clock, s)
            ok = True
        except BudgetExhaustedError:
            ok = False
        with lock:
            outcomes.append(ok)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 20 and outcomes.count(True) == 7


def test_verify_global_budget_counts_starts(store, store_clock):
    s = settings(verify_budget_global=RateLimit(2, DAY))
    phone = parse_phone("+447400123456")
    for _ in range(2):
        charge_verify_start(store, s, phone, prefix=prefix_of(phone, 3), clock=store_clock)
    with pytest.raises(BudgetExhaustedError) as caught:
        charge_verify_start(store, s, phone, prefix=prefix_of(phone, 3), clock=store_clock)
    assert caught.value.details["budget"] == "VERIFY_BUDGET_GLOBAL"


def test_country_budget_counts_ranges_so_an_attacker_cannot_lock_the_country_out(store, store_clock):
    # Regression (issue 15): 100 starts locked a whole country out for an hour. The country
    # budget counts distinct ranges: hammering a few ranges uses up only their share.
    s = settings(verify_budget_per_country=RateLimit(3, 3600))
    attacker_ranges = ["+447400123", "+447400124"]
    for _ in range(100):
        for prefix in attacker_ranges:
            charge_verify_start(store, s, parse_phone(prefix + "456"), prefix=prefix, clock=store_clock)
    real_user = parse_phone("+447400999123")
    charge_verify_start(store, s, real_user, prefix=prefix_of(real_user, 3), clock=store_clock)
    # a fourth new range in the window is refused: the country's budget of ranges is used up
    with pytest.raises(BudgetExhaustedError) as caught:
        charge_verify_start(store, s, parse_phone("+447400555123"), prefix="+447400555", clock=store_clock)
    assert caught.value.details["budget"] == "VERIFY_BUDGET_PER_COUNTRY"
    # another country is not affected
    fr = parse_phone("+33612345678")
    charge_verify_start(store, s, fr, prefix=prefix_of(fr, 3), clock=store_clock)


def test_a_start_refused_by_the_global_budget_does_not_use_a_range(store, store_clock):
    s = settings(verify_budget_global=RateLimit(1, DAY), verify_budget_per_country=RateLimit(1, 3600))
    first = parse_phone("+447400123456")
    charge_verify_start(store, s, first, prefix="+447400123", clock=store_clock)
    with pytest.raises(BudgetExhaustedError):
        charge_verify_start(store, s, parse_phone("+33612345678"), prefix="+33612345", clock=store_clock)
    # Only the first start's range is counted (the refused one left no member, or no document at all).
    assert sum(len(d["members"]) for d in _budget_docs(store) if "members" in d) == 1


def _budget_docs(store):
    return store.query(BUDGET_COLLECTION, limit=100)
