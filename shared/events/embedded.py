"""The embedded bus: consumers run in this process, on one background worker, with retries.

For local runs (``./local.sh``) and tests: nothing to configure, nothing to install. A consumer
is the same callable a Cloud Function consumer is (it receives a ``cloudevents`` CloudEvent), so
code written for Pub/Sub runs here unchanged.

- ``publish`` only queues: the webhook answers without waiting for any consumer.
- Each (event, consumer) pair is delivered on its own: a failing consumer is retried with
  exponential backoff (``backoff`` doubling, ``max_attempts`` in all) without repeating the
  consumers that succeeded; after the last attempt the event is dead-lettered (kept in
  ``dead_letters`` and logged as an error).
- With a store, the worker also sweeps the outbox every ``sweep_interval`` seconds, so an event
  whose publish failed is delivered in the end.

The queue lives in memory: events queued when the process stops are not delivered (their
outbox documents are already marked published). That is the price of a bus without a server;
on Google Cloud, Pub/Sub holds them.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.events.base import Envelope, EventBus
from shared.log import get_logger

__all__ = ["Consumer", "DeadLetter", "EmbeddedBus"]

log = get_logger("shared.events.embedded")

Consumer = Callable[[Any], Any]  # receives a cloudevents CloudEvent


@dataclass(frozen=True)
class DeadLetter:
    """An event a consumer kept refusing."""

    event: dict[str, Any]
    consumer: str
    attempts: int
    error: str


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    envelope: Envelope = field(compare=False)
    consumer: Consumer = field(compare=False)
    attempt: int = field(compare=False, default=1)


class EmbeddedBus(EventBus):
    """In-process delivery with retries and a dead-letter list."""

    name = "embedded"

    def __init__(
        self,
        *,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sweep: Callable[[EventBus], Any] | None = None,
        sweep_interval: float = 30.0,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.dead_letters: list[DeadLetter] = []
        self._sweep = sweep
        self._sweep_interval = sweep_interval
        self._consumers: list[tuple[frozenset[str] | None, Consumer]] = []
        self._heap: list[_Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._busy = 0
        self._closed = False
        self._worker: threading.Thread | None = None

    def subscribe(self, consumer: Consumer, types: Iterable[str] | None = None) -> None:
        """Deliver every event (or only those of ``types``) to ``consumer`` from now on."""
        with self._cond:
            self._consumers.append((frozenset(types) if types is not None else None, consumer))
            if self._sweep is not None:
                self._start()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued, retrying or running; False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    # ---- adapter --------------------------------------------------------------

    def _publish(self, envelope: Envelope) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the embedded bus is closed")
            now = time.monotonic()
            for types, consumer in self._consumers:
                if types is None or envelope.type in types:
                    heapq.heappush(self._heap, _Delivery(now, next(self._seq), envelope, consumer))
            self._start()
            self._cond.notify_all()

    def _close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=5)

    # ---- the worker -----------------------------------------------------------

    def _start(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="embedded-event-bus", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        next_sweep = time.monotonic() + (self._sweep_interval if self._sweep is not None else float("inf"))
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._heap and self._heap[0].due <= now:
                        break
                    if now >= next_sweep:
                        break
                    wake = min(self._heap[0].due if self._heap else float("inf"), next_sweep)
                    self._cond.wait(min(max(wake - now, 0.0), 1.0))
                if self._closed:
                    return
                delivery = heapq.heappop(self._heap) if self._heap and self._heap[0].due <= time.monotonic() else None
                self._busy += 1
            try:
                if delivery is not None:
                    self._deliver(delivery)
                else:
                    next_sweep = time.monotonic() + self._sweep_interval
                    self._run_sweep()
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, delivery: _Delivery) -> None:
        from cloudevents.http import from_dict

        envelope = delivery.envelope
        name = getattr(delivery.consumer, "__name__", repr(delivery.consumer))
        try:
            delivery.consumer(from_dict(dict(envelope.event)))
            return
        except Exception as exc:
            error = type(exc).__name__
        if delivery.attempt >= self.max_attempts:
            self.dead_letters.append(DeadLetter(dict(envelope.event), name, delivery.attempt, error))
            log.error(
                "event dead-lettered after its last attempt",
                extra={"event_id": envelope.id, "event_type": envelope.type, "consumer": name, "attempts": delivery.attempt, "error": error},
            )
            return
        delay = min(self.backoff * 2 ** (delivery.attempt - 1), self.max_backoff)
        log.warning(
            "event consumer failed; retrying",
            extra={"event_id": envelope.id, "consumer": name, "attempt": delivery.attempt, "error": error, "retry_in": delay},
        )
        with self._cond:
            heapq.heappush(
                self._heap,
                _Delivery(time.monotonic() + delay, next(self._seq), envelope, delivery.consumer, delivery.attempt + 1),
            )

    def _run_sweep(self) -> None:
        assert self._sweep is not None
        try:
            self._sweep(self)
        except Exception as exc:
            log.warning("outbox sweep failed; next time", extra={"error": type(exc).__name__})
