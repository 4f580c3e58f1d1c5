"""The process-wide pacer: even spacing under the rate, backoff on throttling, bounded threads."""

from __future__ import annotations

import threading

import pytest

from shared.errors import VonageThrottledError
from shared.log import bind_context, reset_context
from shared.messages.pacing import Pacer, get_pacer, paced_call, reset_pacers, run_bounded


class FakeTime:
    """A clock that moves only when a test (or a pacer's wait) moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def pacer(self, rate: float) -> Pacer:
        return Pacer(rate, clock=self.clock, wait=lambda condition, seconds: self.sleep(seconds))


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events inside any half-open window [t, t + window)."""
    times = sorted(times)
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + window))
    return best


def send_through(fake: FakeTime, pacer: Pacer, latencies: list[float]) -> list[tuple[float, float]]:
    """Run one request per latency through the pacer; return (sent, answered) times."""
    spans = []
    for latency in latencies:
        slot = pacer.acquire()
        sent = fake.clock()
        fake.sleep(latency)
        pacer.release(slot)
        spans.append((sent, fake.clock()))
    return spans


def test_requests_are_evenly_spaced_at_the_rate():
    fake = FakeTime()
    spans = send_through(fake, fake.pacer(10), [0.0] * 25)
    sent = [s for s, _ in spans]
    assert {round(b - a, 9) for a, b in zip(sent, sent[1:], strict=False)} == {0.1}
    assert max_in_window(sent) == 10


@pytest.mark.parametrize(
    "latencies",
    [
        [0.05] * 40,  # steady latency
        [0.4] + [0.001] * 40,  # a slow first request (connection set-up, JWT signing)
        [0.001, 0.3, 0.001, 0.2] * 10,  # jitter
    ],
)
def test_no_window_sees_more_than_the_rate_wherever_a_request_lands(latencies):
    # A request reaches Vonage somewhere between being sent and being answered: check both ends.
    fake = FakeTime()
    spans = send_through(fake, fake.pacer(10), latencies)
    assert max_in_window([sent for sent, _ in spans]) <= 10
    assert max_in_window([answered for _, answered in spans]) <= 10


def test_a_slot_frees_one_window_after_its_answer():
    fake = FakeTime()
    pacer = fake.pacer(2)
    first, second = pacer.acquire(), pacer.acquire()
    fake.sleep(0.3)
    pacer.release(first)
    pacer.release(second)
    start = fake.clock()
    pacer.acquire()
    assert fake.clock() - start == pytest.approx(1.0)  # released at +0.3 (first), free at +1.3


def test_a_rate_under_one_per_second_stretches_the_window():
    pacer = Pacer(0.5)
    assert (pacer.capacity, pacer.window) == (1, 2.0)
    assert (Pacer(30).capacity, Pacer(30).window, Pacer(30).interval) == (30, 1.0, 1 / 30)
    assert Pacer(2.5).capacity == 2  # never more than 2 in a second, so never over 2.5


def test_an_idle_pacer_does_not_delay_the_first_request():
    fake = FakeTime()
    pacer = fake.pacer(5)
    fake.sleep(60)
    start = fake.clock()
    pacer.acquire()
    assert fake.clock() == start


def test_concurrent_threads_share_one_budget():
    import time

    pacer = Pacer(50)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            with pacer.slot():
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
    pacer = fake.pacer(100)
    pacer.release(pacer.acquire())
    pacer.pause(2.0)
    start = fake.clock()
    pacer.acquire()
    assert fake.clock() - start == pytest.approx(2.0)


def test_paced_call_retries_throttling_after_the_retry_after_and_then_gives_up():
    fake = FakeTime()
    pacer = fake.pacer(1000)
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
