"""The embedded queue: tasks kept in the state store, handled by worker threads of the app.

Built only on the generic ``StateStore`` contract (create / get / update / query), so it works
on SQLite today and on any later backend unchanged. One document per task in collection
``queue_tasks``, keyed by the task name (the create-if-absent is the dedupe)::

    {"name", "group" (the batch), "payload", "state": "queued" | "leased" | "done" | "cancelled",
     "due_at", "attempts", "lease_until", "owner", "last_error"}

- **Claim**: a worker reads the earliest due ``queued`` tasks and takes one with a transactional
  update that only succeeds while it is still ``queued`` (two workers never get the same task).
  The claim is a lease: a worker that crashes leaves ``leased`` with a ``lease_until`` in the
  past, and the next claim takes the task over (that attempt counts).
- **Retry**: back to ``queued`` with a later ``due_at`` (the policy's backoff).
- **Pacing across processes**: :class:`StorePacer` keeps the slots of the one Vonage budget in
  one document, so every process and thread on the same store shares ``VONAGE_MAX_RPS``.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shared.errors import RecordExistsError, StoreError
from shared.log import get_logger
from shared.queue.base import RetryPolicy, Task, TaskQueue, TaskResult

__all__ = ["TASKS", "PACING", "ClaimedTask", "EmbeddedQueue", "QueueWorker", "StorePacer"]

TASKS = "queue_tasks"
PACING = "queue_pacing"
DONE_TTL = 7 * 86400.0  # a finished task's name is refused this long (Cloud Tasks: about 1 h)
_CANDIDATES = 32  # due tasks read per query; each owner works through its own shuffled copy

log = get_logger("shared.queue.embedded")


@dataclass(frozen=True)
class ClaimedTask:
    """A task this worker holds until ``lease_until``."""

    name: str
    payload: dict[str, Any]
    attempt: int  # 1-based: this attempt's number
    owner: str


class EmbeddedQueue(TaskQueue):
    """Tasks in the state store; :class:`QueueWorker` runs them."""

    name = "embedded"

    def __init__(
        self,
        store: Any,
        *,
        policy: RetryPolicy | None = None,
        lease: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(policy=policy, clock=clock)
        self.store = store
        self.lease = lease
        self._cached: dict[str, list[str]] = {}  # owner -> due task names from its last query

    # ---- primitives ---------------------------------------------------------------------

    def _enqueue(self, task: Task) -> bool:
        doc = {
            "name": task.name,
            "group": task.group,
            "payload": dict(task.payload),
            "state": "queued",
            "due_at": task.due_at,
            "attempts": 0,
            "lease_until": None,
            "owner": None,
            "last_error": None,
        }
        try:
            self.store.create(TASKS, task.name, doc)
        except RecordExistsError:
            return False
        return True

    def _cancel(self, name: str) -> bool:
        def stop(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None or doc.get("state") != "queued":
                return None
            return {**doc, "state": "cancelled"}

        after = self.store.update(TASKS, name, stop)
        return after is not None and after.get("state") == "cancelled"

    # ---- worker side ----------------------------------------------------------------------

    def claim(self, owner: str) -> tuple[ClaimedTask | None, float | None]:
        """Take one due task (or one whose lease ran out); else (None, the next due time).

        The due tasks one query found are kept for this ``owner``'s next claims: the query
        (ordered by due time over the whole collection) cost as much as the rest of a claim,
        and the transactional take re-checks each candidate anyway (a stale one is skipped).
        """
        now = self._clock()
        cached = self._cached.pop(owner, [])
        while cached:
            claimed = self._take(cached.pop(), owner, "queued")
            if claimed is not None:
                self._cached[owner] = cached
                return claimed, None
        queued = self.store.query(TASKS, where={"state": "queued"}, order_by="due_at", limit=_CANDIDATES)
        due = [doc["name"] for doc in queued if float(doc.get("due_at") or 0) <= now]
        random.shuffle(due)
        while due:
            claimed = self._take(due.pop(), owner, "queued")
            if claimed is not None:
                self._cached[owner] = due
                return claimed, None
        leased = self.store.query(TASKS, where={"state": "leased"}, order_by="lease_until", limit=_CANDIDATES)
        for doc in leased:
            if float(doc.get("lease_until") or 0) <= now:
                claimed = self._take(doc["name"], owner, "leased")
                if claimed is not None:
                    log.warning("took over a task whose worker stopped", extra={"task": doc["name"]})
                    return claimed, None
        upcoming = [float(doc.get("due_at") or 0) for doc in queued if float(doc.get("due_at") or 0) > now]
        return None, min(upcoming) if upcoming else None

    def _take(self, name: str, owner: str, expected: str) -> ClaimedTask | None:
        def take(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            now = self._clock()
            if doc is None or doc.get("state") != expected:
                return None
            if expected == "queued" and float(doc.get("due_at") or 0) > now:
                return None
            if expected == "leased" and float(doc.get("lease_until") or 0) > now:
                return None
            attempts = int(doc.get("attempts") or 0) + 1
            return {**doc, "state": "leased", "owner": owner, "lease_until": now + self.lease, "attempts": attempts}

        after = self.store.update(TASKS, name, take)
        if after is None or after.get("owner") != owner or after.get("state") != "leased":
            return None
        return ClaimedTask(name, dict(after.get("payload") or {}), int(after["attempts"]), owner)

    def finish(self, task: ClaimedTask, result: TaskResult) -> None:
        """Record the attempt: done, or queued again after the backoff (never past max_attempts)."""
        retry = result.retry and not self.policy.is_last(task.attempt)
        delay = self.backoff(task.attempt, result.retry_after) if retry else 0.0

        def record(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None or doc.get("owner") != task.owner or doc.get("state") != "leased":
                return None  # our lease ran out and another worker has it now
            now = self._clock()
            if retry:
                return {**doc, "state": "queued", "due_at": now + delay, "lease_until": None, "last_error": result.error}
            return {**doc, "state": "done", "lease_until": None, "last_error": result.error}

        self.store.update(TASKS, task.name, record, ttl=None if retry else DONE_TTL)

    def get(self, name: str) -> dict[str, Any] | None:
        """The task document (tests, diagnostics)."""
        return self.store.get(TASKS, name)


class StorePacer:
    """One request budget shared by every process on the same store (``VONAGE_MAX_RPS``).

    The same guarantee as ``shared.messages.pacing.Pacer``, kept in one store document instead
    of process memory: at most ``capacity = floor(rate)`` slots; a request takes a slot before
    it is sent and gives it back when the answer came; the slot stays busy one ``window`` after
    that; slots are handed out at least ``window / capacity`` apart. Any requests that reach
    Vonage within one window all held their slots at one moment, so there are at most
    ``capacity`` of them, whatever the number of processes. A slot whose holder crashed is freed
    after ``hold`` seconds. Interface of ``Pacer``: :meth:`slot` and :meth:`pause`.
    """

    def __init__(
        self,
        store: Any,
        rate: float,
        *,
        key: str = "vonage",
        hold: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.store = store
        self.capacity = max(1, int(rate))
        self.window = max(1.0, self.capacity / rate)
        self.interval = self.window / self.capacity
        self.key = key
        self.hold = hold
        self._clock = clock
        self._sleep = sleep
        # One thread per process asks the store at a time: the others would only add write
        # contention on the one document, not throughput.
        self._local = threading.Lock()

    def _try(self, slot_id: str) -> float:
        """Take a slot: 0.0 when taken, else the seconds to wait before asking again."""
        waits: list[float] = []

        def take(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            now = self._clock()
            doc = doc or {}
            slots = [s for s in doc.get("slots", []) if _busy(s, now, self.window, self.hold)]
            wait = max(float(doc.get("next", 0.0)) - now, float(doc.get("paused_until", 0.0)) - now)
            if len(slots) >= self.capacity:
                released = [float(s["released"]) for s in slots if s.get("released") is not None]
                wait = max(wait, min(released) + self.window - now if released else 0.05)
            if wait > 0:
                waits.append(wait)
                return None
            waits.append(0.0)
            slots.append({"id": slot_id, "at": now, "released": None})
            # On a schedule: a taker that came a little late (the store, a busy process) does not
            # push every later slot back, which cost a few percent of the limit per process. Safe:
            # the busy-slot rule above alone bounds the requests in any window.
            scheduled = float(doc.get("next", 0.0))
            following = (scheduled if 0 <= now - scheduled < self.interval / 2 else now) + self.interval
            return {**doc, "slots": slots, "next": following}

        self.store.update(PACING, self.key, take)
        return waits[-1]

    def acquire(self) -> str:
        slot_id = uuid.uuid4().hex
        with self._local:
            while True:
                try:
                    wait = self._try(slot_id)
                except StoreError:
                    wait = 0.05  # a busy store: ask again shortly (nothing was sent)
                if wait <= 0:
                    return slot_id
                self._sleep(min(max(wait, 0.002), 0.5))

    def release(self, slot_id: str) -> None:
        def free(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None:
                return None
            now = self._clock()
            slots = [dict(s, released=now) if s.get("id") == slot_id else s for s in doc.get("slots", [])]
            return {**doc, "slots": [s for s in slots if _busy(s, now, self.window, self.hold)]}

        for attempt in range(5):  # a slot left busy blocks a share of the budget for `hold` seconds
            try:
                self.store.update(PACING, self.key, free)
                return
            except StoreError:
                self._sleep(0.05 * (attempt + 1))
        log.error("could not give back a pacing slot; it frees itself later")

    @contextmanager
    def slot(self) -> Iterator[None]:
        taken = self.acquire()
        try:
            yield
        finally:
            self.release(taken)

    def pause(self, seconds: float) -> None:
        """Every process waits ``seconds`` (Vonage throttled one of them)."""
        until = self._clock() + min(max(seconds, 0.0), 30.0)

        def hold_off(doc: dict[str, Any] | None) -> dict[str, Any]:
            doc = doc or {}
            return {**doc, "paused_until": max(float(doc.get("paused_until", 0.0)), until)}

        self.store.update(PACING, self.key, hold_off)


def _busy(slot: dict[str, Any], now: float, window: float, hold: float) -> bool:
    released = slot.get("released")
    if released is None:
        return float(slot.get("at", 0.0)) + hold > now
    return float(released) + window > now


class QueueWorker:
    """Threads that claim tasks of an :class:`EmbeddedQueue` and run ``handler`` on them.

    ``handler(task) -> TaskResult`` is the same routine the ``deliver`` function runs for a
    Cloud Tasks request. Stop with :meth:`stop` (tasks in hand finish; none is abandoned).
    """

    def __init__(
        self,
        queue: EmbeddedQueue,
        handler: Callable[[ClaimedTask], TaskResult],
        *,
        threads: int = 4,
        poll: float = 0.5,
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.threads = threads
        self.poll = poll
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.owner = uuid.uuid4().hex[:12]

    def start(self) -> QueueWorker:
        for number in range(self.threads):
            thread = threading.Thread(
                target=contextvars.copy_context().run, args=(self._loop, f"{self.owner}-{number}"),
                name=f"queue-worker-{number}", daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        log.info("embedded queue worker started", extra={"threads": self.threads})
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def run_once(self, owner: str | None = None) -> bool:
        """Claim and handle one task; False when none was due (tests drive the queue with this)."""
        task, _ = self.queue.claim(owner or self.owner)
        if task is None:
            return False
        self._handle(task)
        return True

    def _loop(self, owner: str) -> None:
        while not self._stop.is_set():
            try:
                task, next_due = self.queue.claim(owner)
            except StoreError:
                log.warning("the queue could not be read; trying again shortly")
                self._stop.wait(self.poll)
                continue
            except Exception:
                log.exception("unexpected error claiming a task")
                self._stop.wait(self.poll)
                continue
            if task is None:
                wait = self.poll if next_due is None else min(self.poll, max(0.01, next_due - time.time()))
                self._stop.wait(wait)
                continue
            self._handle(task)

    def _handle(self, task: ClaimedTask) -> None:
        try:
            result = self.handler(task)
        except Exception:
            log.exception("a task handler failed unexpectedly", extra={"task": task.name})
            result = TaskResult(500, error="internal error")
        for attempt in range(5):
            try:
                self.queue.finish(task, result)
                return
            except StoreError:
                time.sleep(0.1 * (attempt + 1))
        log.error("could not record a task's outcome; its lease runs out and it is tried again", extra={"task": task.name})
