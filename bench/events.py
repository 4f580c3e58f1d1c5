"""Webhook acknowledgement with a slow reply handler: in-process against through the bus.

    python -m bench.events            80 signed inbound webhooks per mode, 8 at a time
    python -m bench.events --quick    8 per mode (a smoke run)
    python -m bench.events --json F   also write the numbers to F

Three modes, each on the one-process app served over HTTP on 127.0.0.1 (SQLite store, signed SMS
API webhooks, every message new):

- ``no handler``: INBOUND_HANDLER unset, no bus: the floor.
- ``in-process``: INBOUND_HANDLER takes 2 s (bench/slow_handler.py) and runs inside the webhook,
  as before issue 13 (EVENTS_BACKEND=none).
- ``bus``: the same handler behind the bus (EVENTS_BACKEND=embedded, INBOUND_DISPATCH=bus): the
  webhook stores the message, records and publishes the event, and answers; on_inbound runs the
  handler afterwards on the bus's worker.

Goal: the ``bus`` p99 equals the ``no handler`` p99 (the handler's 2 s are off the webhook's
path). The embedded bus stands in for Pub/Sub here; with Pub/Sub the publish is one round trip
to Pub/Sub instead of a queue append.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from bench.harness import median, percentile

__all__ = ["MODES", "main", "run_mode"]

SECRET = "bench-events-signature-secret-0123456789"
API_KEY = "benchkey"
MODES: dict[str, dict[str, str]] = {
    "no handler": {"EVENTS_BACKEND": "none"},
    "in-process": {"EVENTS_BACKEND": "none", "INBOUND_HANDLER": "bench.slow_handler:handle"},
    "bus": {"EVENTS_BACKEND": "embedded", "INBOUND_DISPATCH": "bus", "INBOUND_HANDLER": "bench.slow_handler:handle"},
}
_VARIABLES = ("EVENTS_BACKEND", "INBOUND_DISPATCH", "INBOUND_HANDLER", "EVENTS_CONSUMERS", "PUBSUB_TOPIC", "PUBSUB_TOPIC_PREFIX")


@contextmanager
def _environment(extra: dict[str, str], state_path: str) -> Iterator[None]:
    base = {
        "VONAGE_API_KEY": API_KEY,
        "VONAGE_SIGNATURE_SECRET": SECRET,
        "VONAGE_SIGNATURE_METHOD": "md5hash",
        "STATE_BACKEND": "sqlite",
        "STATE_SQLITE_PATH": state_path,
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    saved = {name: os.environ.get(name) for name in (*base, *_VARIABLES)}
    for name in _VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(base)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _signed_inbound(n: int) -> dict[str, str]:
    from shared.vonage.signatures import sign_sms_params

    params = {
        "msisdn": f"4479111{n % 100000:05d}",
        "to": "447700900000",
        "messageId": f"BENCH{uuid.uuid4().hex[:12].upper()}",
        "text": f"question {n}",
        "type": "text",
        "message-timestamp": "2026-01-30 12:00:00",
        "api-key": API_KEY,
    }
    return sign_sms_params(params, secret=SECRET, method="md5hash")


def run_mode(name: str, *, requests: int, concurrency: int) -> dict[str, Any]:
    """Serve the app in ``name``'s configuration; send ``requests`` webhooks; the latencies (s)."""
    import httpx
    from werkzeug.serving import make_server

    from shared import deps

    with tempfile.TemporaryDirectory() as tmp, _environment(MODES[name], os.path.join(tmp, "state.sqlite3")):
        deps.reset()
        import logging

        from app import create_app

        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        server = make_server("127.0.0.1", 0, create_app({"/inbound": ("functions.inbound", "inbound")}), threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}/inbound"
        latencies: list[float] = []
        statuses: list[int] = []
        lock = threading.Lock()

        def one(n: int, http: httpx.Client) -> None:
            body = _signed_inbound(n)
            start = time.perf_counter()
            response = http.post(url, json=body)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                statuses.append(response.status_code)

        try:
            with httpx.Client(timeout=60.0, trust_env=False) as http:
                one(-1, http)  # warm-up: imports, store schema, first connection
                latencies.clear()
                statuses.clear()
                with ThreadPoolExecutor(concurrency) as pool:
                    list(pool.map(lambda n: one(n, http), range(requests)))
        finally:
            server.shutdown()
            thread.join(5)
            bus = deps.get_bus() if deps.get_bus.cache_info().currsize else None
            if bus is not None:
                bus.close()  # the worker stops after the handler it is running
            deps.reset()
    return {
        "mode": name,
        "requests": requests,
        "ok": sum(1 for s in statuses if s == 200),
        "p50_ms": round(median(latencies) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 webhooks per mode instead of 80")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access line per request
    requests = args.requests or (8 if args.quick else 80)
    results = [run_mode(name, requests=requests, concurrency=args.concurrency) for name in MODES]
    floor = results[0]["p99_ms"]
    print(f"\nWebhook acknowledgement, handler {2.0:.0f} s, {requests} signed inbound webhooks per mode, {args.concurrency} at a time\n")
    print(f"  {'mode':<12} {'ok':>4} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'p99 / no handler':>17}")
    for row in results:
        ratio = row["p99_ms"] / floor if floor else float("nan")
        print(f"  {row['mode']:<12} {row['ok']:>4} {row['p50_ms']:>9} {row['p99_ms']:>9} {row['max_ms']:>9} {ratio:>16.2f}x")
    bus, floor_row = results[2], results[0]
    met = bus["p99_ms"] <= max(2 * floor_row["p99_ms"], floor_row["p99_ms"] + 50)
    print(f"\n  goal (bus p99 ~ no-handler p99, within 2x or +50 ms): {'met' if met else 'NOT met'}\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": results, "goal_met": met}, handle, indent=2)
    return 0 if all(row["ok"] == row["requests"] for row in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
