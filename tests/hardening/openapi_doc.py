"""The OpenAPI document of the functions (openapi/openapi.yaml), loaded for tests.

``python -m tests.hardening.openapi_doc`` regenerates openapi/openapi.json from the YAML
(the app serves both without needing a YAML parser at run time; a test keeps them equal).
"""

from __future__ import annotations

import json
import pathlib
from functools import cache
from typing import Any

__all__ = ["OPENAPI_DIR", "JSON_PATH", "YAML_PATH", "dump_json", "load", "operations", "resolve"]

OPENAPI_DIR = pathlib.Path(__file__).resolve().parents[2] / "openapi"
YAML_PATH = OPENAPI_DIR / "openapi.yaml"
JSON_PATH = OPENAPI_DIR / "openapi.json"
METHODS = ("get", "post", "put", "patch", "delete", "options", "head")


@cache
def _load_cached() -> str:
    import yaml

    return json.dumps(yaml.safe_load(YAML_PATH.read_text(encoding="utf-8")))


def load() -> dict[str, Any]:
    """The document, parsed from the YAML source (a fresh copy each call)."""
    return json.loads(_load_cached())


def dump_json(document: dict[str, Any]) -> str:
    """The JSON form committed as openapi/openapi.json."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def resolve(document: dict[str, Any], node: Any) -> Any:
    """``node`` with a top-level ``$ref`` followed (repeatedly)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) for every operation, in document order."""
    found = []
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                found.append((path, method, item[method]))
    return found


if __name__ == "__main__":
    JSON_PATH.write_text(dump_json(load()), encoding="utf-8")
    print(f"wrote {JSON_PATH}")
