"""3. Bulk pacing: how close a bulk send gets to the account's rate limit without being throttled.

One ``POST /send`` with a list of recipients (SMS API) goes to the one-process app (gunicorn,
serve.sh settings), which talks to the local sandbox enforcing ``rate`` requests per second
(a sliding one-second window, as Vonage counts) with ``latency`` seconds of simulated network
latency on every request (the sandbox's ``delay`` fault). Measured: messages accepted per
second of the whole request (from sending it to its answer), as a share of the allowed rate;
the sandbox's throttled answers; and whether every recipient is accounted for (the answer's
summary and results, and the messages the sandbox accepted).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.burst import serve_app
from bench.harness import BenchError, median, request
from bench.stack import Credentials, function_env, recipients, start_sandbox, unique_suffix

__all__ = ["run_bulk"]

TEXT = "Benchmark bulk message: your order has shipped"


def _epoch(iso: str) -> float:
    return dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


def _max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most arrivals in any half-open window of ``window`` seconds (the sandbox's rule)."""
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _bulk_once(creds: Credentials, run_dir: Path, count: int, rate: int, latency: float) -> dict[str, Any]:
    sandbox = start_sandbox(creds, rate_limit=rate, faults=[{"kind": "delay", "value": latency, "api": "sms"}])
    try:
        env = function_env(
            creds,
            state_path=run_dir / f"bulk-{unique_suffix()}.sqlite3",
            sandbox_url=sandbox.url,
            BULK_MAX_RECIPIENTS=str(count),
            VONAGE_MAX_RPS=str(rate),
            QUEUE_BACKEND="none",  # this section measures the synchronous bulk path (queue: bench/queue.py)
        )
        child, port = serve_app("app:app", env, run_dir / "logs" / "bulk.log")
        numbers = recipients(count)
        headers = {"Authorization": f"Bearer {creds.api_token}", "Content-Type": "application/json"}
        try:
            # Warm the send path (imports, store) without touching the sandbox's rate window.
            warm = request(
                port,
                "POST",
                "/send",
                json.dumps({"to": numbers[:2], "text": TEXT, "api": "sms", "dry_run": True}).encode(),
                headers,
            )
            if warm.status != 200:
                raise BenchError(f"bulk warm-up answered {warm.status}: {warm.body[:300]!r}")
            body = json.dumps({"to": numbers, "text": TEXT, "api": "sms"}).encode()
            started = time.perf_counter()
            answer = request(port, "POST", "/send", body, headers, timeout=count / rate * 4 + 120)
            wall = time.perf_counter() - started
        finally:
            child.stop()
        if answer.status != 202:
            raise BenchError(f"the bulk send answered {answer.status}: {answer.body[:500]!r}")
        result = answer.json()
        sandbox_requests = sandbox.requests(api="sms")
        accepted_messages = sandbox.messages(api="sms")
    finally:
        sandbox.stop()

    outcomes = Counter(str(r["outcome"]) for r in sandbox_requests)
    arrivals = sorted(_epoch(r["received_at"]) for r in sandbox_requests if str(r["outcome"]) == "0")
    accepted = outcomes.get("0", 0)
    summary = result.get("summary") or {}
    statuses = Counter(str(r.get("status")) for r in result.get("results") or [])
    sent_to = {str(m["fields"].get("to")) for m in accepted_messages}
    wanted = {n.lstrip("+") for n in numbers}
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    return {
        "recipients": count,
        "latency_ms": latency * 1000,
        "wall_s": wall,
        "rate": accepted / wall if wall else 0.0,
        "arrival_rate": (accepted - 1) / span if span else 0.0,
        "max_per_window": _max_in_window(arrivals),
        "sandbox_outcomes": dict(outcomes),
        "throttled": outcomes.get("1", 0),
        "summary": summary,
        "result_statuses": dict(statuses),
        "accounted": summary.get("total") == count
        and summary.get("sent") == count
        and statuses.get("submitted") == count
        and sent_to == wanted
        and len(accepted_messages) == count,
    }


def run_bulk(
    creds: Credentials,
    run_dir: Path,
    *,
    count: int,
    rate: int,
    latency: float,
    rounds: int,
    info_count: int = 0,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``rounds`` bulk sends of ``count`` recipients; medians, the rate ratio and the bar.

    ``info_count`` > 0 adds one send of that many recipients with no latency, for reference:
    it shows how much of the gap to the allowed rate the latency explains.
    """
    runs = []
    for index in range(rounds):
        runs.append(_bulk_once(creds, run_dir, count, rate, latency))
        log(f"bulk pacing: run {index + 1}/{rounds} done ({runs[-1]['rate']:.2f}/s)")
    info_runs = [_bulk_once(creds, run_dir, info_count, rate, 0.0)] if info_count else []
    achieved = median(r["rate"] for r in runs)
    share = achieved / rate
    throttled = sum(r["throttled"] for r in runs)
    accounted = all(r["accounted"] for r in runs)
    return {
        "recipients": count,
        "allowed_rate": rate,
        "latency_ms": latency * 1000,
        "rounds": rounds,
        "rate": achieved,
        "share": share,
        "arrival_rate": median(r["arrival_rate"] for r in runs),
        "max_per_window": max(r["max_per_window"] for r in runs),
        "throttled": throttled,
        "accounted": accounted,
        "runs": runs,
        "info_runs": info_runs,
        "bars": [
            {
                "id": "3",
                "text": f"at least 97% of the allowed rate ({rate}/s) over the run, zero throttled, "
                "every recipient accounted for",
                "met": share >= 0.97 and throttled == 0 and accounted,
                "value": f"{achieved:.2f}/s = {share:.1%} of {rate}/s; throttled {throttled}; "
                + ("all accounted for" if accounted else "NOT all accounted for"),
            }
        ],
    }
