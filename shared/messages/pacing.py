"""Keeping under Vonage's request rate: one pacer per process, shared by every thread.

Vonage allows 30 requests per second per API key by default and answers "throttled" above
it (vonage-api.md 10.1). :class:`Pacer` is a token bucket holding ONE token, refilled every
``(1 + SAFETY) / rate`` seconds (the GCRA form of a token bucket): requests leave evenly
spaced, never in bursts. A bigger bucket would let ``capacity + rate`` requests through in
the first second, which is over the limit in a sliding one-second window - the way Vonage
counts. The 5 % ``SAFETY`` absorbs the scheduling jitter between the moment a slot is
granted and the moment the request reaches Vonage.

- :func:`get_pacer` returns the pacer of this process for a rate (``VONAGE_MAX_RPS``),
  so concurrent requests of one instance share one budget. Several instances each get
  their own: give each ``VONAGE_MAX_RPS`` = account rate / instances.
- :meth:`Pacer.pause` is the backoff: when Vonage throttles anyway (another process, another
  tool on the same key), every thread of this process waits, not only the one that was told.
- :func:`paced_call` takes a slot, calls, and on ``VonageThrottledError`` pauses the pacer
  for the ``Retry-After`` (or an exponential backoff) and tries again, a bounded number of
  times. It comes on top of ``VonageClient``'s own retries, which back off one request.
- :func:`run_bounded` runs a function over items on a small thread pool, so network latency
  does not cap throughput below the rate (50 ms per request is 20/s for one thread). All
  threads share the one ``VonageClient`` and its keep-alive connection pool.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from shared.errors import VonageThrottledError

__all__ = [
    "BULK_WORKERS",
    "SAFETY",
    "THROTTLE_RETRIES",
    "Pacer",
    "get_pacer",
    "paced_call",
    "reset_pacers",
    "run_bounded",
]

SAFETY = 0.05  # spacing is 5 % wider than 1/rate
BULK_WORKERS = 16  # threads per bulk send; enough for 30/s at 500 ms latency
THROTTLE_RETRIES = 2  # extra attempts after VonageClient's own retries gave up
THROTTLE_BACKOFF = 1.0  # seconds, doubled per attempt, when Vonage gave no Retry-After
MAX_PAUSE = 30.0

T = TypeVar("T")
R = TypeVar("R")


class Pacer:
    """Grants evenly spaced slots at most ``rate`` per second; thread-safe."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.interval = (1.0 + SAFETY) / rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = clock()

    def acquire(self) -> float:
        """Wait for the next free slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)  # outside the lock: other threads reserve later slots meanwhile
        return wait

    def pause(self, seconds: float) -> None:
        """Grant no slot for ``seconds`` from now (Vonage throttled us)."""
        with self._lock:
            self._next = max(self._next, self._clock() + min(max(seconds, 0.0), MAX_PAUSE))


_pacers: dict[float, Pacer] = {}
_pacers_lock = threading.Lock()


def get_pacer(rate: float) -> Pacer:
    """The process-wide pacer for ``rate`` requests per second."""
    with _pacers_lock:
        pacer = _pacers.get(rate)
        if pacer is None:
            pacer = _pacers[rate] = Pacer(rate)
        return pacer


def reset_pacers() -> None:
    """Forget every pacer (tests)."""
    with _pacers_lock:
        _pacers.clear()


def paced_call(pacer: Pacer, fn: Callable[[], T], *, retries: int = THROTTLE_RETRIES) -> T:
    """``fn()`` in a paced slot; throttling pauses the whole pacer and retries ``retries`` times."""
    attempt = 0
    while True:
        pacer.acquire()
        try:
            return fn()
        except VonageThrottledError as exc:
            if attempt >= retries:
                raise
            delay = exc.retry_after if exc.retry_after is not None else THROTTLE_BACKOFF * (2**attempt)
            pacer.pause(delay)
            attempt += 1


def run_bounded(fn: Callable[[T], R], items: Sequence[T], *, workers: int = BULK_WORKERS) -> list[R]:
    """``[fn(item) for item in items]`` on at most ``workers`` threads, results in item order.

    Each task runs in a copy of the caller's context, so log fields bound for the request
    (function name, trace) stay on every line. ``fn`` must not raise: exceptions propagate
    only after every task has finished.
    """
    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="send") as pool:
        futures = [pool.submit(contextvars.copy_context().run, fn, item) for item in items]
        return [future.result() for future in futures]
