"""A closed-loop load generator: N threads, each with one keep-alive connection, over a list of requests.

Each thread takes the next request, builds it (signing happens here, just before sending),
sends it and waits for the whole answer; the latency is measured around the send and the read
only. Requests are built lazily so a long run's signatures stay fresh.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.harness import Connection, Response, percentile

__all__ = ["LoadResult", "Request", "run_load"]

# (method, path, body, headers)
Request = tuple[str, str, bytes | None, dict[str, str]]


@dataclass
class LoadResult:
    """Latencies (seconds, in completion order), answers per status, wall time."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    results: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    wall: float = 0.0

    @property
    def count(self) -> int:
        """Requests answered."""
        return len(self.latencies)

    def summary(self) -> dict[str, Any]:
        """Throughput (answers/s), p50/p99 (ms), answers by status and by ``result``."""
        return {
            "requests": self.count,
            "throughput": self.count / self.wall if self.wall else 0.0,
            "p50_ms": percentile(self.latencies, 50) * 1000,
            "p99_ms": percentile(self.latencies, 99) * 1000,
            "max_ms": max(self.latencies, default=0.0) * 1000,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "results": dict(sorted(self.results.items())),
            "failures": self.failures[:5],
            "wall_s": self.wall,
        }


def run_load(
    port: int,
    items: Sequence[Any],
    build: Callable[[Any], Request],
    *,
    concurrency: int,
    timeout: float = 30.0,
    deadline: float = 600.0,
    on_progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Send every item (built with ``build``) from ``concurrency`` threads; stop at ``deadline`` s."""
    result = LoadResult()
    lock = threading.Lock()
    position = 0
    stop_at = time.monotonic() + deadline

    def worker() -> None:
        nonlocal position
        conn = Connection(port, timeout=timeout)
        try:
            while time.monotonic() < stop_at:
                with lock:
                    if position >= len(items):
                        return
                    index = position
                    position += 1
                method, path, body, headers = build(items[index])
                started = time.perf_counter()
                try:
                    answer: Response = conn.request(method, path, body, headers)
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        result.failures.append(f"{path}: {type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - started
                parsed = answer.json() if answer.body[:1] == b"{" else None
                outcome = parsed.get("result") if isinstance(parsed, dict) else None
                if outcome is None and isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                    outcome = "error:" + str(parsed["error"].get("code"))
                with lock:
                    result.latencies.append(elapsed)
                    result.statuses[answer.status] += 1
                    result.results[str(outcome)] += 1
                    done = len(result.latencies)
                if on_progress is not None:
                    on_progress(done)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, stop_at - time.monotonic() + timeout + 5))
    result.wall = time.perf_counter() - started
    if position < len(items):
        result.failures.append(f"stopped at the {deadline:.0f} s deadline after {position} of {len(items)} requests")
    return result
