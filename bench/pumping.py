"""6. SMS pumping: public verify-starts from an attacker, against the budget (docs/money-safety.md).

The one-process app (gunicorn, serve.sh settings) runs in public verify mode with the
documented defaults (limits per number, per IP, per range; ``TRUSTED_PROXY_HOPS`` unset; a
``VERIFY_BUDGET_GLOBAL`` of ``budget`` starts a day) against the local sandbox, whose price
list says an SMS to the target country costs ``price`` (a high-cost destination).

The attacker sends ``starts`` verify-starts across ``numbers`` mobile numbers (in ranges of
ten, as pumping ranges are), every request with a fresh forged ``X-Forwarded-For``:

- half from one address (the forged header is all that changes), and
- half from ``addresses`` real addresses (distinct 127.0.1.x loopback sources, each its own
  TCP peer), round-robin.

Measured: how many starts reached Vonage (the sandbox's accepted ``POST /v2/verify``) and
what they cost at the sandbox's price for the country (``GET /account/get-pricing``), by
refusal code. Bar: at most ``budget`` reached, whatever the headers. Everything is on
127.0.0.0/8; the run stops by itself after ``starts`` requests.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.burst import serve_app
from bench.harness import BenchError
from bench.stack import Credentials, function_env, start_sandbox, unique_suffix

__all__ = ["attack_numbers", "run_pumping"]

ORIGIN = "https://shop.example"
COUNTRY = "GB"
WORKERS = 8
REQUEST_TIMEOUT = 60.0


def attack_numbers(count: int) -> list[str]:
    """``count`` UK mobile numbers, ten per range (the part before the last three digits)."""
    return [f"+4477001{(i // 10) % 100:02d}{i % 10:03d}" if i < 1000 else f"+447700{200000 + i:06d}" for i in range(count)]


def _forged_ip(rng: random.Random) -> str:
    return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _start(port: int, source: str, number: str, forged: str) -> tuple[int, str]:
    """One public verify-start from ``source``; (HTTP status, error code or "started")."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT, source_address=(source, 0))
    try:
        body = json.dumps({"number": number, "brand": "PayPal Call 0800"}).encode()
        conn.request("POST", "/verify-start", body=body, headers={
            "Content-Type": "application/json", "Origin": ORIGIN, "X-Forwarded-For": forged,
        })
        answer = conn.getresponse()
        data = answer.read()
    finally:
        conn.close()
    if answer.status == 202:
        return answer.status, "started"
    try:
        return answer.status, str(json.loads(data)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return answer.status, f"http_{answer.status}"


def run_pumping(
    creds: Credentials,
    run_dir: Path,
    *,
    starts: int,
    numbers: int,
    addresses: int,
    budget: int,
    price: str = "0.25",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the attack once; the section's results with its bar."""
    sandbox = start_sandbox(creds, sms_price=price)
    try:
        env = function_env(
            creds,
            state_path=run_dir / f"pumping-{unique_suffix()}.sqlite3",
            sandbox_url=sandbox.url,
            VERIFY_PUBLIC="true",
            CORS_ORIGINS=ORIGIN,
            VERIFY_ALLOWED_COUNTRIES=COUNTRY,
            VERIFY_BRAND="Bench",
            VERIFY_BUDGET_GLOBAL=f"{budget}/86400",
            # the documented defaults, not the benchmark's raised limits
            VERIFY_LIMIT_PER_NUMBER="3/600",
            VERIFY_LIMIT_PER_IP="10/3600",
            VERIFY_LIMIT_PER_PREFIX="10/3600",
            VERIFY_LIMIT_PER_COUNTRY="",
        )
        child, port = serve_app("app:app", env, run_dir / "logs" / "pumping.log")
        try:
            outcomes = _attack(port, starts=starts, numbers=attack_numbers(numbers), addresses=addresses)
        finally:
            child.stop()
        reached = sum(1 for r in sandbox.requests(api="verify") if r["path"] == "/v2/verify" and r["status"] == 202)
        unit = _country_price(sandbox.url, creds)
    finally:
        sandbox.stop()
    by_phase = {phase: dict(Counter(code for p, _, code in outcomes if p == phase)) for phase in ("forged", "real")}
    cost = unit * reached
    log(f"pumping: {reached} of {starts} starts reached Vonage ({cost} EUR)")
    return {
        "starts": starts,
        "numbers": numbers,
        "addresses": addresses,
        "budget": budget,
        "price": str(unit),
        "reached": reached,
        "cost": str(cost),
        "bound": str(unit * budget),
        "answers": by_phase,
        "errors": sum(1 for _, status, _ in outcomes if status >= 500),
        "bars": [
            {
                "id": "6",
                "text": f"pumping: at most VERIFY_BUDGET_GLOBAL ({budget}) starts reach Vonage, whatever the headers",
                "met": reached <= budget,
                "value": f"{reached} reached of {starts:,}, {cost} EUR (bound {unit * budget} EUR)",
            }
        ],
    }


def _attack(port: int, *, starts: int, numbers: list[str], addresses: int) -> list[tuple[str, int, str]]:
    """Send every start with WORKERS threads; (phase, status, code) per request."""
    rng = random.Random(15)
    plan = []
    for i in range(starts):
        phase = "forged" if i % 2 == 0 else "real"
        source = "127.0.0.1" if phase == "forged" else f"127.0.1.{1 + (i // 2) % addresses}"
        plan.append((phase, source, numbers[i % len(numbers)], _forged_ip(rng)))
    outcomes: list[tuple[str, int, str]] = []
    lock = threading.Lock()
    cursor = iter(plan)
    failures: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                item = next(cursor, None)
            if item is None or failures:
                return
            phase, source, number, forged = item
            try:
                status, code = _start(port, source, number, forged)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(exc)
                return
            with lock:
                outcomes.append((phase, status, code))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT * (starts // WORKERS + 2))
    if failures:
        raise BenchError(f"pumping: a request failed: {failures[0]!r}")
    return outcomes


def _country_price(url: str, creds: Credentials) -> Decimal:
    """The sandbox's price of one SMS to COUNTRY, read the way the app reads Vonage's."""
    import base64

    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=REQUEST_TIMEOUT)
    auth = base64.b64encode(f"{creds.api_key}:{creds.api_secret}".encode()).decode()
    try:
        conn.request("GET", f"/account/get-pricing/outbound/sms?country={COUNTRY}", headers={"Authorization": f"Basic {auth}"})
        answer = conn.getresponse()
        body = json.loads(answer.read())
    finally:
        conn.close()
    return Decimal(body["defaultPrice"])
