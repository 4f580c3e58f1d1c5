"""Idempotency edges that mutation testing found unguarded (issue 19).

Each test here failed on a hand-made mutant of ``shared/messages/idempotency.py`` that the
rest of the suite let through: a late ``release``/``complete``/``mark_unknown`` from an attempt
whose hold expired must not touch the newer attempt's hold; the key length limit is exactly 255;
the ``Retry-After`` a duplicate is given is the documented one.
"""

from __future__ import annotations

import pytest

from shared.errors import BadRequestError
from shared.messages import idempotency as idem
from shared.store.sqlite import SQLiteStateStore
from tests.fixtures.store import FakeClock

TTL = 86400.0
HOLD = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock):
    with SQLiteStateStore(clock=clock) as sqlite:
        yield sqlite


def _claim(store, clock, fingerprint="fp-1", hold=HOLD):
    return idem.claim(store, idem.store_key("api", "key-1"), fingerprint, in_progress_ttl=hold, clock=clock)


def _stale_and_current(store, clock):
    """Attempt A claims, its hold expires, attempt B takes the key over."""
    stale = _claim(store, clock)
    clock.advance(HOLD + 1)
    current = _claim(store, clock)
    assert stale.acquired and current.acquired and stale.owner != current.owner
    return stale, current


def test_a_late_release_from_an_expired_attempt_leaves_the_new_hold_alone(store, clock):
    # GIVEN attempt A whose hold expired, and attempt B that now holds the key
    stale, current = _stale_and_current(store, clock)
    # WHEN A finally releases (it learnt late that nothing was sent)
    idem.release(store, stale, ttl=TTL, clock=clock)
    # THEN B still holds the key: a third request is told to wait, it does not send again
    with pytest.raises(idem.IdempotencyInProgressError) as info:
        _claim(store, clock)
    assert info.value.code == "idempotency_in_progress" and info.value.status == 409
    doc = store.get(idem.IDEMPOTENCY, current.key)
    assert doc["status"] == "in_progress" and doc["owner"] == current.owner


def test_a_late_complete_from_an_expired_attempt_does_not_overwrite_the_new_hold(store, clock):
    stale, current = _stale_and_current(store, clock)
    idem.complete(store, stale, {"id": "msg_stale", "status": "submitted"}, ttl=TTL, clock=clock)
    doc = store.get(idem.IDEMPOTENCY, current.key)
    assert doc["status"] == "in_progress" and doc["owner"] == current.owner and "result" not in doc
    # and B's own completion is what later requests replay
    idem.complete(store, current, {"id": "msg_current", "status": "submitted"}, ttl=TTL, clock=clock)
    assert _claim(store, clock).result == {"id": "msg_current", "status": "submitted"}


def test_a_late_mark_unknown_from_an_expired_attempt_does_not_mark_the_new_hold(store, clock):
    stale, current = _stale_and_current(store, clock)
    idem.mark_unknown(store, stale)
    assert "outcome" not in store.get(idem.IDEMPOTENCY, current.key)


def test_mark_unknown_never_turns_a_completed_key_back(store, clock):
    first = _claim(store, clock)
    idem.complete(store, first, {"id": "msg_1"}, ttl=TTL, clock=clock)
    idem.mark_unknown(store, first)
    doc = store.get(idem.IDEMPOTENCY, first.key)
    assert doc["status"] == "completed" and "outcome" not in doc


def test_a_released_key_keeps_its_fingerprint_and_the_finished_ttl(store, clock):
    first = _claim(store, clock)
    idem.release(store, first, ttl=TTL, clock=clock)
    doc = store.get(idem.IDEMPOTENCY, first.key)
    assert doc["status"] == "released" and doc["expires_at"] == clock() + TTL and doc["started_at"] == clock()
    # a different request under the released key is still refused
    with pytest.raises(idem.IdempotencyKeyReusedError):
        _claim(store, clock, fingerprint="fp-2")
    # the released state lives the long TTL, not the short in-progress hold
    clock.advance(TTL - 1)
    with pytest.raises(idem.IdempotencyKeyReusedError):
        _claim(store, clock, fingerprint="fp-2")
    clock.advance(2)
    assert _claim(store, clock, fingerprint="fp-2").acquired


