"""The code an issue measured, served in the same run: a fair "before" for the burst section.

Issue 18 asks for twice the webhook throughput on the Firestore emulator that main had when the
issue was filed (REFERENCE_COMMIT). Absolute throughput moves with the machine's load by more
than that, so the "before" is measured in the same run rather than quoted: the app's code at
that commit (``git archive`` of what it serves) runs under the same gunicorn settings, on the
same emulator, interleaved with this code's runs. The store is prepared and read back by that
version's own code (a subprocess whose ``shared`` package is the old one), so each version reads
and writes data in its own format.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from bench.harness import PYTHON, ROOT, BenchError, base_env

__all__ = ["REFERENCE_COMMIT", "extract", "in_reference", "reference_env"]

# main when issue 18 was filed: the 80/s, p99 335 ms Firestore burst of bench/RESULTS.md (11-27).
REFERENCE_COMMIT = "e3bb551dfd086b85ec7af25c1508ceb25dcf09d4"
_SERVED = ("shared", "functions", "main.py", "app.py", "openapi")

# Runs in the reference tree: the workload (bench's own class, unpickled) prepares or checks the
# store through the OLD shared package. The answer goes to a file: the old code logs to stdout.
_SCRIPT = """
import pickle, sys
workload, action, out = pickle.load(sys.stdin.buffer)
from shared.deps import get_store
store = get_store()
try:
    result = workload.prepare(store) if action == "prepare" else workload.check(store)
finally:
    getattr(store, "close", lambda: None)()
with open(out, "wb") as handle:
    pickle.dump(result, handle)
"""


def extract(run_dir: Path) -> tuple[Path | None, str | None]:
    """The reference tree under ``run_dir`` (extracted once), or None and why it is not there."""
    tree = run_dir / f"reference-{REFERENCE_COMMIT[:7]}"
    if (tree / "app.py").exists():
        return tree, None
    git = shutil.which("git")
    if git is None:
        return None, "git is not installed"
    try:
        archive = subprocess.run(
            [git, "-C", str(ROOT), "archive", "--format=tar", REFERENCE_COMMIT, *_SERVED],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return None, f"commit {REFERENCE_COMMIT[:7]} is not readable here: {detail.decode(errors='replace').strip()[:160]}"
    tree.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree, None


def reference_env(tree: Path, env: dict[str, str]) -> dict[str, str]:
    """A child's environment with the reference tree's ``shared`` first on the path."""
    child = base_env(env)
    child["PYTHONPATH"] = f"{tree}{os.pathsep}{ROOT}"  # old shared/functions, this bench/
    return child


def in_reference(tree: Path, env: dict[str, str], workload: Any, action: str) -> Any:
    """``workload.prepare(store)`` or ``workload.check(store)`` run by the reference code."""
    out = tree / f".{action}-{os.getpid()}.pickle"
    run = subprocess.run(
        [PYTHON, "-c", _SCRIPT],
        input=pickle.dumps((workload, action, str(out))),
        env=reference_env(tree, env),
        cwd=tree,
        capture_output=True,
        timeout=900,
    )
    if run.returncode != 0:
        raise BenchError(f"reference {action} failed: {run.stderr.decode(errors='replace')[-600:]}")
    try:
        with open(out, "rb") as handle:
            return pickle.load(handle)
    finally:
        out.unlink(missing_ok=True)
