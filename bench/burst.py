"""2. Webhook acknowledgement under a burst.

The one-process app runs under gunicorn with scripts/serve.sh's settings (one gthread worker,
8 threads) on the embedded SQLite store, on the Firestore emulator and on PostgreSQL (a fresh
database per run: see ``bench.postgres``). A burst of signed
status and inbound deliveries (see ``bench.workload``: 10% are repeats, as Vonage redelivers)
arrives from 16 client threads on keep-alive connections. Throughput and p50/p99 latency are
reported next to a no-op function mounted at the same paths on the same server settings.
After each run the store is read back: every event applied exactly once (none lost, none
doubled). Backends run in a rotating order; medians over the runs are reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.emulator import FirestoreEmulator
from bench.harness import BenchError, Child, base_env, free_port, gunicorn_command, median, wait_for_answer
from bench.load import run_load
from bench.postgres import PostgresServer
from bench.reference import REFERENCE_COMMIT, extract, in_reference, reference_env
from bench.stack import Credentials, function_env, unique_suffix
from bench.workload import Delivery, WebhookWorkload

__all__ = ["run_burst", "serve_app", "start_backends", "stop_backends", "store_env"]

FIRESTORE_PROJECT = "vonage-functions-bench"
_APPS = {"noop": "bench.baselines.noop:app", "sqlite": "app:app", "firestore": "app:app", "postgres": "app:app"}
_LABELS = {
    "noop": "no-op function (baseline)",
    "sqlite": "inbound + status, embedded SQLite store",
    "sqlite@ref": f"the same, code of {REFERENCE_COMMIT[:7]} (issue 18's before)",
    "firestore": "inbound + status, Firestore emulator",
    "firestore@ref": f"the same, code of {REFERENCE_COMMIT[:7]} (issue 18's before)",
    "postgres": "inbound + status, PostgreSQL",
}
REF = "@ref"  # suffix of a backend served by the reference code (bench.reference)
ROW_ORDER = ("noop", "sqlite", "sqlite@ref", "firestore", "firestore@ref", "postgres")


def serve_app(app: str, env: dict[str, str], log_path: Path, *, tree: Path | None = None) -> tuple[Child, int]:
    """Start gunicorn (serve.sh settings) for ``app`` and wait until /healthz answers.

    ``tree``: serve the code of an earlier commit extracted there (bench.reference).
    """
    port = free_port()
    command = gunicorn_command(app, port)
    if tree is None:
        child = Child(command, base_env(env), log_path).start()
    else:
        child = Child(command, reference_env(tree, env), log_path, cwd=tree).start()
    try:
        _, answer = wait_for_answer(child, port, "GET", "/healthz")
    except BaseException:
        child.stop()
        raise
    if answer.status != 200:
        child.stop()
        raise BenchError(f"{app}: /healthz answered {answer.status}")
    return child, port


def store_env(
    backend: str,
    run_dir: Path,
    emulator: FirestoreEmulator | None,
    postgres: PostgresServer | None = None,
    *,
    open_here: bool = True,
) -> tuple[dict[str, str], Any]:
    """The child's store variables, and the same store opened here for setup and checks.

    ``open_here=False``: the variables only (the reference code opens its store itself, in its
    own format); the store returned is None.
    """
    if backend == "postgres":
        assert postgres is not None
        url = postgres.new_database()
        from shared.store.postgres import PostgresStateStore

        return {"STATE_BACKEND": "postgres", "DATABASE_URL": url}, PostgresStateStore(url)
    if backend == "firestore":
        assert emulator is not None
        prefix = f"bench{unique_suffix()}_"
        env = {
            "STATE_BACKEND": "firestore",
            "FIRESTORE_EMULATOR_HOST": emulator.host,
            "GOOGLE_CLOUD_PROJECT": FIRESTORE_PROJECT,
            "FIRESTORE_COLLECTION_PREFIX": prefix,
        }
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host  # the client here finds the emulator
        if not open_here:
            return env, None
        from shared.store.firestore import FirestoreStateStore

        return env, FirestoreStateStore(project=FIRESTORE_PROJECT, prefix=prefix)
    path = run_dir / f"burst-{backend}-{unique_suffix()}.sqlite3"
    env = {"STATE_BACKEND": "sqlite", "STATE_SQLITE_PATH": str(path)}
    if not open_here:
        return env, None
    from shared.store.sqlite import SQLiteStateStore

    return env, SQLiteStateStore(str(path))


def _burst_once(
    backend: str,
    creds: Credentials,
    run_dir: Path,
    count: int,
    concurrency: int,
    seed: int,
    emulator: FirestoreEmulator | None,
    postgres: PostgresServer | None,
) -> dict[str, Any]:
    workload = WebhookWorkload(creds, count, seed=seed)
    warmup = WebhookWorkload(creds, 4 * concurrency, seed=seed + 1000)
    base = backend.removesuffix(REF)
    tree = extract(run_dir)[0] if backend.endswith(REF) else None  # run_burst checked it extracts
    backend_env, store = store_env(base, run_dir, emulator, postgres, open_here=tree is None)
    env = function_env(creds, application=False) | backend_env

    def on_store(work: WebhookWorkload, action: str) -> Any:
        if tree is not None:
            return in_reference(tree, env, work, action)
        return work.prepare(store) if action == "prepare" else work.check(store)

    try:
        if base != "noop":
            on_store(workload, "prepare")
            on_store(warmup, "prepare")
        log_path = run_dir / "logs" / f"burst-{backend}.log"
        child, port = serve_app(_APPS[base], env, log_path, tree=tree)
        try:
            build = _builder(creds)
            run_load(port, warmup.deliveries, build, concurrency=concurrency)  # lazy imports, pools
            result = run_load(port, workload.deliveries, build, concurrency=concurrency, deadline=900.0)
        finally:
            child.stop()
        summary = result.summary()
        summary["check"] = on_store(workload, "check") if base != "noop" else None
        return summary
    finally:
        if store is not None:
            store.close()


def _builder(creds: Credentials) -> Callable[[Delivery], tuple[str, str, bytes, dict[str, str]]]:
    def build(delivery: Delivery) -> tuple[str, str, bytes, dict[str, str]]:
        body, headers = delivery.render(creds)
        return "POST", delivery.path, body, headers

    return build


def run_burst(
    creds: Credentials,
    run_dir: Path,
    *,
    count: int,
    concurrency: int,
    rounds: int,
    firestore: bool,
    log: Callable[[str], None],
    postgres: bool = True,
) -> dict[str, Any]:
    """Burst ``count`` deliveries ``rounds`` times per backend; medians, checks, the bar."""
    backends = ["noop", "sqlite"]
    emulator, server, skips = start_backends(run_dir, firestore=firestore, postgres=postgres)
    backends += [name for name in ("firestore", "postgres") if name not in skips]
    tree, why_not = extract(run_dir)
    for name in ("sqlite", "firestore"):
        if tree is None:
            skips[name + REF] = f"reference code not available: {why_not}"
        elif name in backends:
            backends.append(name + REF)
        else:
            skips[name + REF] = skips[name]
    skipped = skips.get("firestore")
    runs: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
    try:
        for round_index in range(rounds):
            shift = round_index % len(backends)
            for backend in backends[shift:] + backends[:shift]:
                runs[backend].append(
                    _burst_once(backend, creds, run_dir, count, concurrency, round_index + 1, emulator, server)
                )
            log(f"webhook burst: round {round_index + 1}/{rounds} done")
    finally:
        stop_backends(emulator, server)

    noop = median(r["throughput"] for r in runs["noop"])
    rows: list[dict[str, Any]] = []
    for backend in ROW_ORDER:
        if backend not in runs:
            rows.append({"name": backend, "label": _LABELS[backend], "skipped": skips.get(backend)})
            continue
        results = runs[backend]
        checks = [r["check"] for r in results if r["check"] is not None]
        non_200 = sum(n for r in results for s, n in r["statuses"].items() if s != "200")
        rows.append(
            {
                "name": backend,
                "label": _LABELS[backend],
                "throughput": median(r["throughput"] for r in results),
                "p50_ms": median(r["p50_ms"] for r in results),
                "p99_ms": median(r["p99_ms"] for r in results),
                "vs_noop_throughput": median(r["throughput"] for r in results) / noop,
                "non_200": non_200,
                "failures": sum(len(r["failures"]) for r in results),
                "lost": sum(c["lost"] for c in checks) if checks else None,
                "doubled": sum(c["doubled"] for c in checks) if checks else None,
                "examples": [e for c in checks for e in c["examples"]][:5],
                "results": _merge(r["results"] for r in results),
                "runs": results,
            }
        )
    by_name = {r["name"]: r for r in rows}
    sqlite = by_name["sqlite"]
    stored = [r for r in rows if r["name"] != "noop" and not r.get("skipped")]
    clean = all(r["lost"] == 0 and r["doubled"] == 0 and r["non_200"] == 0 and r["failures"] == 0 for r in stored)
    return {
        "deliveries": count,
        "concurrency": concurrency,
        "rounds": rounds,
        "rows": rows,
        "firestore_skipped": skipped,
        "postgres_skipped": skips.get("postgres"),
        "bars": [
            {
                "id": "2a",
                "text": "p99 acknowledgement under 50 ms with the embedded SQLite store (issue 18)",
                "met": sqlite["p99_ms"] < 50.0,
                "value": f"p99 {sqlite['p99_ms']:.1f} ms (p50 {sqlite['p50_ms']:.1f} ms)",
            },
            _firestore_bar(by_name["firestore"], by_name["firestore" + REF]),
            {
                "id": "2b",
                "text": "no event lost or doubled (store read back after every run), every answer 200",
                "met": clean,
                "value": "; ".join(
                    f"{r['name']}: lost {r['lost']}, doubled {r['doubled']}, non-200 {r['non_200']}" for r in stored
                )
                + "".join(f"; {name} not run: {why}" for name, why in skips.items()),
            },
        ],
    }


def _firestore_bar(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Issue 18: twice the throughput of the code it measured, at the same or a better p99."""
    bar: dict[str, Any] = {
        "id": "2c",
        "text": f"Firestore emulator: at least 2x the throughput of {REFERENCE_COMMIT[:7]}'s code, p99 no worse (same run)",
    }
    missing = now.get("skipped") or before.get("skipped")
    if missing:
        return bar | {"met": False, "value": f"not measured: {missing}"}
    ratio = now["throughput"] / before["throughput"]
    return bar | {
        "met": ratio >= 2.0 and now["p99_ms"] <= before["p99_ms"],
        "value": f"{ratio:.2f}x ({now['throughput']:,.0f}/s vs {before['throughput']:,.0f}/s); "
        f"p99 {now['p99_ms']:.1f} ms vs {before['p99_ms']:.1f} ms",
    }


def start_backends(
    run_dir: Path, *, firestore: bool, postgres: bool
) -> tuple[FirestoreEmulator | None, PostgresServer | None, dict[str, str]]:
    """Start the Firestore emulator and a PostgreSQL server as asked; why each one is not running."""
    skips: dict[str, str] = {}
    emulator: FirestoreEmulator | None = None
    server: PostgresServer | None = None
    if firestore:
        emulator = FirestoreEmulator(run_dir / "logs")
        if not emulator.start():
            skips["firestore"] = emulator.unavailable or "did not start"
            emulator = None
    else:
        skips["firestore"] = "not requested (--no-firestore)"
    if postgres:
        server = PostgresServer(run_dir / "logs")
        if not server.start():
            skips["postgres"] = server.unavailable or "did not start"
            server = None
    else:
        skips["postgres"] = "not requested (--no-postgres)"
    return emulator, server, skips


def stop_backends(emulator: FirestoreEmulator | None, server: PostgresServer | None) -> None:
    """Stop what :func:`start_backends` started."""
    if emulator is not None:
        emulator.stop()
        os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
    if server is not None:
        server.stop()


def _merge(counters: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for counter in counters:
        for key, value in counter.items():
            total[key] = total.get(key, 0) + value
    return total
