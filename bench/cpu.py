"""4. Per-message cost: CPU time per message of the send path, next to the official SDK.

A zero-latency, unthrottled sandbox serves HTTPS (the SDK only speaks https, so both sides pay
for TLS the same way), under gunicorn so that connections can be kept alive (the sandbox's own
werkzeug server closes every connection, which would force a TLS handshake per request on both
sides and hide whether a client reuses its connections). Each measurement is a fresh process
(``bench.cpu_worker``) that sends ``warmup`` messages, then times ``count`` more with
``time.process_time()``; the sandbox's work happens in its own process and is not counted.
Rows, for the SMS API (Basic auth) and the Messages API (JWT auth):

- the official ``vonage`` SDK (4.x) sending the messages (``client.sms.send`` /
  ``client.messages.send``): the baseline;
- our ``VonageClient`` alone;
- our whole send path (``send_messages``: validation, encoding, suppression list, message
  record, pacing, the client, the record completed) on the SQLite store.

``VONAGE_MAX_RPS`` is raised to 1000 so the pacer never waits (waiting costs no CPU, only time).
Implementations run in a rotating order; medians over the rounds are compared. One more process
per row then sends the same number of messages under cProfile (not timed) and reports the share
of the CPU each layer took (httpx, TLS, our client, the store, ...): where a ratio comes from.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import PYTHON, ROOT, BenchError, Child, base_env, free_port, median
from bench.stack import Credentials, function_env, recipients, unique_suffix

__all__ = ["run_cpu"]

IMPLS = ("sdk", "client", "path")
APIS = ("sms", "messages")
_LABELS = {
    "sdk": "official vonage SDK (baseline)",
    "client": "our VonageClient alone",
    "path": "our send path (send_messages + SQLite)",
}


def _run_worker(
    env: dict[str, str], impl: str, api: str, count: int, warmup: int, *, profile: bool = False
) -> dict[str, Any]:
    spec = {
        "impl": impl,
        "api": api,
        "count": count,
        "warmup": warmup,
        "numbers": recipients(count + warmup),
        "profile": profile,
    }
    run = subprocess.run(
        [PYTHON, "-m", "bench.cpu_worker"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    if run.returncode != 0:
        raise BenchError(f"CPU worker {impl}/{api} failed:\n{run.stderr.decode(errors='replace')[-3000:]}")
    return dict(json.loads(run.stdout.decode().strip().splitlines()[-1]))


@contextmanager
def tls_sandbox(creds: Credentials, log_path: Path) -> Iterator[tuple[str, str]]:
    """The sandbox app under gunicorn with TLS (keep-alive); yields (base URL, CA file)."""
    from sandbox.tls import create_tls_material

    tls = create_tls_material()
    port = free_port()
    env = base_env(
        {
            "SANDBOX_API_KEY": creds.api_key,
            "SANDBOX_API_SECRET": creds.api_secret,
            "SANDBOX_SIGNATURE_SECRET": creds.signature_secret,
            "SANDBOX_SIGNATURE_METHOD": creds.signature_method,
            "SANDBOX_APPLICATION_ID": creds.application_id,
            "SANDBOX_PRIVATE_KEY": creds.private_key,
            "SANDBOX_RATE_LIMIT": "none",
            "SANDBOX_BALANCE": "100000000",
        }
    )
    command = [
        PYTHON,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--worker-class",
        "gthread",
        "--threads",
        "8",
        "--keep-alive",
        "30",
        "--certfile",
        tls.cert_file,
        "--keyfile",
        tls.key_file,
        "--log-level",
        "warning",
        "bench.sandbox_server:app",
    ]
    child = Child(command, env, log_path).start()
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
                conn.request("GET", "/_sandbox/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                if not child.alive() or time.monotonic() > deadline:
                    raise BenchError("the TLS sandbox did not start:\n" + child.tail()) from None
                time.sleep(0.05)
        yield f"https://127.0.0.1:{port}", tls.ca_file
    finally:
        child.stop()
        tls.remove()


def run_cpu(
    creds: Credentials, run_dir: Path, *, count: int, warmup: int, rounds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """CPU per message of each implementation and API; medians, ratios to the SDK, the bar."""
    with tls_sandbox(creds, run_dir / "logs" / "cpu-sandbox.log") as (url, ca):
        env = base_env(
            function_env(
                creds,
                state_path=run_dir / f"cpu-{unique_suffix()}.sqlite3",
                sandbox_url=url,
                VONAGE_MAX_RPS="1000",
                SSL_CERT_FILE=ca,
                REQUESTS_CA_BUNDLE=ca,
                SDK_HOST=url.split("://", 1)[1],
                BENCH_LOG=str(run_dir / "logs" / "cpu-worker.log"),
            )
        )
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        combos = [(impl, api) for api in APIS for impl in IMPLS]
        samples: dict[tuple[str, str], list[dict[str, Any]]] = {combo: [] for combo in combos}
        for round_index in range(rounds):
            shift = round_index % len(combos)
            for impl, api in combos[shift:] + combos[:shift]:
                samples[(impl, api)].append(_run_worker(env, impl, api, count, warmup))
            log(f"CPU per message: round {round_index + 1}/{rounds} done")
        profiles = {combo: _run_worker(env, *combo, count, warmup, profile=True)["profile"] for combo in combos}
        log("CPU per message: profiles done")

    rows = []
    for api in APIS:
        sdk = median(s["cpu_ms"] for s in samples[("sdk", api)])
        for impl in IMPLS:
            cpu = median(s["cpu_ms"] for s in samples[(impl, api)])
            rows.append(
                {
                    "api": api,
                    "impl": impl,
                    "label": _LABELS[impl],
                    "cpu_ms": cpu,
                    "wall_ms": median(s["wall_ms"] for s in samples[(impl, api)]),
                    "connections": max(s["connections"] for s in samples[(impl, api)]),
                    "vs_sdk": cpu / sdk,
                    "samples_cpu_ms": [round(s["cpu_ms"], 3) for s in samples[(impl, api)]],
                    "profile": profiles[(impl, api)],
                }
            )
    path = {r["api"]: r for r in rows if r["impl"] == "path"}
    client = {r["api"]: r for r in rows if r["impl"] == "client"}
    baseline = {r["api"]: r for r in rows if r["impl"] == "sdk"}
    return {
        "messages": count,
        "warmup": warmup,
        "rounds": rounds,
        "scheme": "https (TLS) on both sides",
        "rows": rows,
        "bars": [
            {
                "id": "4a",
                "text": "send path CPU per message at most 0.5x the official SDK's, Messages API (JWT auth)",
                "met": path["messages"]["vs_sdk"] <= 0.5,
                "value": _cpu_value(path["messages"], baseline["messages"], client["messages"]),
            },
            {
                "id": "4b",
                "text": "send path CPU per message at most 1.0x the official SDK's, SMS API (Basic auth; issue 18)",
                "met": path["sms"]["vs_sdk"] <= 1.0,
                "value": _cpu_value(path["sms"], baseline["sms"], client["sms"]),
            },
            {
                "id": "4c",
                "text": "our client alone at most 0.5x the official SDK's CPU per message, SMS API (issue 18)",
                "met": client["sms"]["vs_sdk"] <= 0.5,
                "value": f"{client['sms']['vs_sdk']:.2f}x ({client['sms']['cpu_ms']:.2f} ms vs "
                f"{baseline['sms']['cpu_ms']:.2f} ms)",
            },
        ],
    }


def _cpu_value(path: dict[str, Any], sdk: dict[str, Any], client: dict[str, Any]) -> str:
    return (
        f"{path['vs_sdk']:.2f}x ({path['cpu_ms']:.2f} ms vs {sdk['cpu_ms']:.2f} ms); "
        f"our client alone {client['vs_sdk']:.2f}x"
    )
