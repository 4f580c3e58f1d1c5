"""Idempotency keys on every store backend (SQLite, and Firestore on the emulator)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from shared.errors import BadRequestError
from shared.messages import idempotency as idem

TTL = 86400.0
HOLD = 60.0


def claim(store, clock, key="k", fingerprint="fp-1", hold=HOLD):
    return idem.claim(store, idem.store_key("api", key), fingerprint, in_progress_ttl=hold, clock=clock)


def test_the_first_claim_acquires_and_a_completed_key_replays_its_result(store, store_clock):
    # GIVEN a claimed key whose attempt completed
    first = claim(store, store_clock)
    assert first.acquired
    idem.complete(store, first, {"id": "msg_1", "status": "submitted"}, ttl=TTL, clock=store_clock)
    # WHEN the same request comes again
    again = claim(store, store_clock)
    # THEN it gets the stored result and does not own the key
    assert not again.acquired
    assert again.result == {"id": "msg_1", "status": "submitted"}


def test_a_key_in_progress_is_409_with_retry_after(store, store_clock):
    claim(store, store_clock)
    with pytest.raises(idem.IdempotencyInProgressError) as info:
        claim(store, store_clock)
    assert info.value.status == 409 and info.value.code == "idempotency_in_progress"
    assert 1 <= info.value.retry_after <= idem.IN_PROGRESS_RETRY_AFTER


def test_the_same_key_with_a_different_request_is_422(store, store_clock):
    first = claim(store, store_clock)
    with pytest.raises(idem.IdempotencyKeyReusedError) as info:
        claim(store, store_clock, fingerprint="fp-2")
    assert info.value.status == 422 and info.value.code == "idempotency_key_reused"
    idem.complete(store, first, {"ok": True}, ttl=TTL, clock=store_clock)
    with pytest.raises(idem.IdempotencyKeyReusedError):
        claim(store, store_clock, fingerprint="fp-2")


def test_a_crashed_attempt_blocks_the_key_only_until_its_in_progress_expiry(store, store_clock):
    # GIVEN an attempt that claimed the key and never finished (the process died)
    claim(store, store_clock, hold=30)
    store_clock.advance(29)
    with pytest.raises(idem.IdempotencyInProgressError):
        claim(store, store_clock, hold=30)
    # WHEN its own in-progress expiry passes (not the 24 h one)
    store_clock.advance(2)
    # THEN a retry takes the key over
    assert claim(store, store_clock, hold=30).acquired


def test_a_released_key_can_be_claimed_again_by_the_same_request_only(store, store_clock):
    first = claim(store, store_clock)
    idem.release(store, first, ttl=TTL, clock=store_clock)
    with pytest.raises(idem.IdempotencyKeyReusedError):
        claim(store, store_clock, fingerprint="fp-other")
    second = claim(store, store_clock)
    assert second.acquired and second.owner != first.owner
    # The first attempt can no longer touch the key it gave away.
    idem.complete(store, first, {"stale": True}, ttl=TTL, clock=store_clock)
    with pytest.raises(idem.IdempotencyInProgressError):
        claim(store, store_clock)


def test_an_unknown_outcome_keeps_the_key_in_progress_until_it_expires(store, store_clock):
    first = claim(store, store_clock, hold=40)
    idem.mark_unknown(store, first)
    store_clock.advance(10)
    with pytest.raises(idem.IdempotencyInProgressError) as info:
        claim(store, store_clock, hold=40)
    assert info.value.details["outcome"] == "unknown"
    assert info.value.retry_after == pytest.approx(30, abs=1)  # the rest of the hold, not 2 s
    assert "may have been sent" in info.value.message
    store_clock.advance(31)
    assert claim(store, store_clock, hold=40).acquired


def test_complete_after_the_hold_expired_still_stores_the_result(store, store_clock):
    first = claim(store, store_clock, hold=5)
    store_clock.advance(6)  # the send took longer than the hold; nobody else came
    idem.complete(store, first, {"id": "msg_slow"}, ttl=TTL, clock=store_clock)
    again = claim(store, store_clock)
    assert again.result == {"id": "msg_slow"}


def test_completed_results_expire_after_the_idempotency_ttl(store, store_clock):
    first = claim(store, store_clock)
    idem.complete(store, first, {"id": "msg_1"}, ttl=100, clock=store_clock)
    store_clock.advance(101)
    assert claim(store, store_clock).acquired


def _race(take: Callable[[], bool], threads: int = 20) -> list[str]:
    """``take`` from ``threads`` threads released together: each outcome, acquired / replayed / in_progress."""
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        try:
            result = "acquired" if take() else "replayed"
        except idem.IdempotencyInProgressError:
            result = "in_progress"
        with lock:
            outcomes.append(result)

    started = [threading.Thread(target=attempt) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(60)
    return sorted(outcomes)


def test_exactly_one_of_twenty_concurrent_claims_acquires(store, store_clock):
    assert _race(lambda: claim(store, store_clock).acquired) == ["acquired"] + ["in_progress"] * 19


def test_keys_are_scoped_and_hashed():
    assert idem.store_key("api:a", "k") != idem.store_key("api:b", "k")
    assert len(idem.store_key("api", "x" * 255)) == 64
    assert idem.derive_key("order-1", "+447911123456") == "order-1:+447911123456"


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "tab\there", "ключ", None, 42])
def test_malformed_keys_are_400(key):
    with pytest.raises(BadRequestError) as info:
        idem.validate_key(key)
    assert info.value.status == 400 and info.value.code == "invalid_idempotency_key"


def test_a_uuid_is_a_valid_key():
    assert idem.validate_key(" 3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b ") == "3f2a9c1e-8b7d-4e6f-a5c4-1b2d3e4f5a6b"


# ---- the claim inside a send's transaction (claim_charge) --------------------------------------


def charge_claim(store, clock, key="k", fingerprint="fp-1", then=()):
    held, charge = idem.claim_charge(idem.store_key("api", key), fingerprint, in_progress_ttl=HOLD, clock=clock)
    store.hit_many([], then=[charge, *then])
    return held


def test_a_charged_claim_takes_a_free_or_released_key_and_refuses_the_others(store, store_clock):
    first = charge_claim(store, store_clock)
    assert store.get(idem.IDEMPOTENCY, first.key)["owner"] == first.owner
    with pytest.raises(idem.IdempotencyInProgressError):
        charge_claim(store, store_clock)
    with pytest.raises(idem.IdempotencyKeyReusedError):
        charge_claim(store, store_clock, fingerprint="fp-2")
    idem.release(store, first, ttl=TTL, clock=store_clock)
    again = charge_claim(store, store_clock)  # the same request takes a released key
    idem.complete(store, again, {"id": "msg_1"}, ttl=TTL, clock=store_clock)
    with pytest.raises(idem.KeyAlreadyUsed) as info:
        charge_claim(store, store_clock)
    assert info.value.claim.result == {"id": "msg_1"} and not info.value.claim.acquired


def test_a_refused_charge_after_the_claim_leaves_no_key(store, store_clock):
    from shared.store.base import Charge

    class Refused(Exception):
        pass

    def refuse(doc):
        raise Refused

    with pytest.raises(Refused):
        charge_claim(store, store_clock, then=[Charge("budgets", "b", refuse, lambda doc: None)])
    assert store.query(idem.IDEMPOTENCY, limit=10) == []
    assert charge_claim(store, store_clock).acquired


def test_exactly_one_of_twenty_concurrent_charged_claims_acquires(store, store_clock):
    assert _race(lambda: charge_claim(store, store_clock).acquired) == ["acquired"] + ["in_progress"] * 19
