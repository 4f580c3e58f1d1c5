"""``python -m bench``: run the benchmarks, print the tables, keep the raw results.

    ./bench.sh                      the full profile (about 10 minutes), printed
    ./bench.sh --write              ... and the report stored in bench/RESULTS.md
    ./bench.sh --quick              every benchmark scaled down (a smoke run, ~30 s)
    ./bench.sh --only cold,bulk     some of: cold, burst, bulk, cpu, memory, send, pumping

Raw results go to ``bench/.runs/<time>/results.json`` (``--runs-dir``) with the children's logs. Exit status
0 when every benchmark ran (met bars or not; ``--strict`` makes an unmet bar exit 3), 1 when a
benchmark could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import ROOT, machine_info
from bench.report import render, update_results_file
from bench.stack import new_credentials

__all__ = ["FULL", "Profile", "QUICK", "main"]

SECTIONS = ("cold", "burst", "bulk", "cpu", "memory", "send")
# Run only when asked (--only pumping): it measures money, not speed (bench/pumping.py).
OPTIONAL_SECTIONS = ("pumping",)
RUNS_DIR = ROOT / "bench" / ".runs"
RESULTS_FILE = ROOT / "bench" / "RESULTS.md"


@dataclass(frozen=True)
class Profile:
    """How big each benchmark is."""

    name: str
    cold_rounds: int
    cold_warmup: int
    cold_only: tuple[str, ...] | None
    burst_deliveries: int
    burst_rounds: int
    bulk_recipients: int
    bulk_rounds: int
    bulk_info_recipients: int
    cpu_messages: int
    cpu_warmup: int
    cpu_rounds: int
    memory_requests: int
    send_messages: int = 600
    send_rounds: int = 3
    pumping_starts: int = 10000
    pumping_numbers: int = 500
    pumping_addresses: int = 50
    pumping_budget: int = 100
    concurrency: int = 16
    rate: int = 30
    latency: float = 0.05


FULL = Profile(
    name="full",
    cold_rounds=9,
    cold_warmup=1,
    cold_only=None,
    burst_deliveries=2000,
    burst_rounds=3,
    bulk_recipients=3000,
    bulk_rounds=1,
    bulk_info_recipients=900,
    cpu_messages=300,
    cpu_warmup=20,
    cpu_rounds=5,
    memory_requests=20000,
)
QUICK = Profile(
    name="quick",
    cold_rounds=1,
    cold_warmup=0,
    cold_only=("hello", "sdk", "send", "inbound", "sdk_gunicorn", "app"),
    burst_deliveries=160,
    burst_rounds=1,
    bulk_recipients=45,
    bulk_rounds=1,
    bulk_info_recipients=0,
    cpu_messages=20,
    cpu_warmup=3,
    cpu_rounds=1,
    memory_requests=600,
    send_messages=48,
    send_rounds=1,
    pumping_starts=400,
    pumping_numbers=100,
    pumping_addresses=10,
    pumping_budget=20,
)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _dev_packages() -> str:
    """Packages present only in a development install (they can slow imports: httpx loads its
    command-line tool when rich and pygments are importable)."""
    found = [name for name in ("pytest", "rich", "pygments", "schemathesis") if importlib.util.find_spec(name)]
    return ", ".join(found)


def run(
    profile: Profile, sections: tuple[str, ...], *, firestore: bool, runs_dir: Path = RUNS_DIR, postgres: bool = True
) -> dict[str, Any]:
    """Run ``sections`` with ``profile``; the results (also written to a run directory)."""
    started = time.time()
    stamp = dt.datetime.now(dt.UTC)
    run_dir = runs_dir.resolve() / stamp.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    creds = new_credentials()
    results: dict[str, Any] = {
        "started": stamp.strftime("%Y-%m-%d %H:%M UTC"),
        "profile": profile.name,
        "python": os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable,
        "dev_packages": _dev_packages(),
        "machine": machine.to_dict(),
        "sections": {},
        "run_dir": _shown(run_dir),
    }
    _log(f"{profile.name} profile: {', '.join(sections)}; logs in {_shown(run_dir)}")
    # Our JSON log lines from code run in this process (sandbox, setup) go to a file, not the report.
    log_file = open(run_dir / "bench.log", "a")  # noqa: SIM115 - lives as long as the run
    saved_stdout = os.dup(1)
    os.dup2(log_file.fileno(), 1)
    try:
        for section in sections:
            _log(f"{section}: starting")
            results["sections"][section] = _run_section(section, profile, creds, run_dir, firestore, postgres)
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
        log_file.close()
    results["load_after"] = list(os.getloadavg())
    results["duration_s"] = time.time() - started
    (run_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _run_section(
    section: str, p: Profile, creds: Any, run_dir: Path, firestore: bool, postgres: bool = True
) -> dict[str, Any]:
    if section == "cold":
        from bench.cold import run_cold

        return run_cold(creds, run_dir, rounds=p.cold_rounds, warmup=p.cold_warmup, only=p.cold_only, log=_log)
    if section == "burst":
        from bench.burst import run_burst

        return run_burst(
            creds,
            run_dir,
            count=p.burst_deliveries,
            concurrency=p.concurrency,
            rounds=p.burst_rounds,
            firestore=firestore,
            postgres=postgres,
            log=_log,
        )
    if section == "bulk":
        from bench.bulk import run_bulk

        return run_bulk(
            creds,
            run_dir,
            count=p.bulk_recipients,
            rate=p.rate,
            latency=p.latency,
            rounds=p.bulk_rounds,
            info_count=p.bulk_info_recipients,
            log=_log,
        )
    if section == "cpu":
        from bench.cpu import run_cpu

        return run_cpu(creds, run_dir, count=p.cpu_messages, warmup=p.cpu_warmup, rounds=p.cpu_rounds, log=_log)
    if section == "memory":
        from bench.memory import run_memory

        return run_memory(creds, run_dir, count=p.memory_requests, concurrency=p.concurrency, log=_log)
    if section == "send":
        from bench.send import run_send

        return run_send(
            creds,
            run_dir,
            count=p.send_messages,
            concurrency=p.concurrency,
            rounds=p.send_rounds,
            firestore=firestore,
            postgres=postgres,
            log=_log,
        )
    if section == "pumping":
        from bench.pumping import run_pumping

        return run_pumping(
            creds,
            run_dir,
            starts=p.pumping_starts,
            numbers=p.pumping_numbers,
            addresses=p.pumping_addresses,
            budget=p.pumping_budget,
            log=_log,
        )
    raise ValueError(section)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="./bench.sh", description="Benchmarks against baselines, as ratios.")
    parser.add_argument("--quick", action="store_true", help="scaled-down counts (a smoke run)")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS + OPTIONAL_SECTIONS)}")
    parser.add_argument("--no-firestore", action="store_true", help="skip the Firestore emulator runs (burst, send)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL runs (burst, send)")
    parser.add_argument("--write", action="store_true", help=f"store the report in {RESULTS_FILE.relative_to(ROOT)}")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--strict", action="store_true", help="exit 3 when a bar is not met")
    parser.add_argument(
        "--runs-dir", type=Path, default=RUNS_DIR, help="where each run keeps its logs and raw results (bench/.runs)"
    )
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.only.split(",")) if args.only else SECTIONS
    unknown = [s for s in sections if s not in SECTIONS + OPTIONAL_SECTIONS]
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}; choose from {', '.join(SECTIONS + OPTIONAL_SECTIONS)}")
    profile = QUICK if args.quick else FULL
    try:
        results = run(
            profile, sections, firestore=not args.no_firestore, runs_dir=args.runs_dir, postgres=not args.no_postgres
        )
    except Exception:  # any failure of the harness or of a run: say so, exit 1
        traceback.print_exc()
        _log("a benchmark could not run: see the error above and the logs in bench/.runs/")
        return 1
    report = render(results)
    print(report)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.write:
        update_results_file(RESULTS_FILE, report)
        _log(f"report written to {RESULTS_FILE.relative_to(ROOT)}")
    unmet = [b["id"] for s in results["sections"].values() for b in s.get("bars", []) if not b["met"]]
    if unmet:
        _log(f"bars not met: {', '.join(unmet)}")
    return 3 if args.strict and unmet else 0


if __name__ == "__main__":
    sys.exit(main())
