"""6. The send path on each store: single-message ``POST /send`` from concurrent callers.

The one-process app runs under gunicorn with serve.sh's settings on the embedded SQLite store, the
Firestore emulator and PostgreSQL (a fresh database per run), against a zero-latency, unthrottled
local sandbox (SMS API), with ``VONAGE_MAX_RPS`` raised so the pacer never waits: what is measured
is our send path and its store round trips (idempotency, suppression list, the message record
written before Vonage is called and completed after). After each run the store is read back: every
message has exactly one record, ``submitted``, and the sandbox accepted each one once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.burst import serve_app, start_backends, stop_backends, store_env
from bench.emulator import FirestoreEmulator
from bench.harness import median
from bench.load import run_load
from bench.postgres import PostgresServer
from bench.stack import Credentials, function_env, recipients, start_sandbox

__all__ = ["run_send"]

TEXT = "Benchmark message: your code is ready"
_LABELS = {
    "sqlite": "POST /send, embedded SQLite store",
    "firestore": "POST /send, Firestore emulator",
    "postgres": "POST /send, PostgreSQL",
}


def _send_once(
    backend: str,
    creds: Credentials,
    run_dir: Path,
    count: int,
    concurrency: int,
    start: int,
    emulator: FirestoreEmulator | None,
    server: PostgresServer | None,
) -> dict[str, Any]:
    warm_numbers = recipients(2 * concurrency, start=start)
    numbers = recipients(count, start=start + 2 * concurrency)
    sandbox = start_sandbox(creds)
    backend_env, store = store_env(backend, run_dir, emulator, server)
    try:
        env = function_env(creds, sandbox_url=sandbox.url, application=False, VONAGE_MAX_RPS="1000") | backend_env
        child, port = serve_app("app:app", env, run_dir / "logs" / f"send-{backend}.log")
        headers = {"Authorization": f"Bearer {creds.api_token}", "Content-Type": "application/json"}

        def build(number: str) -> tuple[str, str, bytes, dict[str, str]]:
            return "POST", "/send", json.dumps({"to": number, "text": TEXT, "api": "sms"}).encode(), headers

        try:
            run_load(port, warm_numbers, build, concurrency=concurrency)  # lazy imports, pools
            result = run_load(port, numbers, build, concurrency=concurrency, deadline=900.0)
        finally:
            child.stop()
        summary = result.summary()
        summary["check"] = _check(store, sandbox, warm_numbers + numbers)
        return summary
    finally:
        store.close()
        sandbox.stop()


def _check(store: Any, sandbox: Any, numbers: list[str]) -> dict[str, Any]:
    """One submitted record per number in the store, one accepted message per number in the sandbox."""
    from shared.messages.records import MESSAGES

    records = store.query(MESSAGES, limit=len(numbers) + 100)
    by_number: dict[str, int] = {}
    for record in records:
        if record.get("status") == "submitted":
            by_number[str(record.get("to"))] = by_number.get(str(record.get("to")), 0) + 1
    accepted: dict[str, int] = {}
    for message in sandbox.messages(api="sms"):
        to = "+" + str(message["fields"].get("to"))
        accepted[to] = accepted.get(to, 0) + 1
    missing = [n for n in numbers if by_number.get(n, 0) != 1 or accepted.get(n, 0) != 1]
    return {
        "messages": len(numbers),
        "records": len(records),
        "accounted": not missing and len(records) == len(numbers),
        "examples": missing[:5],
    }


def run_send(
    creds: Credentials,
    run_dir: Path,
    *,
    count: int,
    concurrency: int,
    rounds: int,
    firestore: bool,
    postgres: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``count`` single-message sends ``rounds`` times per backend; medians and the check."""
    emulator, server, skips = start_backends(run_dir, firestore=firestore, postgres=postgres)
    backends = ["sqlite"] + [name for name in ("firestore", "postgres") if name not in skips]
    runs: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
    try:
        for round_index in range(rounds):
            shift = round_index % len(backends)
            for offset, backend in enumerate(backends[shift:] + backends[:shift]):
                # Numbers never repeat within a run (a repeat could meet the suppression list).
                start = 300000 + (round_index * len(backends) + offset) * (count + 2 * concurrency)
                runs[backend].append(
                    _send_once(backend, creds, run_dir, count, concurrency, start, emulator, server)
                )
            log(f"send path: round {round_index + 1}/{rounds} done")
    finally:
        stop_backends(emulator, server)

    rows: list[dict[str, Any]] = []
    for backend in ("sqlite", "firestore", "postgres"):
        if backend not in runs:
            rows.append({"name": backend, "label": _LABELS[backend], "skipped": skips.get(backend)})
            continue
        results = runs[backend]
        rows.append(
            {
                "name": backend,
                "label": _LABELS[backend],
                "throughput": median(r["throughput"] for r in results),
                "p50_ms": median(r["p50_ms"] for r in results),
                "p99_ms": median(r["p99_ms"] for r in results),
                "statuses": _merge(r["statuses"] for r in results),
                "failures": sum(len(r["failures"]) for r in results),
                "accounted": all(r["check"]["accounted"] for r in results),
                "examples": [e for r in results for e in r["check"]["examples"]][:5],
                "runs": results,
            }
        )
    sqlite = next(r for r in rows if r["name"] == "sqlite")
    ran = [r for r in rows if not r.get("skipped")]
    return {
        "messages": count,
        "concurrency": concurrency,
        "rounds": rounds,
        "rows": rows,
        "bars": [
            {
                "id": "6",
                "text": "every message sent once and recorded once, on every store that ran",
                "met": all(r["accounted"] and r["failures"] == 0 for r in ran),
                "value": "; ".join(
                    f"{r['name']}: {'accounted' if r['accounted'] else 'NOT accounted'}, "
                    f"{r['throughput']:.0f}/s (p99 {r['p99_ms']:.0f} ms, {r['throughput'] / sqlite['throughput']:.2f}x SQLite)"
                    for r in ran
                )
                + "".join(f"; {name} not run: {why}" for name, why in skips.items()),
            }
        ],
    }


def _merge(counters: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for counter in counters:
        for key, value in counter.items():
            total[key] = total.get(key, 0) + value
    return total
