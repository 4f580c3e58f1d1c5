"""MkDocs hooks: the parts of the docs that are generated from the code, at every build.

A page asks for a generated part with an HTML comment on a line of its own:

    <!-- generated: configuration -->     every variable Settings.from_env reads (shared/config_docs.py)
    <!-- generated: sandbox-settings -->  every SANDBOX_* variable (the SandboxConfig fields)
    <!-- generated: openapi -->           the API reference, from openapi/openapi.yaml
    <!-- include: sandbox/README.md -->   a Markdown file of the repository, its headings one level down

So the configuration reference cannot drift from the settings, nor the API reference from the
OpenAPI document. ``tests/test_docs.py`` builds the site with ``mkdocs build --strict`` and
checks the variables both ways.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = [
    "api_reference",
    "configuration_reference",
    "documented_elsewhere",
    "on_page_markdown",
    "sandbox_settings_reference",
    "variables_read_by_settings",
]

_MARKER = re.compile(r"^<!-- (generated|include): ([\w./-]+) -->$", re.M)
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
_CONFIG_PAGE = "configuration.md"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each marker line with what it names (MkDocs hook)."""
    docs_dir = Path(config["docs_dir"])

    def expand(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "include":
            return include(name)
        if name == "configuration":
            return configuration_reference(docs_dir)
        if name == "sandbox-settings":
            return sandbox_settings_reference()
        if name == "openapi":
            return api_reference()
        raise ValueError(f"{page.file.src_path}: unknown generated part {name!r}")

    return _MARKER.sub(expand, markdown)


# ---- configuration ------------------------------------------------------------------------


def variables_read_by_settings() -> set[str]:
    """Every variable ``Settings.from_env`` reads: by reading shared/config.py, and by running it.

    The source scan finds reads behind conditions an empty environment never reaches; running
    ``from_env`` on a recording mapping finds reads that do not spell the name at the call.
    """
    from shared.config import Settings

    names: set[str] = set()
    tree = ast.parse((ROOT / "shared" / "config.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("env", "self")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _ENV_NAME.match(node.args[0].value)
        ):
            names.add(node.args[0].value)

    class Recording(dict):  # type: ignore[type-arg]
        def get(self, key: Any, default: Any = None) -> Any:
            names.add(key)
            return super().get(key, default)

        def __getitem__(self, key: Any) -> Any:
            names.add(key)
            return super().__getitem__(key)

        def __contains__(self, key: object) -> bool:
            names.add(str(key))
            return super().__contains__(key)

    Settings.from_env(Recording())
    return {name for name in names if _ENV_NAME.match(name)}


def documented_elsewhere(docs_dir: Path) -> dict[str, str]:
    """Variables a feature's own page documents (a table row or a list item starting with its name)."""
    found: dict[str, str] = {}
    row = re.compile(r"^\s*(?:\|\s*|[-*]\s+)`([A-Z][A-Z0-9_]+)`", re.M)
    for page in sorted(docs_dir.rglob("*.md")):
        relative = page.relative_to(docs_dir).as_posix()
        if relative == _CONFIG_PAGE:
            continue
        for name in row.findall(page.read_text(encoding="utf-8")):
            found.setdefault(name, relative)
    return found


def _default_of(doc: Any) -> str:
    from shared.config import Settings

    if doc.default is not None:
        return doc.default
    if doc.field is None:
        return "–"
    value = {f.name: f for f in dataclasses.fields(Settings)}[doc.field].default
    if value is None or value == () or value == "":
        return "–"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    return f"`{text}`" if len(text) <= 40 else "(English text: see the code)"


def configuration_reference(docs_dir: Path) -> str:
    """Tables of every variable, grouped, with default and meaning; then those documented elsewhere."""
    from shared.config_docs import GROUPS, VARIABLES

    read = variables_read_by_settings()
    out: list[str] = []
    for group in GROUPS:
        rows = [(name, doc) for name, doc in VARIABLES.items() if doc.group == group]
        if not rows:
            continue
        out += [f"### {group}", "", "| Variable | Default | Meaning |", "|---|---|---|"]
        out += [f"| `{name}` | {_default_of(doc)} | {doc.meaning} |" for name, doc in rows]
        out.append("")
    elsewhere = documented_elsewhere(docs_dir)
    extra = sorted(name for name in read - set(VARIABLES) if name in elsewhere)
    if extra:
        out += ["### Documented with their feature", "", "| Variable | Where |", "|---|---|"]
        out += [f"| `{name}` | [{elsewhere[name]}]({elsewhere[name]}) |" for name in extra]
        out.append("")
    return "\n".join(out)


def sandbox_settings_reference() -> str:
    """Every SANDBOX_* variable: one per SandboxConfig field, with its default."""
    from sandbox.config import _SECRET_FIELDS, _VONAGE_FALLBACK, SandboxConfig

    out = ["| Variable | Default | Falls back to |", "|---|---|---|"]
    for f in dataclasses.fields(SandboxConfig):
        if f.default is not dataclasses.MISSING:
            value: Any = f.default
        else:
            value = f.default_factory()  # type: ignore[misc]
        if f.name in _SECRET_FIELDS or value in (None, (), ""):
            shown = "–" if f.name not in _SECRET_FIELDS or value is None else "(a fixed test value)"
        elif isinstance(value, tuple):
            shown = "`" + ",".join(str(v) for v in value) + "`"
        elif isinstance(value, bool):
            shown = "`true`" if value else "`false`"
        else:
            shown = f"`{value}`"
        fallback = f"`{_VONAGE_FALLBACK[f.name]}`" if f.name in _VONAGE_FALLBACK else ""
        out.append(f"| `SANDBOX_{f.name.upper()}` | {shown} | {fallback} |")
    return "\n".join(out) + "\n"


# ---- API reference ------------------------------------------------------------------------


def _load_openapi() -> dict[str, Any]:
    import yaml

    return yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text(encoding="utf-8"))


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node, seen = target, seen + 1
    return node


def _type_of(doc: dict[str, Any], schema: Any) -> str:
    schema = schema or {}
    if "$ref" in schema:
        return f"[{schema['$ref'].rsplit('/', 1)[-1]}](#{_anchor(schema['$ref'].rsplit('/', 1)[-1])})"
    for combiner in ("oneOf", "anyOf"):
        if combiner in schema:
            return " or ".join(_type_of(doc, option) for option in schema[combiner])
    kind = schema.get("type", "object" if "properties" in schema else "")
    if isinstance(kind, list):
        kind = " or ".join(str(k) for k in kind)
    if kind == "array":
        return f"array of {_type_of(doc, schema.get('items'))}"
    if "enum" in schema:
        return f"{kind} (" + ", ".join(f"`{v}`" for v in schema["enum"]) + ")"
    return str(kind or "any")


def _anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def api_reference() -> str:
    """Every operation (method, path, summary, description, body, parameters, answers) and schema."""
    doc = _load_openapi()
    out: list[str] = []
    info = doc.get("info", {})
    out += [f"*{info.get('title', '')} {info.get('version', '')}*: {info.get('summary', '')}", ""]
    out += [str(info.get("description", "")).strip(), ""]
    for path, item in doc.get("paths", {}).items():
        shared_params = item.get("parameters", [])
        for method in ("get", "post", "put", "patch", "delete"):
            operation = item.get(method)
            if not operation:
                continue
            out += [f"## `{method.upper()} {path}`", "", f"**{_cell(operation.get('summary'))}**", ""]
            if operation.get("description"):
                out += [str(operation["description"]).strip(), ""]
            security = operation.get("security", doc.get("security")) or []
            names = [name for requirement in security for name in requirement]
            if names and any(not requirement for requirement in security):
                out += ["Authentication: " + "; ".join(f"`{name}`" for name in names) + ", or none where the description says so.", ""]
            elif names:
                out += ["Authentication, any one of: " + "; ".join(f"`{name}`" for name in names) + ".", ""]
            else:
                out += ["Authentication: none.", ""]
            params = [_resolve(doc, p) for p in shared_params + operation.get("parameters", [])]
            if params:
                out += ["| Parameter | In | Type | Required | Meaning |", "|---|---|---|---|---|"]
                for p in params:
                    out.append(
                        f"| `{p['name']}` | {p.get('in', '')} | {_type_of(doc, p.get('schema'))} | "
                        f"{'yes' if p.get('required') else 'no'} | {_cell(p.get('description'))} |"
                    )
                out.append("")
            body = _resolve(doc, operation.get("requestBody"))
            if body:
                types = ", ".join(
                    f"`{media}` {_type_of(doc, spec.get('schema'))}" for media, spec in body.get("content", {}).items()
                )
                out += [f"Request body: {types}. {_cell(body.get('description'))}", ""]
            out += ["| Status | Answer |", "|---|---|"]
            for status, response in operation.get("responses", {}).items():
                resolved = _resolve(doc, response)
                schemas = [
                    _type_of(doc, spec.get("schema")) for spec in (resolved.get("content") or {}).values() if spec.get("schema")
                ]
                shown = _cell(resolved.get("description"))
                if schemas:
                    shown += " " + schemas[0]
                out.append(f"| {status} | {shown} |")
            out.append("")
    schemes = doc.get("components", {}).get("securitySchemes", {})
    if schemes:
        out += ["## Authentication", "", "| Scheme | How |", "|---|---|"]
        out += [f"| `{name}` | {_cell(scheme.get('description'))} |" for name, scheme in schemes.items()]
        out.append("")
    out += ["## Schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out += [f'### {name} {{ #{_anchor(name)} }}', ""]
        if schema.get("description"):
            out += [str(schema["description"]).strip(), ""]
        properties = schema.get("properties") or {}
        if properties:
            required = set(schema.get("required") or [])
            out += ["| Field | Type | Required | Meaning |", "|---|---|---|---|"]
            for field_name, field_schema in properties.items():
                out.append(
                    f"| `{field_name}` | {_type_of(doc, field_schema)} | {'yes' if field_name in required else 'no'} | "
                    f"{_cell((field_schema or {}).get('description'))} |"
                )
            out.append("")
        elif schema:
            out += [f"Type: {_type_of(doc, schema)}", ""]
    return "\n".join(out)


# ---- includes -----------------------------------------------------------------------------

_LINK = re.compile(r"\[([^\]]+)\]\((?!https?:|#|mailto:)([^)]+)\)")


def include(relative: str) -> str:
    """A repository Markdown file, headings one level down; its relative links become paths."""
    path = (ROOT / relative).resolve()
    if ROOT not in path.parents or path.suffix != ".md":
        raise ValueError(f"cannot include {relative!r}: only Markdown files of the repository")
    base = Path(relative).parent
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.M)
    return _LINK.sub(lambda m: f"{m.group(1)} (`{(base / m.group(2)).as_posix()}`)", text)


if __name__ == "__main__":  # python scripts/mkdocs_hooks.py configuration|openapi|sandbox-settings
    what = sys.argv[1] if len(sys.argv) > 1 else "configuration"
    if what == "configuration":
        print(configuration_reference(ROOT / "docs"))
    elif what == "sandbox-settings":
        print(sandbox_settings_reference())
    else:
        print(api_reference())
