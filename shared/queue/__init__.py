"""Task queues for bulk and scheduled sends: one contract (``base``), two adapters.

``QUEUE_BACKEND`` picks one (``shared.deps.get_queue`` logs the choice once):

- ``cloudtasks``: Google Cloud Tasks (``cloudtasks.py``), HTTP tasks to the ``deliver`` function;
  the queue's own rate limit holds across every instance.
- ``embedded``: tasks in the state store (``embedded.py``), run by worker threads of the
  one-process app, paced by one budget shared by every process on the store.
- ``none``: no queue; bulk sends stay synchronous (one request, paced by its process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.queue.base import RetryPolicy, Task, TaskQueue, TaskResult, task_name

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.store.base import StateStore

__all__ = ["RetryPolicy", "Task", "TaskQueue", "TaskResult", "open_queue", "retry_policy", "task_name"]


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry rules of QUEUE_MAX_ATTEMPTS / QUEUE_MIN_BACKOFF_SECONDS / QUEUE_MAX_BACKOFF_SECONDS."""
    return RetryPolicy(settings.queue_max_attempts, settings.queue_min_backoff, settings.queue_max_backoff)


def open_queue(settings: Settings, store: StateStore) -> TaskQueue | None:
    """The queue chosen by the settings (None for ``none``)."""
    if settings.queue_backend == "none":
        return None
    if settings.queue_backend == "embedded":
        from shared.queue.embedded import EmbeddedQueue

        return EmbeddedQueue(store, policy=retry_policy(settings), lease=settings.queue_lease_seconds)
    from shared.queue.cloudtasks import CloudTasksQueue

    return CloudTasksQueue.from_settings(settings)
