"""The embedded queue's worker inside the one-process app (``app.py``).

Every process that serves the app (each gunicorn worker, the local runner) starts one
:class:`~shared.queue.embedded.QueueWorker` with ``QUEUE_WORKERS`` threads. They run the same
routine as the ``deliver`` function (``shared.messages.batches.deliver_task``), and they share
one Vonage budget through the store (``StorePacer``), so adding processes adds no rate.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from shared.log import get_logger

__all__ = ["embedded_handler", "start_worker", "stop_worker"]

log = get_logger("shared.queue.worker")
_lock = threading.Lock()
_worker: Any = None


def embedded_handler(*, settings: Any, store: Any, vonage: Any, pacer: Any, queue: Any) -> Any:
    """``handler(task) -> TaskResult`` for a QueueWorker: ``deliver``'s routine, in-process."""
    from shared.messages.batches import deliver_task
    from shared.queue import retry_policy

    policy = retry_policy(settings)

    def handle(task: Any) -> Any:
        return deliver_task(
            task.payload,
            attempt=task.attempt,
            last_attempt=policy.is_last(task.attempt),
            settings=settings,
            store=store,
            vonage=vonage,
            pacer=pacer,
            queue=queue,
            now=time.time(),
        )

    return handle


def start_worker() -> Any:
    """Start this process's worker when the queue is embedded (once); returns it or None."""
    global _worker
    from shared import deps
    from shared.queue.embedded import EmbeddedQueue, QueueWorker

    with _lock:
        if _worker is not None:
            return _worker
        settings = deps.get_settings()
        queue = deps.get_queue()
        if not isinstance(queue, EmbeddedQueue):
            return None
        handler = embedded_handler(settings=settings, store=deps.get_store(), vonage=deps.get_vonage(),
                                   pacer=deps.get_queue_pacer(), queue=queue)
        _worker = QueueWorker(queue, handler, threads=settings.queue_workers).start()
        return _worker


def stop_worker(timeout: float = 30.0) -> None:
    """Stop this process's worker (tasks in hand finish first)."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.stop(timeout)


def main() -> None:
    """``python -m shared.queue.worker``: a process that only runs the embedded queue's worker.

    For hosts where the web processes should not send (or a second machine on the same store);
    stops cleanly on SIGTERM / Ctrl-C, finishing the tasks in hand.
    """
    import signal

    from shared.deps import get_settings

    get_settings()  # a bad configuration fails here, loudly
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    worker = start_worker()
    if worker is None:
        raise SystemExit("QUEUE_BACKEND does not resolve to embedded: there is nothing for this worker to run")
    while not stop.wait(1.0):
        pass
    stop_worker()


if __name__ == "__main__":
    main()
