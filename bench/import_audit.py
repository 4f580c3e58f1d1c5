"""Child process of the import audit: what does one function's first request import, and at what cost?

Reads ``{"target", "heavy", "request"}`` as JSON on stdin. ``target`` "main" only imports main.py,
with nothing loaded before it (what a WSGI host, Lambda or a test pays); any other target is
loaded from main.py by functions-framework (as deployed) and answers ``request`` through the
framework's test client. Prints one JSON line: the answer's status, the heavy packages imported
beyond what functions-framework itself imports, and the import graph's cost.

The cost comes from ``python -X importtime`` (the parent starts this child with it): each line
there is one module's own import time, so summing them per package between two markers gives
what loading main.py and what answering the first request spent importing, and where. Markers
go to stderr as fake importtime lines, so they sit in the same stream in the right order.
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["import_costs", "main"]

_MARKER = "import-audit-phase:"


def _loaded(heavy: list[str]) -> set[str]:
    return {name for name in heavy if name in sys.modules}


def _phase(name: str) -> None:
    print(f"{_MARKER}{name}", file=sys.stderr, flush=True)


def _group(module: str) -> str:
    """The package a module's import time is charged to (ours by first-level package)."""
    parts = module.strip().split(".")
    if parts[0] in ("shared", "functions") and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def import_costs(stderr: str) -> dict[str, dict[str, Any]]:
    """Per phase: total import time (ms), module count and the costliest packages, from importtime output."""
    phases: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    current: str | None = None
    for line in stderr.splitlines():
        if line.startswith(_MARKER):
            current = line[len(_MARKER):].strip()
            phases.setdefault(current, {})
            counts.setdefault(current, 0)
            continue
        if current is None or not line.startswith("import time:") or "self [us]" in line:
            continue
        try:
            self_us, _cumulative, name = line[len("import time:"):].split("|")
            self_ms = int(self_us) / 1000
        except ValueError:
            continue
        group = _group(name)
        phases[current][group] = phases[current].get(group, 0.0) + self_ms
        counts[current] += 1
    return {
        phase: {
            "ms": round(sum(groups.values()), 1),
            "modules": counts[phase],
            "top": [[g, round(ms, 1)] for g, ms in sorted(groups.items(), key=lambda kv: -kv[1])[:6]],
        }
        for phase, groups in phases.items()
    }


def main() -> None:
    """Run the audit described on stdin; print the report."""
    spec: dict[str, Any] = json.loads(sys.stdin.read())
    heavy: list[str] = spec["heavy"]
    status = None
    framework: set[str] = set()
    if spec["target"] == "main":
        _phase("main")
        import main as _main  # noqa: F401
    else:
        _phase("framework")
        import functions_framework  # the framework's own imports are not the function's

        framework = _loaded(heavy)
        _phase("main")
        app = functions_framework.create_app(target=spec["target"], source="main.py")
        request = spec["request"]
        _phase("test client")  # Flask's test client and what it imports (click, pdb) are not the function's
        client = app.test_client()
        _phase("first request")
        answer = client.open(
            "/",
            method=request["method"],
            data=request["body"].encode() if request["body"] else None,
            headers=request["headers"],
        )
        status = answer.status_code
    _phase("end")
    loaded = sorted(_loaded(heavy) - framework)
    print(json.dumps({"target": spec["target"], "status": status, "loaded": loaded, "framework": sorted(framework)}))


if __name__ == "__main__":
    main()
