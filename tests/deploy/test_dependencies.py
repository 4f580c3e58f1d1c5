"""Every third-party package the shipped code imports is pinned exactly in requirements.txt,
and the install uses the lock (constraints.txt) that pins every transitive dependency."""

from __future__ import annotations

import ast
import importlib.metadata
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ("app.py", "main.py", "lambda_handler.py", "functions", "shared", "sandbox", "examples")
LOCAL = {"app", "main", "lambda_handler", "functions", "shared", "sandbox", "examples", "tests", "scripts"}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9,._-]+\])?==([^\s;#]+)")  # extras allowed: psycopg[binary]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: pathlib.Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[_canonical(match.group(1))] = match.group(2).lower()  # the version
    return pins


def _imported_top_level_modules() -> set[str]:
    modules: set[str] = set()
    for entry in SHIPPED:
        path = ROOT / entry
        for source in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in LOCAL}


def test_every_directly_imported_package_is_pinned_in_requirements_txt() -> None:
    pins = _pins(ROOT / "requirements.txt")
    providers = importlib.metadata.packages_distributions()
    unpinned = []
    for module in sorted(_imported_top_level_modules()):
        distributions = {_canonical(d) for d in providers.get(module, [module])}
        if not distributions & set(pins):  # e.g. "google" is provided by several pinned distributions
            unpinned.append(f"{module} (from {', '.join(sorted(distributions))})")
    assert unpinned == [], f"imported but not pinned in requirements.txt: {unpinned}"


def test_the_lock_pins_every_requirement_at_the_same_version_and_the_install_uses_it() -> None:
    locked = _pins(ROOT / "constraints.txt")
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        for name, version in _pins(ROOT / requirements).items():
            assert locked.get(name) == version, f"{requirements}: {name}=={version} but constraints.txt has {locked.get(name)!r}"
    # every line of the lock is an exact pin (or a comment)
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        assert not line.strip() or line.startswith("#") or _PIN.match(line), line
    venv_script = (ROOT / "scripts" / "venv.sh").read_text()
    assert re.search(r"pip install .*-c constraints\.txt", venv_script)
    assert "constraints.txt" in venv_script.split("want=", 1)[1].split("\n", 1)[0]  # a new lock reinstalls


def test_license_is_the_apache_2_0_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text and "END OF TERMS AND CONDITIONS" in text
