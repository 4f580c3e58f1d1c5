"""The guards that keep a green CI run honest (issue 19).

- tests/conftest.py fails a run under CI (any non-empty ``CI``) or ``REQUIRE_ALL_BACKENDS=1``
  when a test marked with a backend marker was skipped, naming the backend; outside CI it only
  says so. Shown on a tiny suite run by pytest in a subprocess, with the project's own hooks.
- scripts/test-services.sh refuses ``SKIP_SERVICES`` / ``SKIP_FIRESTORE`` under CI and fails when
  a service cannot start; shown by sourcing it in bash.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
MARKERS = ("firestore", "postgres", "pubsub", "cloudtasks", "browser")

_CONFTEST = """
from tests.conftest import BACKEND_MARKERS, pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary
"""
_INI = "[pytest]\naddopts = --strict-markers -p no:cacheprovider\nmarkers =\n" + "".join(f"    {m}: backend\n" for m in MARKERS)
_SUITE = """
import os
import pytest

@pytest.mark.firestore
def test_needs_the_emulator():
    if not os.environ.get("FAKE_EMULATOR_HOST"):
        pytest.skip("FAKE_EMULATOR_HOST is not set: the backend was NOT tested")

def test_plain():
    assert 1 + 1 == 2

def test_skipped_without_a_backend():
    pytest.skip("an ordinary skip is not a backend skip")
"""


def _run_suite(tmp_path: pathlib.Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text(_INI)
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    (tmp_path / "test_tiny.py").write_text(_SUITE)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "REQUIRE_ALL_BACKENDS", "FAKE_EMULATOR_HOST")}
    clean["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "."],
        cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("env", [{"CI": "1"}, {"CI": "true"}, {"REQUIRE_ALL_BACKENDS": "1"}])
def test_a_skipped_backend_test_fails_the_run_under_ci(tmp_path, env):
    done = _run_suite(tmp_path, **env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 skipped" in done.stdout and "1 passed" in done.stdout  # nothing failed but the guard
    assert "BACKENDS NOT TESTED: firestore (1 tests); FAILED: CI requires every backend" in done.stdout


def test_outside_ci_a_skipped_backend_is_reported_but_not_a_failure(tmp_path):
    done = _run_suite(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BACKENDS NOT TESTED: firestore (1 tests); not a failure outside CI" in done.stdout


def test_under_ci_a_run_with_every_backend_present_passes(tmp_path):
    done = _run_suite(tmp_path, CI="1", FAKE_EMULATOR_HOST="127.0.0.1:1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BACKENDS NOT TESTED" not in done.stdout  # an ordinary skip does not trip the guard


def test_an_expected_failure_on_a_backend_is_not_a_skipped_backend(tmp_path):
    # pytest reports an xfail as "skipped"; the strict xfails of the round-trip budgets run on
    # every backend and must not read as backends that were not tested (they made CI fail).
    (tmp_path / "test_budget.py").write_text(
        "import pytest\n\n@pytest.mark.postgres\n@pytest.mark.xfail(strict=True, raises=AssertionError, reason='known')\n"
        "def test_budget_missed():\n    assert False\n"
    )
    done = _run_suite(tmp_path, CI="1", FAKE_EMULATOR_HOST="127.0.0.1:1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 xfailed" in done.stdout and "BACKENDS NOT TESTED" not in done.stdout


def test_a_real_failure_keeps_its_own_exit_status_under_ci(tmp_path):
    (tmp_path / "test_more.py").write_text("def test_broken():\n    assert False\n")
    done = _run_suite(tmp_path, CI="1")
    assert done.returncode == 1 and "1 failed, 1 passed, 2 skipped" in done.stdout, done.stdout


# ---- scripts/test-services.sh ------------------------------------------------------------------


def _services(tmp_path: pathlib.Path, script: str, services: dict[str, str] | None = None, **env: str):
    """Source a copy of test-services.sh (with ``services`` as its services/ dir, or the real ones)."""
    home = tmp_path / "scripts"
    home.mkdir()
    shutil.copy(REPO / "scripts" / "test-services.sh", home / "test-services.sh")
    if services is None:
        shutil.copytree(REPO / "scripts" / "services", home / "services")
    else:
        (home / "services").mkdir()
        for name, text in services.items():
            (home / "services" / f"{name}.sh").write_text(text)
    clean = {k: v for k, v in os.environ.items()
             if k not in ("CI", "REQUIRE_ALL_BACKENDS", "SKIP_SERVICES", "SKIP_FIRESTORE")}
    return subprocess.run(
        ["bash", "-c", f'PY="{sys.executable}"; source scripts/test-services.sh; trap stop_services EXIT; {script}'],
        cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    "env",
    [
        {"CI": "true", "SKIP_SERVICES": "firestore"},
        {"CI": "1", "SKIP_FIRESTORE": "1"},
        {"REQUIRE_ALL_BACKENDS": "1", "SKIP_SERVICES": "postgres"},
    ],
)
def test_skipping_a_service_is_refused_under_ci(tmp_path, env):
    done = _services(tmp_path, 'start_test_services; echo "rc=$?"', **env)
    assert "rc=1" in done.stdout, done.stdout + done.stderr
    assert "refused under CI or REQUIRE_ALL_BACKENDS=1" in done.stdout
    assert "NOT RUNNING" not in done.stdout  # refused before anything was started or skipped


_BROKEN = """
SERVICE_MARKER=pubsub
SERVICE_TITLE="Broken emulator"
SERVICE_HINT="install it"
service_start() { return 1; }
"""
_WORKING = """
SERVICE_MARKER=postgres
SERVICE_TITLE="Working server"
SERVICE_HINT="-"
service_start() { export WORKING_SERVICE_URL=here; return 0; }
"""


def test_a_service_that_cannot_start_fails_the_run_under_ci(tmp_path):
    done = _services(tmp_path, 'start_test_services; echo "rc=$?"', {"broken": _BROKEN}, CI="true")
    assert "rc=1" in done.stdout, done.stdout + done.stderr
    assert "Broken emulator NOT RUNNING (it could not start)" in done.stdout
    assert "CI: refusing to pass without the Broken emulator" in done.stdout


def test_outside_ci_a_missing_service_is_named_for_the_pytest_guard(tmp_path):
    script = 'start_test_services; echo "rc=$? missing=$TEST_SERVICES_MISSING url=${WORKING_SERVICE_URL:-}"'
    done = _services(tmp_path, script, {"broken": _BROKEN, "working": _WORKING})
    assert "rc=0 missing=pubsub url=here" in done.stdout, done.stdout + done.stderr
    assert "every test marked `pubsub` is SKIPPED" in done.stdout


def test_outside_ci_skip_services_skips_on_request(tmp_path):
    script = 'start_test_services; echo "rc=$? missing=$TEST_SERVICES_MISSING"'
    done = _services(tmp_path, script, {"working": _WORKING}, SKIP_SERVICES="postgres")
    assert "rc=0 missing=postgres" in done.stdout, done.stdout + done.stderr
    assert "NOT RUNNING (skipped on request)" in done.stdout
