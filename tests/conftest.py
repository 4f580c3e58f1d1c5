"""Shared test setup. Fixture modules live in tests/fixtures/ and are all loaded here,
so each area (store, sandbox, apps) owns its fixtures in its own file."""

from __future__ import annotations

import pathlib

pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}"
    for path in (pathlib.Path(__file__).parent / "fixtures").glob("*.py")
    if path.stem != "__init__"
)
