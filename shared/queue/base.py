"""The task queue contract and the rules every adapter shares.

Shaped like ``shared.store.base``: the public methods of :class:`TaskQueue` own the rules and
each adapter implements two primitives:

``_enqueue``  create one task unless a task of that name exists (returns False then)
``_cancel``   stop one task that has not run yet (best effort; returns True when stopped)

The rules:

- **Names.** A task's name is derived from its batch and recipient (:func:`task_name`), so
  enqueueing the same batch twice creates nothing the second time. The per-recipient
  idempotency claim in ``shared.messages`` stays the last word (Cloud Tasks forgets a name
  about an hour after the task ran; its emulator does not dedupe at all).
- **Scheduling.** A task may be due at most :data:`MAX_SCHEDULE_SECONDS` (30 days, the Cloud
  Tasks limit) ahead; a time in the past means "now".
- **Retries.** An attempt that asks for a retry waits :meth:`TaskQueue.backoff` (doubling from
  ``min_backoff`` up to ``max_backoff``, or the Retry-After it gave if longer), at most
  ``max_attempts`` attempts in all. The handler is told which attempt is the last one, so it
  records a final failure itself: the queue never drops a task silently.
- **Cancel.** Cancelling stops tasks that have not started; a task already handing its message
  to Vonage finishes (a sent SMS cannot be recalled). Because Cloud Tasks' emulator cannot
  delete tasks and a real deletion can race a dispatch, the batch record in the state store is
  the truth: the handler checks it before sending, and the adapter's cancel only saves work.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ValidationError

__all__ = [
    "MAX_SCHEDULE_SECONDS",
    "EnqueueReport",
    "RetryPolicy",
    "Task",
    "TaskQueue",
    "TaskResult",
    "check_schedule",
    "task_name",
]

MAX_SCHEDULE_SECONDS = 30 * 86400.0
_NAME_OK = re.compile(r"[A-Za-z0-9_-]{1,500}")  # Cloud Tasks task ids: letters, digits, '-', '_'


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a task is tried (deploy.sh sets the same on Cloud Tasks)."""

    max_attempts: int = 10
    min_backoff: float = 1.0
    max_backoff: float = 300.0

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = min(self.max_backoff, self.min_backoff * 2 ** max(0, attempt - 1))
        if retry_after is not None and math.isfinite(retry_after):
            delay = max(delay, min(retry_after, self.max_backoff))
        return delay

    def is_last(self, attempt: int) -> bool:
        """True when attempt number ``attempt`` (1-based) gets no retry after it."""
        return attempt >= self.max_attempts


@dataclass(frozen=True)
class Task:
    """One unit of work: a JSON payload due at ``due_at`` (epoch seconds)."""

    name: str
    payload: Mapping[str, Any]
    due_at: float = 0.0
    group: str = ""  # the batch: lets a whole batch be cancelled


@dataclass
class EnqueueReport:
    """What :meth:`TaskQueue.enqueue` did."""

    created: int = 0
    existing: int = 0
    names: list[str] = field(default_factory=list)


def task_name(batch_id: str, recipient: str) -> str:
    """The task of ``recipient`` in ``batch_id``: stable, so a second enqueue is refused.

    The recipient is hashed: a phone number never appears in a task name (names show up in
    Cloud Tasks' console and logs).
    """
    digest = hashlib.sha256(f"{batch_id}\n{recipient}".encode()).hexdigest()[:32]
    name = f"{batch_id}-{digest}"
    if not _NAME_OK.fullmatch(name):
        raise ValueError("batch ids must be letters, digits, '-' or '_'")
    return name


def check_schedule(due_at: float, now: float, *, field_name: str = "send_at") -> float:
    """``due_at`` if it is at most 30 days ahead (a past time means now), else 422."""
    if not math.isfinite(due_at):
        raise ValidationError(f"{field_name} is not a valid time", field=field_name)
    if due_at - now > MAX_SCHEDULE_SECONDS:
        raise ValidationError(
            f"{field_name} is more than 30 days ahead; schedule it later",
            field=field_name,
            code="send_at_too_far",
            details={"max_days": 30},
        )
    return max(due_at, now)


@dataclass(frozen=True)
class TaskResult:
    """What the handler made of one attempt: an HTTP-like status, as Cloud Tasks sees it.

    2xx (and any final 4xx) ends the task; 429 and 5xx ask for a retry after ``retry_after``.
    """

    status: int
    retry_after: float | None = None
    error: str | None = None

    @property
    def retry(self) -> bool:
        return self.status == 429 or self.status >= 500


class TaskQueue(ABC):
    """A named queue of HTTP-style tasks handled by ``deliver``."""

    name: str  # "embedded" or "cloudtasks"

    def __init__(self, *, policy: RetryPolicy | None = None, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy or RetryPolicy()
        self._clock = clock

    def enqueue(self, tasks: Iterable[Task]) -> EnqueueReport:
        """Create every task not created before; return the counts."""
        report = EnqueueReport()
        now = self._clock()
        for task in tasks:
            if not _NAME_OK.fullmatch(task.name):
                raise ValueError("task names are 1-500 letters, digits, '-' or '_'")
            due = check_schedule(task.due_at, now)
            if self._enqueue(Task(task.name, dict(task.payload), due, task.group)):
                report.created += 1
                report.names.append(task.name)
            else:
                report.existing += 1
        return report

    def cancel(self, names: Iterable[str]) -> int:
        """Stop the named tasks that have not started; return how many were stopped."""
        return sum(1 for name in names if self._cancel(name))

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """See :meth:`RetryPolicy.backoff`."""
        return self.policy.backoff(attempt, retry_after)

    @abstractmethod
    def _enqueue(self, task: Task) -> bool:
        """Create ``task`` unless a task of that name exists; True when created."""

    @abstractmethod
    def _cancel(self, name: str) -> bool:
        """Stop the task if it has not started; True when it was stopped."""
