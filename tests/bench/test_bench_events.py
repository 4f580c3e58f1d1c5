"""bench/events.py runs its three modes and reports them (structure only: nothing is timed here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness import ROOT


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_events_benchmark_runs_every_mode_and_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "events.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.events", "--requests", "3", "--concurrency", "3", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Webhook acknowledgement, handler 2 s" in run.stdout and "goal (bus p99" in run.stdout
    results = json.loads(out.read_text())["results"]
    assert [row["mode"] for row in results] == ["no handler", "in-process", "bus"]
    assert all(row["ok"] == row["requests"] == 3 for row in results)
