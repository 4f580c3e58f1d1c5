"""The benchmark harness runs and reports (bench/): structure only, never a timing.

CI does not time anything. These tests prove that ``python -m bench --quick`` starts and stops
its servers, drives every benchmark and prints its tables, and that the pieces that decide
"lost / doubled / accounted for" and the stored report do what they say.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bulk import _max_in_window
from bench.harness import ROOT, median, percentile
from bench.report import BEGIN, END, update_results_file
from bench.stack import new_credentials
from bench.workload import WebhookWorkload
from shared.store.sqlite import SQLiteStateStore

SECTIONS = {"cold", "burst", "bulk", "cpu", "memory", "send"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_profile_runs_every_benchmark_and_prints_the_tables(tmp_path: Path) -> None:
    # GIVEN the quick profile, without the Firestore emulator (the burst reports it as not run)
    out = tmp_path / "results.json"
    # WHEN the harness runs as ./bench.sh runs it
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-firestore", "--json", str(out), "--runs-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    # THEN it finished, printed every table, and kept the raw results
    assert run.returncode == 0, run.stderr[-3000:]
    for heading in (
        "### Bars",
        "### 1. Cold start",
        "### 2. Webhook burst",
        "### 3. Bulk pacing",
        "### 4. CPU per message",
        "### 5. Memory",
        "### 6. Send path per store",
    ):
        assert heading in run.stdout
    results = json.loads(out.read_text())
    assert set(results["sections"]) == SECTIONS
    bars = [bar for section in results["sections"].values() for bar in section["bars"]]
    assert {bar["id"] for bar in bars} == {"1a", "1b", "1c", "2a", "2b", "2c", "3", "4a", "4b", "4c", "5", "6"}
    assert all(isinstance(bar["met"], bool) and bar["value"] for bar in bars)

    cold = results["sections"]["cold"]
    assert {"hello", "sdk", "send", "app"} <= {row["name"] for row in cold["rows"]}
    assert all(row["median_ms"] > 0 for row in cold["rows"])
    assert cold["import_audit"]["main"]["loaded"] == []  # importing main.py loads no heavy package

    burst = {row["name"]: row for row in results["sections"]["burst"]["rows"]}
    assert burst["firestore"]["skipped"]
    assert burst["sqlite"]["lost"] == 0 and burst["sqlite"]["doubled"] == 0
    assert burst["sqlite"]["non_200"] == 0
    # The reference code (issue 18's "before", git archive of a commit this clone holds) ran too,
    # with its own store format, and lost nothing either; without Firestore its bar says why.
    assert burst["sqlite@ref"]["lost"] == 0 and burst["sqlite@ref"]["non_200"] == 0, burst["sqlite@ref"]
    assert burst["sqlite@ref"]["throughput"] > 0
    firestore_bar = next(bar for bar in bars if bar["id"] == "2c")
    assert firestore_bar["met"] is False and firestore_bar["value"].startswith("not measured")
    # PostgreSQL runs beside SQLite: on ./test.sh's server, else on one the harness starts, else it says why not.
    if os.environ.get("POSTGRES_TEST_URL"):
        assert not burst["postgres"].get("skipped")
    if not burst["postgres"].get("skipped"):
        assert burst["postgres"]["lost"] == 0 and burst["postgres"]["doubled"] == 0 and burst["postgres"]["non_200"] == 0
    send = {row["name"]: row for row in results["sections"]["send"]["rows"]}
    assert send["sqlite"]["accounted"] is True and send["sqlite"]["statuses"] == {"202": 48}
    assert send["firestore"]["skipped"]
    if not send["postgres"].get("skipped"):
        assert send["postgres"]["accounted"] is True and send["postgres"]["statuses"] == {"202": 48}

    bulk = results["sections"]["bulk"]
    assert bulk["accounted"] is True and bulk["throttled"] == 0

    cpu = results["sections"]["cpu"]
    assert {(row["api"], row["impl"]) for row in cpu["rows"]} == {
        (api, impl) for api in ("sms", "messages") for impl in ("sdk", "client", "path")
    }
    for row in cpu["rows"]:  # the cProfile breakdown: shares of one whole, our client in our rows
        assert sum(layer["share"] for layer in row["profile"]) == pytest.approx(1.0, abs=0.01)
        layers = {layer["layer"] for layer in row["profile"]}
        assert ("our Vonage client and auth" in layers) == (row["impl"] != "sdk"), layers
    memory = results["sections"]["memory"]
    assert memory["requests"] == 600 and len(memory["samples"]) >= 3


def test_workload_check_finds_lost_and_doubled_events() -> None:
    # GIVEN a workload whose messages exist but none of whose events were delivered
    workload = WebhookWorkload(new_credentials(), 40, duplicate_share=0.1, seed=1)
    store = SQLiteStateStore(":memory:")
    workload.prepare(store)
    assert workload.check(store)["duplicates"] == 4
    # WHEN nothing was delivered THEN every event is lost
    report = workload.check(store)
    assert report["lost"] == report["events"] == 36 and report["doubled"] == 0
    # WHEN one status shows up twice in a message's history THEN it is counted as doubled
    from shared.messages.records import MESSAGES

    message = next(m for m in workload.messages if m.statuses)
    entry = {"status": message.statuses[0], "vonage_id": message.vonage_id, "event_key": "x"}
    store.update(MESSAGES, message.message_id, lambda doc: {**doc, "history": [*doc["history"], entry, entry]})
    assert workload.check(store)["doubled"] == 1


def test_workload_repeats_put_half_the_copies_next_to_their_original() -> None:
    workload = WebhookWorkload(new_credentials(), 200, duplicate_share=0.1, seed=5)
    deliveries = workload.deliveries
    copies = [i for i, d in enumerate(deliveries) if d.duplicate]
    adjacent = [i for i in copies if deliveries[i - 1].event == deliveries[i].event]
    assert len(copies) == 20 and len(adjacent) >= 10
    assert len({d.event for d in deliveries}) == 180


def test_results_file_keeps_what_is_written_outside_the_markers(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# Results\n\nNotes written by hand.\n\n{BEGIN}\nold table\n{END}\n\nMore notes.\n")
    update_results_file(path, "new table\n")
    text = path.read_text()
    assert "old table" not in text and "new table" in text
    assert text.startswith("# Results\n\nNotes written by hand.") and text.endswith("More notes.\n")


def test_statistics_and_the_sliding_window_count() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert percentile([float(i) for i in range(101)], 99) == 99.0
    # The sandbox's rule: arrivals exactly one second apart fall in different windows.
    assert _max_in_window([0.0, 0.5, 1.0, 1.2]) == 3
    assert _max_in_window([0.0, 0.999, 1.5]) == 2
