"""Keeping under Vonage's request rate: one pacer per process, shared by every thread.

Vonage allows 30 requests per second per API key by default and answers "throttled" above
it (vonage-api.md 10.1), counting in a sliding one-second window. :class:`Pacer` guarantees
that no window of one second sees more than ``floor(rate)`` of our requests ARRIVE at Vonage,
whatever the network does:

- it holds ``capacity = floor(rate)`` slots; a request takes one before it is sent and gives
  it back when its answer came back; the slot is free again one ``window`` after that. A
  request arrives at Vonage after it took its slot and before its answer returns, so any
  requests arriving within one window all held their slots at one moment: at most
  ``capacity`` of them. (Spacing by send time alone is not enough: the first request of a
  process is slowed by the TLS handshake and JWT signing and lands close to the second.)
- slots are also spaced evenly (``window / capacity`` apart), so requests never leave in a burst.

The price is a little throughput: each slot is busy for one window plus the request's own
latency, so 30/s with 50 ms latency sends about 28.5/s.

- :func:`get_pacer` returns the pacer of this process for a rate (``VONAGE_MAX_RPS``), so
  concurrent requests of one instance share one budget. Several instances each get their
  own: give each ``VONAGE_MAX_RPS`` = account rate / instances.
- :meth:`Pacer.pause` is the backoff: when Vonage throttles anyway (another process, another
  tool on the same key), every thread of this process waits, not only the one that was told.
- :func:`paced_call` runs a call in a slot and on ``VonageThrottledError`` pauses the pacer for
  the ``Retry-After`` (or an exponential backoff) and tries again, a bounded number of times.
  It comes on top of ``VonageClient``'s own retries, which back off one request (and are sent
  within the slot of the call that made them).
- :func:`run_bounded` runs a function over items on a small thread pool, so network latency
  does not cap throughput below the rate (50 ms per request is 20/s for one thread). All
  threads share the one ``VonageClient`` and its keep-alive connection pool.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from shared.errors import VonageThrottledError

__all__ = [
    "BULK_WORKERS",
    "THROTTLE_RETRIES",
    "Pacer",
    "get_pacer",
    "paced_call",
    "reset_pacers",
    "run_bounded",
]

BULK_WORKERS = 16  # threads per bulk send; enough for 30/s at 500 ms latency
THROTTLE_RETRIES = 2  # extra attempts after VonageClient's own retries gave up
THROTTLE_BACKOFF = 1.0  # seconds, doubled per attempt, when Vonage gave no Retry-After
MAX_PAUSE = 30.0
_IN_FLIGHT_POLL = 0.05  # every slot is in flight: wait for a release, re-checking this often

T = TypeVar("T")
R = TypeVar("R")


class _Slot:
    __slots__ = ("released_at",)

    def __init__(self) -> None:
        self.released_at: float | None = None


class Pacer:
    """At most ``floor(rate)`` requests (at least 1) arriving in any ``window``; thread-safe.

    ``window`` is one second, longer for rates under 1/s (0.5/s: one request per 2 s).
    ``clock``/``wait`` are injectable for tests: ``wait(condition, seconds)`` blocks (the
    default waits on the condition, so a release wakes it early).
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Condition, float], object] | None = None,
    ) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError("rate must be a positive number")
        self.rate = rate
        self.capacity = max(1, int(rate))
        self.window = max(1.0, self.capacity / rate)
        self.interval = self.window / self.capacity
        self._clock = clock
        self._wait = wait or (lambda condition, seconds: condition.wait(seconds))
        self._cond = threading.Condition()
        self._busy: list[_Slot] = []
        self._next = clock()

    def acquire(self) -> _Slot:
        """Wait for a free, evenly spaced slot and take it; give it back with :meth:`release`."""
        with self._cond:
            while True:
                now = self._clock()
                self._busy = [s for s in self._busy if s.released_at is None or s.released_at + self.window > now]
                wait = self._next - now
                if len(self._busy) >= self.capacity:
                    released = [s.released_at for s in self._busy if s.released_at is not None]
                    wait = max(wait, min(released) + self.window - now if released else _IN_FLIGHT_POLL)
                if wait <= 0:
                    slot = _Slot()
                    self._busy.append(slot)
                    self._next = now + self.interval
                    return slot
                self._wait(self._cond, wait)

    def release(self, slot: _Slot) -> None:
        """The slot's request has its answer: the slot frees up one window from now."""
        with self._cond:
            slot.released_at = self._clock()
            self._cond.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """``with pacer.slot(): call()`` - acquire, call, release (also on error)."""
        taken = self.acquire()
        try:
            yield
        finally:
            self.release(taken)

    def pause(self, seconds: float) -> None:
        """Grant no slot for ``seconds`` from now (Vonage throttled us)."""
        with self._cond:
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
        try:
            with pacer.slot():
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
