"""The SMS-pumping simulation (bench/pumping.py), scaled down: it runs, stops, and the budget holds.

No timing is asserted: only what reached the sandbox, against the configured budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness import ROOT
from bench.pumping import attack_numbers, run_pumping
from bench.stack import new_credentials
from shared.phone import parse_phone


def test_the_attack_numbers_are_valid_uk_mobiles_ten_per_range():
    numbers = attack_numbers(500)
    assert len(set(numbers)) == 500
    assert {number[:-3] for number in numbers} == {number[:-3] for number in numbers[::10]}
    assert len({number[:-3] for number in numbers}) == 50
    assert {parse_phone(number).region for number in numbers} == {"GB"}


@pytest.mark.timeout(300)
def test_forged_headers_and_many_addresses_get_no_more_than_the_budget(tmp_path: Path):
    # GIVEN public mode with a budget of 6 starts, WHEN 80 starts come with forged headers from 4 addresses
    result = run_pumping(new_credentials(), tmp_path, starts=80, numbers=40, addresses=4, budget=6, log=lambda _: None)
    # THEN exactly the budget reached Vonage (enough distinct numbers and ranges to use it all)
    assert result["reached"] == 6 and result["errors"] == 0
    assert result["bars"][0]["met"] is True
    assert result["cost"] == "1.50000000" and result["bound"] == "1.50000000"
    # AND the forged X-Forwarded-For did not make one address many: its per-IP limit fired
    assert result["answers"]["forged"].get("ip_rate_limited", 0) > 0
    assert sum(sum(a.values()) for a in result["answers"].values()) == 80


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_only_pumping_quick_prints_its_table(tmp_path: Path):
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "pumping", "--json", str(out), "--runs-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "### 6. SMS pumping" in run.stdout
    section = json.loads(out.read_text())["sections"]["pumping"]
    assert section["reached"] <= section["budget"] and section["bars"][0]["met"] is True
