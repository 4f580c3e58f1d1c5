"""Shared test setup. Fixture modules live in tests/fixtures/ and are all loaded here,
so each area (store, sandbox, apps) owns its fixtures in its own file."""

from __future__ import annotations

import pathlib
from typing import Any

# store first: other fixture modules import it, and a plugin imported before pytest registers it
# is not assertion-rewritten (PytestAssertRewriteWarning, and its asserts lose their detail).
pytest_plugins = sorted(
    (
        f"tests.fixtures.{path.stem}"
        for path in (pathlib.Path(__file__).parent / "fixtures").glob("*.py")
        if path.stem != "__init__"
    ),
    key=lambda name: (name != "tests.fixtures.store", name),
)

# ---- every backend tested, or the run says it failed ---------------------------------------
# Tests that need a real component carry its marker (pytest.ini) and skip loudly without it.
# Under CI (any non-empty CI) or REQUIRE_ALL_BACKENDS=1 such a skip fails the whole run, naming
# what was not tested: a green CI run must mean every backend ran.
BACKEND_MARKERS = ("firestore", "postgres", "pubsub", "cloudtasks", "browser")
_skipped_backends: dict[str, int] = {}


def _backends_required() -> bool:
    import os

    return bool(os.environ.get("CI", "").strip()) or os.environ.get("REQUIRE_ALL_BACKENDS") == "1"


def pytest_runtest_logreport(report: Any) -> None:
    # An expected failure (xfail) is reported as skipped too, but it ran: only real skips count.
    if report.skipped and not hasattr(report, "wasxfail"):
        for marker in BACKEND_MARKERS:
            if marker in report.keywords:
                _skipped_backends[marker] = _skipped_backends.get(marker, 0) + 1


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if _skipped_backends and _backends_required() and exitstatus in (0, 5):
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _skipped_backends:
        return
    named = ", ".join(f"{marker} ({count} tests)" for marker, count in sorted(_skipped_backends.items()))
    verdict = "FAILED: CI requires every backend" if _backends_required() else "not a failure outside CI"
    terminalreporter.write_sep("=", f"BACKENDS NOT TESTED: {named}; {verdict}", red=True, bold=True)
