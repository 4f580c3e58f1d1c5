"""Child process of the import audit: which heavy packages does one function's first request import?

Reads ``{"target", "heavy", "request"}`` as JSON on stdin. ``target`` "main" only imports main.py;
any other target is loaded from main.py by functions-framework (as deployed) and answers
``request`` through the framework's test client. Prints one JSON line: the answer's status and
the heavy packages imported beyond what functions-framework itself imports.
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["main"]


def _loaded(heavy: list[str]) -> set[str]:
    return {name for name in heavy if name in sys.modules}


def main() -> None:
    """Run the audit described on stdin; print the report."""
    spec: dict[str, Any] = json.loads(sys.stdin.read())
    heavy: list[str] = spec["heavy"]
    import functions_framework  # noqa: F401 - the framework's own imports are not the function's

    framework = _loaded(heavy)
    status = None
    if spec["target"] == "main":
        import main as _main  # noqa: F401
    else:
        app = functions_framework.create_app(target=spec["target"], source="main.py")
        request = spec["request"]
        answer = app.test_client().open(
            "/",
            method=request["method"],
            data=request["body"].encode() if request["body"] else None,
            headers=request["headers"],
        )
        status = answer.status_code
    loaded = sorted(_loaded(heavy) - framework)
    print(json.dumps({"target": spec["target"], "status": status, "loaded": loaded, "framework": sorted(framework)}))


if __name__ == "__main__":
    main()
