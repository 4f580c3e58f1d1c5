"""1. Cold start: from process start to the first successful answer.

Every function is started fresh under functions-framework (one target per process, as deployed
on Google Cloud), the one-process app under gunicorn with scripts/serve.sh's settings. The first
request is a real one that succeeds offline against the local sandbox (a dry-run send, a
verification started, checked with the right code, cancelled, a signed inbound message, a signed
status), so every lazy import on the function's path is paid inside the measurement.

Baselines, measured in the same rounds: Google's bare hello function, and the original Replit
guide's approach (Flask with the official ``vonage`` SDK imported, client built at start) served
both by functions-framework and by gunicorn, so each comparison is like with like. Targets run
in a rotating order, one warm-up round is discarded (page cache), and the medians of the
remaining rounds are compared. The source is byte-compiled first, as it is in a deployment
(Google's buildpack runs ``compileall`` at deploy; see ``_byte_compile``).

A second, untimed pass (the import audit) starts each function in a fresh interpreter, answers
the same request through functions-framework's test client, and lists which heavy packages got
imported: the "heavy imports stay lazy" part of the bar.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    PYTHON,
    ROOT,
    BenchError,
    Child,
    base_env,
    free_port,
    functions_framework_command,
    gunicorn_command,
    median,
    wait_for_answer,
)
from bench.import_audit import import_costs
from bench.stack import BRAND_NUMBER, Credentials, function_env, start_sandbox

__all__ = ["HEAVY_MODULES", "Probe", "run_cold"]

# Packages whose import is expensive (field-notes.md, "Import cost on these machines").
HEAVY_MODULES = (
    "vonage",
    "requests",
    "google.cloud.firestore",
    "grpc",
    "httpx",
    "jwt",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "phonenumbers",
    "functions_framework",
    "cloudevents",
    "google.cloud.pubsub",
    "google.cloud.tasks",
)
# What each function may load on the path measured here (the SQLite store, no Firestore).
# vonage, requests and PyJWT are never needed; Firestore/grpc not with the embedded store.
_ALLOWED: dict[str, frozenset[str]] = {
    "send": frozenset({"httpx", "phonenumbers"}),
    "verify_start": frozenset({"httpx", "phonenumbers", "cryptography.hazmat.primitives.asymmetric.rsa"}),
    "verify_check": frozenset({"httpx", "cryptography.hazmat.primitives.asymmetric.rsa"}),
    "verify_cancel": frozenset({"httpx", "cryptography.hazmat.primitives.asymmetric.rsa"}),
    "inbound": frozenset({"phonenumbers"}),
    "status": frozenset({"phonenumbers"}),
}


@dataclass(frozen=True)
class Probe:
    """The first request: what to send and which answer counts as success."""

    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    expect_status: int
    expect: Callable[[Any], bool]


@dataclass(frozen=True)
class Target:
    """One thing to cold-start."""

    name: str
    label: str
    server: str  # "functions-framework" or "gunicorn"
    command: Callable[[int], list[str]]
    baseline: bool = False


class _Context:
    """The sandbox, credentials and a way to prepare verifications for check and cancel."""

    def __init__(self, creds: Credentials, run_dir: Path) -> None:
        self.creds = creds
        self.run_dir = run_dir
        self.sandbox = start_sandbox(creds)
        # The SDK only speaks https: its first send goes to a second sandbox serving TLS.
        self.tls_sandbox = start_sandbox(creds, tls=True)
        self.sdk_send_env = {
            "SDK_API_HOST": self.tls_sandbox.host,
            "SDK_REST_HOST": self.tls_sandbox.host,
            "REQUESTS_CA_BUNDLE": str(self.tls_sandbox.ca_file),
        }
        self.state_path = run_dir / "cold.sqlite3"
        self.env = function_env(creds, state_path=self.state_path, sandbox_url=self.sandbox.url)
        self._client: Any = None
        self._numbers = iter(range(700000, 800000))

    def number(self) -> str:
        return f"+447700{next(self._numbers):06d}"

    def start_verification(self, *, backdate: float = 0.0) -> tuple[str, str]:
        """Start one verification through the real app, in this process; (request_id, code).

        ``backdate`` moves its start that many seconds into the past in the store (Vonage, and
        so verify-cancel, refuse a cancel in a verification's first 30 seconds).
        """
        if self._client is None:
            import os

            from shared import deps

            os.environ.update(self.env)
            deps.reset()
            from app import create_app

            self._client = create_app().test_client()
        number = self.number()
        answer = self._client.post(
            "/verify-start",
            json={"number": number, "brand": "Bench", "channels": ["sms"]},
            headers={"Authorization": f"Bearer {self.creds.api_token}"},
        )
        if answer.status_code != 202:
            raise BenchError(f"preparing a verification failed: {answer.status_code} {answer.get_data(as_text=True)}")
        request_id = answer.get_json()["request_id"]
        code = self.sandbox.last_code(number.lstrip("+"))
        if code is None:
            raise BenchError("the sandbox sent no code")
        if backdate:
            from shared.deps import get_store
            from shared.verify.records import COLLECTION

            def older(doc: dict[str, Any] | None) -> dict[str, Any] | None:
                return None if doc is None else {**doc, "created_at": doc["created_at"] - backdate}

            get_store().update(COLLECTION, request_id, older)
        return request_id, code

    def close(self) -> None:
        from shared import deps

        deps.reset()
        self.sandbox.stop()
        self.tls_sandbox.stop()


def _json_body(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def _probe(name: str, ctx: _Context) -> Probe:
    """A fresh successful first request for ``name`` (new ids every time)."""
    auth = {"Authorization": f"Bearer {ctx.creds.api_token}", "Content-Type": "application/json"}
    if name in ("hello",):
        return Probe("GET", "/", None, {}, 200, lambda body: True)
    if name in ("sdk", "sdk_gunicorn"):
        return Probe("GET", "/", None, {}, 200, lambda body: True)
    if name == "sdk_send":
        body = _json_body({"to": "447700100123", "text": "Cold start check"})
        headers = {"Content-Type": "application/json"}
        return Probe("POST", "/", body, headers, 200, lambda b: b.get("status") == "0")
    if name in ("send", "app"):
        body = _json_body({"to": "+447700100123", "text": "Cold start check", "dry_run": True})
        path = "/send" if name == "app" else "/"
        return Probe("POST", path, body, auth, 200, lambda b: b.get("status") == "would_send")
    if name == "verify_start":
        body = _json_body({"number": ctx.number(), "brand": "Bench", "channels": ["sms"]})
        return Probe("POST", "/", body, auth, 202, lambda b: b.get("status") == "pending")
    if name == "verify_check":
        request_id, code = ctx.start_verification()
        body = _json_body({"request_id": request_id, "code": code})
        return Probe("POST", "/", body, auth, 200, lambda b: b.get("status") == "verified")
    if name == "verify_cancel":
        request_id, _ = ctx.start_verification(backdate=31.0)
        body = _json_body({"request_id": request_id})
        return Probe("POST", "/", body, auth, 200, lambda b: b.get("status") == "cancelled")
    from shared.vonage.signatures import sign_webhook_jwt

    if name == "inbound":
        payload = {
            "channel": "whatsapp",
            "message_uuid": str(uuid.uuid4()),
            "to": BRAND_NUMBER,
            "from": "447700100123",
            "timestamp": "2026-01-30T12:00:00Z",
            "message_type": "text",
            "text": "Hello",
        }
        expect: tuple[str, ...] = ("stored",)
    elif name == "status":
        payload = {
            "message_uuid": str(uuid.uuid4()),
            "to": "447700100123",
            "from": BRAND_NUMBER,
            "timestamp": "2026-01-30T12:00:05Z",
            "status": "delivered",
            "channel": "whatsapp",
        }
        expect = ("applied", "parked")
    else:
        raise ValueError(name)
    body = _json_body(payload)
    token = sign_webhook_jwt(body, secret=ctx.creds.signature_secret, api_key=ctx.creds.api_key)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    return Probe("POST", "/", body, headers, 200, lambda b: b.get("result") in expect)


def _targets() -> list[Target]:
    def ff(target: str, source: str) -> Callable[[int], list[str]]:
        return lambda port: functions_framework_command(target, source, port)

    targets = [
        Target(
            "hello", "hello function (baseline)", "functions-framework", ff("hello", "bench/baselines/hello.py"), True
        ),
        Target(
            "sdk",
            "Flask + vonage SDK (baseline)",
            "functions-framework",
            ff("sdk_function", "bench/baselines/sdk_app.py"),
            True,
        ),
    ]
    for name in ("send", "verify_start", "verify_check", "verify_cancel", "inbound", "status"):
        targets.append(Target(name, name, "functions-framework", ff(name, "main.py")))
    targets.append(
        Target(
            "sdk_send",
            "Flask + vonage SDK, first request a real send (reference)",
            "functions-framework",
            ff("sdk_function", "bench/baselines/sdk_app.py"),
            True,
        )
    )
    targets.append(
        Target(
            "sdk_gunicorn",
            "Flask + vonage SDK (baseline)",
            "gunicorn",
            lambda port: gunicorn_command("bench.baselines.sdk_app:app", port),
            True,
        )
    )
    targets.append(Target("app", "one-process app", "gunicorn", lambda port: gunicorn_command("app:app", port)))
    return targets


def _tree_cpu(root: int) -> float:
    """User + system CPU seconds spent so far by ``root`` and its live descendants (server, worker)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    tree = {root}
    grown = True
    while grown:
        grown = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grown = True
    return sum(used.get(pid, 0.0) for pid in tree)


def _measure(target: Target, ctx: _Context, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds to the first successful answer, and the CPU seconds the server spent by then."""
    probe = _probe(target.name, ctx)
    port = free_port()
    if target.name == "sdk_send":
        env = env | ctx.sdk_send_env
    child = Child(target.command(port), env, ctx.run_dir / "logs" / f"cold-{target.name}.log")
    child.start()
    try:
        elapsed, answer = wait_for_answer(child, port, probe.method, probe.path, probe.body, probe.headers)
        cpu = _tree_cpu(child.pid)
    finally:
        child.stop()
    body = answer.json()
    if answer.status != probe.expect_status or (
        not isinstance(body, dict) and target.name not in ("hello", "sdk", "sdk_gunicorn")
    ):
        raise BenchError(f"{target.name}: expected {probe.expect_status}, got {answer.status}: {answer.body[:300]!r}")
    if isinstance(body, dict) and not probe.expect(body):
        raise BenchError(f"{target.name}: unexpected answer {answer.body[:300]!r}")
    return elapsed, cpu


def _import_audit(name: str, ctx: _Context, env: dict[str, str]) -> dict[str, Any]:
    """Heavy packages imported by ``import main`` alone, or by one function's first request."""
    probe = None if name == "main" else _probe(name, ctx)
    spec = {
        "target": name,
        "heavy": list(HEAVY_MODULES),
        "request": None
        if probe is None
        else {
            "method": probe.method,
            "path": probe.path,
            "body": probe.body.decode() if probe.body else None,
            "headers": probe.headers,
        },
    }
    run = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "bench.import_audit"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    if run.returncode != 0:
        raise BenchError(f"import audit of {name} failed:\n{run.stderr.decode(errors='replace')[-2000:]}")
    report = json.loads(run.stdout.decode().strip().splitlines()[-1])
    report["costs"] = import_costs(run.stderr.decode(errors="replace"))
    allowed = _ALLOWED.get(name, frozenset())
    report["unexpected"] = [m for m in report["loaded"] if m not in allowed]
    if probe is not None and report["status"] != probe.expect_status:
        raise BenchError(f"import audit of {name}: the request answered {report['status']}")
    return report


# What Google's Python buildpack byte-compiles at deploy: it runs ``python3 -m compileall -f -q .``
# over the function's source (GoogleCloudPlatform/buildpacks, cmd/python/functions_framework), so a
# deployed function never compiles our modules on a cold start, and pip compiles every installed
# package (the SDK baseline's included). Without this, a machine with PYTHONDONTWRITEBYTECODE set
# (as the development machines are) compiles every module of ours from source in every round,
# which no deployment does and the baselines never pay.
_SOURCES = ("main.py", "app.py", "lambda_handler.py", "functions", "shared", "examples", "bench/baselines")


def _byte_compile() -> None:
    run = subprocess.run(
        [PYTHON, "-m", "compileall", "-f", "-q", *_SOURCES], cwd=ROOT, capture_output=True, timeout=300
    )
    if run.returncode != 0:
        raise BenchError(f"compileall failed:\n{run.stdout.decode(errors='replace')[-2000:]}")


QUICK_TARGETS = ("hello", "sdk", "send", "inbound", "sdk_gunicorn", "app")


def run_cold(
    creds: Credentials,
    run_dir: Path,
    *,
    rounds: int,
    warmup: int,
    log: Callable[[str], None],
    only: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Measure every target ``rounds`` times (after ``warmup`` discarded rounds); medians and ratios.

    ``only`` limits the targets (the baselines must be among them) and the import audit.
    """
    _byte_compile()
    ctx = _Context(creds, run_dir)
    targets = [t for t in _targets() if only is None or t.name in only]
    env = base_env(ctx.env)
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    cpu: dict[str, list[float]] = {t.name: [] for t in targets}
    try:
        total = warmup + rounds
        for round_index in range(total):
            shift = round_index % len(targets)
            order = targets[shift:] + targets[:shift]
            for target in order:
                elapsed, spent = _measure(target, ctx, env)
                if round_index >= warmup:
                    samples[target.name].append(elapsed)
                    cpu[target.name].append(spent)
            log(f"cold start: round {round_index + 1}/{total}{' (warm-up)' if round_index < warmup else ''} done")
        audited = [name for name in _ALLOWED if only is None or name in only]
        audit = {name: _import_audit(name, ctx, env) for name in ("main", *audited)}
    finally:
        ctx.close()

    medians = {name: median(values) for name, values in samples.items()}
    cpu_medians = {name: median(values) for name, values in cpu.items()}
    rows: list[dict[str, Any]] = []
    for target in targets:
        baseline = "sdk_gunicorn" if target.server == "gunicorn" else "sdk"
        sdk = medians.get(baseline, math.nan)
        rows.append(
            {
                "name": target.name,
                "label": target.label,
                "server": target.server,
                "baseline": target.baseline,
                "probe": _describe(target.name),
                "median_ms": medians[target.name] * 1000,
                "samples_ms": [round(v * 1000, 1) for v in samples[target.name]],
                "vs_hello": medians[target.name] / medians["hello"] if target.server == "functions-framework" else None,
                "vs_sdk": medians[target.name] / sdk,
                # CPU the server spent until its first answer: what the wall time is made of, and
                # much less moved by other work on a shared machine than the wall time is.
                "cpu_ms": cpu_medians[target.name] * 1000,
                "cpu_vs_sdk": cpu_medians[target.name] / cpu_medians.get(baseline, math.nan),
            }
        )
    functions = [r for r in rows if not r["baseline"]]
    worst = max(functions, key=lambda r: r["vs_sdk"])
    send = next((r for r in rows if r["name"] == "send"), {"vs_hello": math.nan})
    lazy_problems = {name: report["unexpected"] for name, report in audit.items() if report["unexpected"]}
    return {
        "rounds": rounds,
        "warmup": warmup,
        "rows": rows,
        "import_audit": audit,
        "bars": [
            {
                "id": "1a",
                "text": "every function starts in at most 0.5x the time of the SDK-based app (issue 18)",
                "met": worst["vs_sdk"] <= 0.5,
                "value": f"worst: {worst['name']} at {worst['vs_sdk']:.2f}x",
            },
            {
                "id": "1b",
                "text": "send starts within 2x the bare hello function",
                "met": send["vs_hello"] <= 2.0,
                "value": f"{send['vs_hello']:.2f}x",
            },
            {
                "id": "1c",
                "text": "heavy imports stay lazy and off the path of functions that do not need them",
                "met": not lazy_problems,
                "value": "none unexpected"
                if not lazy_problems
                else "; ".join(f"{k}: {', '.join(v)}" for k, v in lazy_problems.items()),
            },
        ],
    }


def _describe(name: str) -> str:
    return {
        "hello": "GET / → 200",
        "sdk": "GET / (the form) → 200",
        "sdk_gunicorn": "GET / (the form) → 200",
        "sdk_send": "POST a real SMS (sandbox, https) → 200",
        "send": "POST dry-run send → 200",
        "app": "POST /send dry-run → 200",
        "verify_start": "POST start (sandbox) → 202",
        "verify_check": "POST right code (sandbox) → 200",
        "verify_cancel": "POST cancel (sandbox) → 200",
        "inbound": "POST signed inbound → 200 stored",
        "status": "POST signed status → 200",
    }[name]
