"""The process-wide pacer: even spacing under the rate, backoff on throttling, bounded threads."""

from __future__ import annotations

import threading

import pytest

from shared.errors import VonageThrottledError
from shared.log import bind_context, reset_context
from shared.messages.pacing import SAFETY, Pacer, get_pacer, paced_call, reset_pacers, run_bounded


class FakeTime:
    """A clock whose sleep moves it forward (thread-safe)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events inside any half-open window [t, t + window)."""
    times = sorted(times)
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + window))
    return best


def test_slots_are_spaced_a_little_wider_than_one_over_the_rate():
    fake = FakeTime()
    pacer = Pacer(10, clock=fake.clock, sleep=fake.sleep)
    granted = []
    for _ in range(25):
        pacer.acquire()
        granted.append(fake.clock())
    gaps = {round(b - a, 9) for a, b in zip(granted, granted[1:])}
    assert gaps == {round((1 + SAFETY) / 10, 9)}
    assert max_in_window(granted) == 10  # never 11 in any one-second window


def test_an_idle_pacer_does_not_delay_the_first_request():
    fake = FakeTime()
    pacer = Pacer(5, clock=fake.clock, sleep=fake.sleep)
    fake.sleep(60)
    assert pacer.acquire() == 0


def test_concurrent_threads_share_one_budget():
    pacer = Pacer(50)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            pacer.acquire()
            import time

            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(stamps) == 80
    assert max_in_window(stamps) <= 50


def test_pause_holds_every_slot_back():
    fake = FakeTime()
    pacer = Pacer(100, clock=fake.clock, sleep=fake.sleep)
    pacer.acquire()
    pacer.pause(2.0)
    start = fake.clock()
    pacer.acquire()
    assert fake.clock() - start == pytest.approx(2.0)


def test_paced_call_retries_throttling_after_the_retry_after_and_then_gives_up():
    fake = FakeTime()
    pacer = Pacer(1000, clock=fake.clock, sleep=fake.sleep)
    calls = []

    def throttled():
        calls.append(fake.clock())
        raise VonageThrottledError("throttled", retry_after=1.5)

    with pytest.raises(VonageThrottledError):
        paced_call(pacer, throttled, retries=2)
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 1.5 and calls[2] - calls[1] >= 1.5


def test_paced_call_returns_once_vonage_accepts():
    pacer = Pacer(1000)
    answers = iter([VonageThrottledError("t", retry_after=0.01), "ok"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert paced_call(pacer, call, retries=1) == "ok"


def test_other_errors_are_not_retried():
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("no")

    with pytest.raises(ValueError):
        paced_call(Pacer(1000), broken, retries=5)
    assert calls == [1]


def test_pacers_are_shared_per_rate_until_reset():
    reset_pacers()
    assert get_pacer(30) is get_pacer(30.0)
    assert get_pacer(30) is not get_pacer(10)
    first = get_pacer(30)
    reset_pacers()
    assert get_pacer(30) is not first


def test_run_bounded_keeps_order_limits_threads_and_keeps_log_context():
    from shared.log import _context

    active = 0
    peak = 0
    lock = threading.Lock()
    barrier = threading.Barrier(4, timeout=5)

    def work(item: int) -> tuple[int, str | None]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        if item < 4:
            barrier.wait()  # the first four run at the same time
        with lock:
            active -= 1
        return item * 2, _context.get().get("function")

    token = bind_context(function="send")
    try:
        results = run_bounded(work, list(range(12)), workers=4)
    finally:
        reset_context(token)
    assert results == [(i * 2, "send") for i in range(12)]
    assert peak == 4
