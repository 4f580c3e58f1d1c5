"""How long a webhook delivery stays deduplicated (issue 19: a 1-second window passed every test)."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.store.sqlite import SQLiteStateStore
from shared.webhooks.dedupe import EVENTS, begin_event, finish_event
from tests.fixtures.store import FakeClock

WEEK = 7 * 86400.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock):
    with SQLiteStateStore(clock=clock) as sqlite:
        yield sqlite


def test_the_default_dedupe_window_is_a_week_and_configurable():
    assert Settings.from_env({}).dedupe_ttl == WEEK
    assert Settings.from_env({"DEDUPE_TTL_SECONDS": "3600"}).dedupe_ttl == 3600.0


def test_a_processed_delivery_is_dropped_for_the_whole_window_and_processed_after_it(store, clock):
    # GIVEN a delivery processed completely
    assert begin_event(store, "dlr:abc", ttl=WEEK, now=clock())
    finish_event(store, "dlr:abc", ttl=WEEK, now=clock())
    # WHEN Vonage sends a copy a second before the window ends
    clock.advance(WEEK - 1)
    # THEN it is dropped, and the stored event says done
    assert not begin_event(store, "dlr:abc", ttl=WEEK, now=clock())
    assert store.get(EVENTS, "dlr:abc")["state"] == "done"
    # and once the window has passed, the key is forgotten (a new event with the same key runs)
    clock.advance(2)
    assert store.get(EVENTS, "dlr:abc") is None
    assert begin_event(store, "dlr:abc", ttl=WEEK, now=clock())


def test_the_window_is_counted_from_when_processing_finished(store, clock):
    assert begin_event(store, "in:1", ttl=WEEK, now=clock())
    first_at = store.get(EVENTS, "in:1")["first_at"]
    clock.advance(3600)  # the first attempt failed; Vonage's retry an hour later finishes it
    assert begin_event(store, "in:1", ttl=WEEK, now=clock())
    assert store.get(EVENTS, "in:1") == {"state": "processing", "first_at": first_at}  # the same record
    finish_event(store, "in:1", ttl=WEEK, now=clock())
    assert store.get(EVENTS, "in:1")["first_at"] == first_at
    clock.advance(WEEK - 1)
    assert not begin_event(store, "in:1", ttl=WEEK, now=clock())


def test_a_delivery_still_processing_is_processed_again(store, clock):
    assert begin_event(store, "in:2", ttl=WEEK, now=clock())
    clock.advance(10)
    assert begin_event(store, "in:2", ttl=WEEK, now=clock())
    assert store.get(EVENTS, "in:2")["state"] == "processing"


def test_finishing_twice_keeps_the_first_finish_time(store, clock):
    begin_event(store, "in:3", ttl=WEEK, now=clock())
    finish_event(store, "in:3", ttl=WEEK, now=clock())
    first = store.get(EVENTS, "in:3")
    clock.advance(60)
    finish_event(store, "in:3", ttl=WEEK, now=clock())
    assert store.get(EVENTS, "in:3") == first
    assert first["state"] == "done" and first["done_at"] == first["first_at"]
