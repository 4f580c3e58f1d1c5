"""5. Memory: resident memory of the one-process app, idle and after many requests.

The one-process app runs under gunicorn with scripts/serve.sh's settings on the SQLite store,
sending to the local sandbox. A mixed stream of requests arrives from 16 client threads:
signed status and inbound webhooks (35% each, each a new event), dry-run sends (10%), real
sends to the sandbox (5%), health checks (5%), and error answers (10%: an unknown message id,
a wrong bearer token). The gunicorn worker's RSS (``VmRSS``) is read when it is idle after boot,
after the warm-up share of the stream (every lazy import and pool in place), at every tenth of
the stream, and idle at the end. Growth is measured from the warm-up point to the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.burst import serve_app
from bench.harness import BenchError, rss_kib
from bench.load import run_load
from bench.stack import Credentials, function_env, recipients, start_sandbox, unique_suffix
from bench.workload import Delivery, WebhookWorkload

__all__ = ["GROWTH_LIMIT_KIB", "run_memory"]

# "No growth beyond noise": at most this much, or GROWTH_LIMIT_SHARE of the warm RSS if larger.
GROWTH_LIMIT_KIB = 2048
GROWTH_LIMIT_SHARE = 0.03
WARMUP_SHARE = 0.1  # of the stream, and at least WARMUP_MIN requests (up to half the stream)
WARMUP_MIN = 1000


def _stream(creds: Credentials, count: int) -> tuple[list[Any], WebhookWorkload]:
    """``count`` requests in a fixed, interleaved mix (see the module docstring)."""
    webhooks = WebhookWorkload(creds, int(count * 0.7) + 1, duplicate_share=0.0, seed=11)
    hooks = iter(webhooks.deliveries)
    numbers = iter(recipients(count, start=0) * 2)
    pattern = ["hook"] * 14 + ["dry", "dry", "send", "health", "missing", "unauthorized"]
    items: list[Any] = []
    for index in range(count):
        kind = pattern[index % len(pattern)]
        if kind == "hook":
            items.append(next(hooks, None) or ("health",))
        else:
            items.append((kind, next(numbers)))
    return items, webhooks


def _builder(creds: Credentials) -> Callable[[Any], tuple[str, str, bytes | None, dict[str, str]]]:
    auth = {"Authorization": f"Bearer {creds.api_token}", "Content-Type": "application/json"}

    def build(item: Any) -> tuple[str, str, bytes | None, dict[str, str]]:
        if isinstance(item, Delivery):
            body, headers = item.render(creds)
            return "POST", item.path, body, headers
        kind = item[0]
        if kind == "health":
            return "GET", "/healthz", None, {}
        if kind == "missing":
            return "GET", "/send/msg_" + "0" * 32, None, auth
        if kind == "unauthorized":
            return "POST", "/send", b"{}", {"Authorization": "Bearer wrong-token", "Content-Type": "application/json"}
        send: dict[str, Any] = {"to": item[1], "text": "Memory check", "api": "sms"}
        if kind == "dry":
            send["dry_run"] = True
        return "POST", "/send", json.dumps(send).encode(), auth

    return build


def run_memory(
    creds: Credentials, run_dir: Path, *, count: int, concurrency: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """RSS of the app's worker at boot, after warm-up, along ``count`` requests and at the end."""
    sandbox = start_sandbox(creds)
    try:
        env = function_env(
            creds,
            state_path=run_dir / f"memory-{unique_suffix()}.sqlite3",
            sandbox_url=sandbox.url,
            VONAGE_MAX_RPS="1000",
        )
        items, webhooks = _stream(creds, count)
        from shared.store.sqlite import SQLiteStateStore

        store = SQLiteStateStore(env["STATE_SQLITE_PATH"])
        webhooks.prepare(store)
        store.close()
        child, port = serve_app("app:app", env, run_dir / "logs" / "memory.log")
        try:
            workers = child.children()
            if len(workers) != 1:
                raise BenchError(f"expected one gunicorn worker, found {workers}")
            worker = workers[0]
            time.sleep(1.0)
            samples: list[dict[str, Any]] = [{"requests": 0, "rss_kib": rss_kib(worker), "point": "idle after boot"}]
            warm_at = max(1, int(count * WARMUP_SHARE), min(count // 2, WARMUP_MIN))
            step = max(1, count // 10)

            def progress(done: int) -> None:
                # Each count is reported once (run_load counts under its lock).
                if done == warm_at or done % step == 0:
                    point = "warm" if done == warm_at else ""
                    samples.append({"requests": done, "rss_kib": rss_kib(worker), "point": point})

            result = run_load(
                port, items, _builder(creds), concurrency=concurrency, deadline=1800.0, on_progress=progress
            )
            time.sleep(1.0)
            samples.append({"requests": result.count, "rss_kib": rss_kib(worker), "point": "idle at the end"})
        finally:
            child.stop()
    finally:
        sandbox.stop()
    log(f"memory: {result.count} requests done")

    samples.sort(key=lambda s: (s["requests"], s["point"] != "warm"))
    warm = next(s for s in samples if s["point"] == "warm")
    end = samples[-1]
    growth = end["rss_kib"] - warm["rss_kib"]
    limit = max(GROWTH_LIMIT_KIB, int(warm["rss_kib"] * GROWTH_LIMIT_SHARE))
    statuses = result.summary()["statuses"]
    unexpected = {code: n for code, n in statuses.items() if code not in ("200", "202", "401", "404")}
    return {
        "requests": result.count,
        "concurrency": concurrency,
        "idle_kib": samples[0]["rss_kib"],
        "warm_kib": warm["rss_kib"],
        "end_kib": end["rss_kib"],
        "growth_kib": growth,
        "limit_kib": limit,
        "samples": samples,
        "statuses": statuses,
        "results": dict(result.results),
        "failures": result.failures[:5],
        "bars": [
            {
                "id": "5",
                "text": f"no memory growth beyond noise over {result.count:,} requests "
                f"(warm → end at most {limit / 1024:.1f} MiB)",
                "met": growth <= limit and not unexpected and not result.failures,
                "value": f"idle {samples[0]['rss_kib'] / 1024:.1f} MiB, warm {warm['rss_kib'] / 1024:.1f} MiB, "
                f"end {end['rss_kib'] / 1024:.1f} MiB: growth {growth / 1024:+.1f} MiB"
                + (f"; unexpected answers {unexpected}" if unexpected else ""),
            }
        ],
    }