def test_a_completed_key_lives_the_finished_ttl(store, clock):
    first = _claim(store, clock)
    clock.advance(5)
    idem.complete(store, first, {"id": "msg_1"}, ttl=TTL, clock=clock)
    doc = store.get(idem.IDEMPOTENCY, first.key)
    assert doc["expires_at"] == clock() + TTL and doc["started_at"] == clock() - 5
    clock.advance(TTL - 1)
    assert _claim(store, clock).result == {"id": "msg_1"}
    clock.advance(2)
    assert _claim(store, clock).acquired


@pytest.mark.parametrize("length", [1, 254, 255])
def test_keys_up_to_255_characters_are_accepted(length):
    assert idem.validate_key("k" * length) == "k" * length


@pytest.mark.parametrize("key", ["k" * 256, "k" * 1000])
def test_a_key_of_256_characters_is_refused(key):
    with pytest.raises(BadRequestError) as info:
        idem.validate_key(key)
    assert info.value.code == "invalid_idempotency_key" and info.value.status == 400
    assert "1 to 255" in info.value.message


def test_surrounding_spaces_do_not_count_towards_the_limit():
    assert idem.validate_key("  " + "k" * 255 + " ") == "k" * 255


@pytest.mark.parametrize("key", ["a b", "~!", " x", "A-Z_0:9"])
def test_printable_ascii_from_space_to_tilde_is_accepted(key):
    assert idem.validate_key(key) == key.strip()


@pytest.mark.parametrize("key", ["a\x7fb", "a\x1fb", "a\tb", "é", "a\nb"])
def test_control_and_non_ascii_characters_are_refused(key):
    with pytest.raises(BadRequestError) as info:
        idem.validate_key(key)
    assert info.value.code == "invalid_idempotency_key"


def test_a_running_attempt_asks_duplicates_to_come_back_in_two_seconds(store, clock):
    _claim(store, clock, hold=60)
    with pytest.raises(idem.IdempotencyInProgressError) as info:
        _claim(store, clock, hold=60)
    assert info.value.retry_after == idem.IN_PROGRESS_RETRY_AFTER == 2.0


def test_retry_after_is_the_remaining_hold_when_shorter_but_at_least_one_second(store, clock):
    _claim(store, clock, hold=60)
    clock.advance(58.5)
    with pytest.raises(idem.IdempotencyInProgressError) as info:
        _claim(store, clock, hold=60)
    assert info.value.retry_after == pytest.approx(1.5)
    clock.advance(1.3)
    with pytest.raises(idem.IdempotencyInProgressError) as info:
        _claim(store, clock, hold=60)
    assert info.value.retry_after == 1.0


def test_an_unknown_outcome_blocks_for_the_whole_remaining_hold_and_says_so(store, clock):
    first = _claim(store, clock, hold=60)
    idem.mark_unknown(store, first)
    clock.advance(15)
    with pytest.raises(idem.IdempotencyInProgressError) as info:
        _claim(store, clock, hold=60)
    assert info.value.retry_after == pytest.approx(45.0)
    assert info.value.details == {"outcome": "unknown"}
    assert "45 more seconds" in info.value.message
    # and it is still in progress (never released silently) until the hold ends
    assert store.get(idem.IDEMPOTENCY, first.key)["status"] == "in_progress"
    # near the end of the hold a retry is still asked to wait at least a second
    clock.advance(44.5)
    with pytest.raises(idem.IdempotencyInProgressError) as info:
        _claim(store, clock, hold=60)
    assert info.value.retry_after == 1.0 and "1 more seconds" in info.value.message
    clock.advance(1)
    assert _claim(store, clock, hold=60).acquired


def test_an_abandoned_hold_is_freed_only_once_it_is_older_than_a_lease(store, clock):
    # A queued attempt that is slow (store lock waits, a dispatch deadline), not dead, may still
    # be about to send: freeing its key then would let the next attempt send a second time.
    key = idem.store_key("api", "key-1")
    _claim(store, clock, hold=31 * 86400.0)
    clock.advance(119)
    assert idem.release_abandoned(store, key, "fp-1", stale_after=120, now=clock()) is False
    assert store.get(idem.IDEMPOTENCY, key)["status"] == "in_progress"
    clock.advance(1)
    assert idem.release_abandoned(store, key, "fp-1", stale_after=120, now=clock()) is True
    assert store.get(idem.IDEMPOTENCY, key)["status"] == "released"
