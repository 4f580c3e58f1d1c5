"""Benchmarks of the queued send path (docs/queue.md): ``.venv/bin/python -m bench.queue``.

1. **Enqueue**: one ``POST /send`` of N recipients (default 100,000) to the one-process app
   under gunicorn with the embedded queue: time to the 202, and the peak RSS of the worker
   process (VmHWM) while it accepted them. The send is scheduled an hour ahead, so the
   measurement is the acceptance, not the sending.
2. **Delivered rate**: a batch through the embedded queue with 1 and with 4 processes on the
   same SQLite store (the app plus ``python -m shared.queue.worker`` processes) against a
   sandbox that allows ``--rate``/s and answers after ``--latency`` s: the arrival rate the
   sandbox saw over the limit (goal >= 97 %), its throttled answers (goal 0) and the most
   arrivals in any one-second window.
3. With ``--emulator HOST``: tasks/s created in the Cloud Tasks emulator (one RPC per task).

Prints one JSON document (and writes it to ``bench/.runs/queue-<time>.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.bulk import _epoch, _max_in_window
from bench.burst import serve_app
from bench.harness import PYTHON, ROOT, BenchError, Child, base_env, request
from bench.stack import function_env, new_credentials, recipients, start_sandbox, unique_suffix

RUNS_DIR = ROOT / "bench" / ".runs"
TEXT = "Queued sale: 20% off today"


def _peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def _headers(creds: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.api_token}", "Content-Type": "application/json"}


def enqueue(creds: Any, run_dir: Path, count: int) -> dict[str, Any]:
    sandbox = start_sandbox(creds)
    try:
        env = function_env(creds, state_path=run_dir / f"enqueue-{unique_suffix()}.sqlite3", sandbox_url=sandbox.url,
                           QUEUE_BACKEND="embedded", LOG_LEVEL="WARNING")
        child, port = serve_app("app:app", env, run_dir / "logs" / "enqueue.log")
        try:
            workers = child.children() or [child.pid]
            before = max(_peak_rss_kib(pid) for pid in workers)
            send_at = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
            body = json.dumps({"to": recipients(count), "text": TEXT, "api": "sms", "send_at": send_at}).encode()
            started = time.perf_counter()
            answer = request(port, "POST", "/send", body, _headers(creds), timeout=900)
            wall = time.perf_counter() - started
            peak = max(_peak_rss_kib(pid) for pid in workers)
        finally:
            child.stop()
    finally:
        sandbox.stop()
    if answer.status != 202:
        raise BenchError(f"the queued send answered {answer.status}: {answer.body[:300]!r}")
    return {
        "recipients": count,
        "body_bytes": len(body),
        "time_to_202_s": round(wall, 3),
        "recipients_per_s": round(count / wall, 1),
        "rss_before_kib": before,
        "rss_peak_kib": peak,
        "summary": answer.json().get("summary"),
    }


def delivered_rate(creds: Any, run_dir: Path, *, processes: int, count: int, rate: int, latency: float) -> dict[str, Any]:
    sandbox = start_sandbox(creds, rate_limit=rate, faults=[{"kind": "delay", "value": latency, "api": "sms"}])
    children: list[Child] = []
    try:
        env = function_env(creds, state_path=run_dir / f"rate-{processes}-{unique_suffix()}.sqlite3", sandbox_url=sandbox.url,
                           QUEUE_BACKEND="embedded", VONAGE_MAX_RPS=str(rate), QUEUE_WORKERS="8", LOG_LEVEL="WARNING",
                           BULK_MAX_RECIPIENTS=str(max(count, 1000)))
        app, port = serve_app("app:app", env, run_dir / "logs" / f"rate-{processes}-app.log")
        children.append(app)
        for n in range(processes - 1):
            children.append(Child([PYTHON, "-m", "shared.queue.worker"], base_env(env),
                                  run_dir / "logs" / f"rate-{processes}-worker{n}.log").start())
        body = json.dumps({"to": recipients(count), "text": TEXT, "api": "sms"}).encode()
        answer = request(port, "POST", "/send", body, _headers(creds), timeout=300)
        if answer.status != 202:
            raise BenchError(f"the queued send answered {answer.status}: {answer.body[:300]!r}")
        deadline = time.monotonic() + count / rate * 3 + 120
        while len(sandbox.messages(api="sms")) < count and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.0)
        requests = sandbox.requests(api="sms")
    finally:
        for child in children:
            child.stop()
        sandbox.stop()
    outcomes = Counter(str(r["outcome"]) for r in requests)
    arrivals = sorted(_epoch(r["received_at"]) for r in requests if str(r["outcome"]) == "0")
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    achieved = (len(arrivals) - 1) / span if span else 0.0
    sent_to = Counter(str(r["fields"].get("to")) for r in requests if str(r["outcome"]) == "0")
    return {
        "processes": processes,
        "recipients": count,
        "allowed_rate": rate,
        "latency_ms": latency * 1000,
        "delivered": len(arrivals),
        "doubled": sum(1 for n in sent_to.values() if n > 1),
        "rate": round(achieved, 2),
        "share_of_limit": round(achieved / rate, 4),
        "throttled": outcomes.get("1", 0),
        "max_per_window": _max_in_window(arrivals),
    }


def emulator_enqueue(host: str, count: int) -> dict[str, Any]:
    """Tasks/s that CloudTasksQueue creates in the Cloud Tasks emulator at ``host`` (one RPC each).

    The emulator dispatches to an address nobody serves, with --max-retries of its own; the
    queue is paused first, so only the creation is measured.
    """
    from google.cloud import tasks_v2

    from shared.queue.base import Task, task_name
    from shared.queue.cloudtasks import CloudTasksQueue

    path = f"projects/bench/locations/l1/queues/q{unique_suffix().replace('-', '')[:12]}"
    queue = CloudTasksQueue(path, "http://127.0.0.1:9/", secret="bench", emulator_host=host)
    queue.client.create_queue(parent=path.rsplit("/queues/", 1)[0], queue=tasks_v2.Queue(name=path))
    queue.client.pause_queue(name=path)
    tasks = [Task(task_name("bat_bench", f"+4477{i:08d}"), {"batch_id": "bat_bench", "index": i}, 0.0, "bat_bench")
             for i in range(count)]
    started = time.perf_counter()
    report = queue.enqueue(tasks)
    wall = time.perf_counter() - started
    return {"tasks": count, "created": report.created, "seconds": round(wall, 3), "tasks_per_s": round(count / wall, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__.split("\n\n")[0])
    parser.add_argument("--enqueue", type=int, default=100_000, help="recipients of the enqueue measurement")
    parser.add_argument("--recipients", type=int, default=900, help="recipients of each delivered-rate run")
    parser.add_argument("--rate", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--processes", default="1,4")
    parser.add_argument("--emulator", default="", help="host:port of a Cloud Tasks emulator: also measure tasks/s into it")
    parser.add_argument("--emulator-tasks", type=int, default=2000)
    args = parser.parse_args(argv)
    creds = new_credentials()
    run_dir = RUNS_DIR / f"queue-{unique_suffix()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"started": dt.datetime.now(dt.timezone.utc).isoformat()}
    if args.enqueue:
        results["enqueue"] = enqueue(creds, run_dir, args.enqueue)
        print(json.dumps(results["enqueue"]), file=sys.stderr)
    if args.emulator:
        results["emulator_enqueue"] = emulator_enqueue(args.emulator, args.emulator_tasks)
        print(json.dumps(results["emulator_enqueue"]), file=sys.stderr)
    results["delivered"] = []
    for processes in (int(p) for p in args.processes.split(",") if p.strip()):
        run = delivered_rate(creds, run_dir, processes=processes, count=args.recipients, rate=args.rate, latency=args.latency)
        results["delivered"].append(run)
        print(json.dumps(run), file=sys.stderr)
    (run_dir / "queue.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
