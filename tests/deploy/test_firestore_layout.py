"""deploy.sh's Firestore set-up must match what the code in shared/ writes and queries.

Both sides are parsed: the code with ``ast`` (every ``.create(...)`` / ``.update(...)`` that
passes a ``ttl``, every ``.query(...)`` with ``where`` and ``order_by``), deploy.sh with a
regular expression over its arrays. A collection written with a ttl but missing from
TTL_COLLECTIONS would keep expired documents forever (Firestore only deletes what a TTL
policy names); a query without its composite index fails at run time on Firestore only.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
from dataclasses import dataclass

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO / "shared"
DEPLOY_SH = REPO / "deploy.sh"


def _deploy_sh_values(name: str) -> list[str]:
    """The value(s) of a variable set in deploy.sh's header, as bash itself reads them.

    The header (everything above "# ---- defaults") holds only assignments, so bash can
    evaluate it without running anything else.
    """
    script = (
        'eval "$(sed -n \'1,/^# ---- defaults/p\' "$1")"; '
        f'printf "%s\\n" "${{{name}[@]}}"'
    )
    done = subprocess.run(["bash", "-c", script, "bash", str(DEPLOY_SH)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def _bash_array(name: str) -> list[str]:
    return _deploy_sh_values(name)


def _bash_scalar(name: str) -> str:
    values = _deploy_sh_values(name)
    assert len(values) == 1, f"{name} in deploy.sh: {values}"
    return values[0]


# ---- parsing shared/ ---------------------------------------------------------------


@dataclass(frozen=True)
class _Module:
    name: str
    path: pathlib.Path
    tree: ast.Module


def _modules() -> dict[str, _Module]:
    modules = {}
    for path in sorted(SHARED.rglob("*.py")):
        relative = path.relative_to(REPO).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        modules[name] = _Module(name, path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return modules


def _string_constants(module: _Module) -> dict[str, str]:
    """Module-level NAME = "text" assignments."""
    found: dict[str, str] = {}
    for node in module.tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = value.value
    return found


class _Resolver:
    """Turns an expression naming a collection into its string, across imports."""

    def __init__(self, modules: dict[str, _Module]) -> None:
        self.modules = modules
        self.constants = {name: _string_constants(module) for name, module in modules.items()}
        self.imports: dict[str, dict[str, tuple[str, str | None]]] = {}
        for name, module in modules.items():
            table: dict[str, tuple[str, str | None]] = {}
            for node in ast.walk(module.tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    for alias in node.names:
                        # from shared.x import NAME  -> (shared.x, NAME); from shared import x -> module alias
                        table[alias.asname or alias.name] = (node.module, alias.name)
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        table[alias.asname or alias.name] = (alias.name, None)
            self.imports[name] = table

    def resolve(self, module: str, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.constants.get(module, {}):
                return self.constants[module][node.id]
            origin = self.imports.get(module, {}).get(node.id)
            if origin and origin[1] is not None:
                return self.constants.get(origin[0], {}).get(origin[1])
            return None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            origin = self.imports.get(module, {}).get(node.value.id)
            if origin:
                target = origin[0] if origin[1] is None else f"{origin[0]}.{origin[1]}"
                return self.constants.get(target, {}).get(node.attr)
        return None


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _loop_values(name: str, node: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[str] | None:
    """The strings a loop variable takes: ``for name in ("a", "b")`` around ``node``."""
    current = parents.get(node)
    while current is not None:
        if isinstance(current, ast.For) and isinstance(current.target, ast.Name) and current.target.id == name:
            if isinstance(current.iter, (ast.Tuple, ast.List)) and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in current.iter.elts
            ):
                return [e.value for e in current.iter.elts]  # type: ignore[attr-defined]
            return None
        current = parents.get(current)
    return None


def _store_calls(method: str) -> list[tuple[_Module, ast.Call, _Resolver, dict[ast.AST, ast.AST]]]:
    modules = _modules()
    resolver = _Resolver(modules)
    calls = []
    for module in modules.values():
        parents = _parents(module.tree)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method:
                calls.append((module, node, resolver, parents))
    return calls


# Writes described as objects (shared.store.base): store.update_many([Update(...)]) and
# hit_many(..., then=[Charge(...)]) write the collection the object names, with its ttl.
_WRITE_OBJECTS = ("Update", "Charge")


def _write_object_calls() -> list[tuple[_Module, ast.Call, _Resolver, dict[ast.AST, ast.AST]]]:
    modules = _modules()
    resolver = _Resolver(modules)
    return [
        (module, node, resolver, {})
        for module in modules.values()
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _WRITE_OBJECTS
    ]


def collections_written_with_ttl() -> tuple[set[str], list[str]]:
    """Collections passed to store.create/update (or named by an Update/Charge) with a ttl, and
    the calls that could not be read."""
    found: set[str] = set()
    unresolved: list[str] = []
    for calls in (_store_calls("create"), _store_calls("update"), _write_object_calls()):
        for module, call, resolver, _ in calls:
            ttl = next((kw for kw in call.keywords if kw.arg == "ttl"), None)
            if ttl is None or (isinstance(ttl.value, ast.Constant) and ttl.value.value is None):
                continue
            if not call.args:
                continue
            if isinstance(call.args[0], ast.Attribute) and call.args[0].attr == "collection":
                continue  # forwards an Update/Charge built elsewhere: checked where it is built
            collection = resolver.resolve(module.name, call.args[0])
            if collection is None:
                unresolved.append(f"{module.path.relative_to(REPO)}:{call.lineno}")
            else:
                found.add(collection)
    return found, unresolved


def indexes_queried() -> tuple[set[tuple[str, str, str, str]], list[str]]:
    """(collection, equality field, order field, direction) of each where+order_by query."""
    found: set[tuple[str, str, str, str]] = set()
    unresolved: list[str] = []
    for module, call, resolver, parents in _store_calls("query"):
        keywords = {kw.arg: kw.value for kw in call.keywords}
        if "where" not in keywords or "order_by" not in keywords or not call.args:
            continue
        where_ = keywords["where"]
        order_by = keywords["order_by"]
        descending = keywords.get("descending")
        where_line = f"{module.path.relative_to(REPO)}:{call.lineno}"
        collection = resolver.resolve(module.name, call.args[0])
        order_field = resolver.resolve(module.name, order_by)
        if collection is None or order_field is None or not isinstance(where_, ast.Dict):
            unresolved.append(where_line)
            continue
        direction = "ascending"
        if isinstance(descending, ast.Constant) and descending.value is True:
            direction = "descending"
        elif descending is not None and not (isinstance(descending, ast.Constant) and descending.value is False):
            unresolved.append(where_line)
            continue
        keys: list[str] = []
        for key in where_.keys:
            if key is None:
                unresolved.append(where_line)
                continue
            value = resolver.resolve(module.name, key)
            if value is not None:
                keys.append(value)
            elif isinstance(key, ast.Name) and (values := _loop_values(key.id, call, parents)) is not None:
                keys.extend(values)
            else:
                unresolved.append(where_line)
        for key in keys:
            if key != order_field:
                found.add((collection, key, order_field, direction))
    return found, unresolved


# ---- the tests ---------------------------------------------------------------------


def test_every_collection_written_with_a_ttl_has_a_ttl_policy_in_deploy_sh():
    written, unresolved = collections_written_with_ttl()
    assert not unresolved, (
        f"cannot tell which collection these calls write with a ttl: {unresolved}; "
        "name the collection with a module-level constant so deploy.sh's TTL list can be checked"
    )
    assert written, "no collection written with a ttl was found: the parser no longer matches the code"
    listed = set(_bash_array("TTL_COLLECTIONS"))
    missing = written - listed
    assert not missing, f"add these to TTL_COLLECTIONS in deploy.sh (written with a ttl in shared/): {sorted(missing)}"


def test_deploy_sh_sets_no_ttl_policy_on_a_collection_that_never_expires():
    written, _ = collections_written_with_ttl()
    extra = set(_bash_array("TTL_COLLECTIONS")) - written
    assert not extra, f"TTL_COLLECTIONS in deploy.sh names collections nothing writes with a ttl: {sorted(extra)}"


def test_the_ttl_field_is_the_one_the_firestore_store_writes():
    from shared.store.base import TTL_FIELD

    assert _bash_scalar("TTL_FIELD") == TTL_FIELD


def test_known_expiring_collections_are_found_by_the_parser():
    # A guard on the parser itself: these are written with a ttl today.
    written, _ = collections_written_with_ttl()
    assert {"ratelimits", "idempotency", "verifications"} <= written


def _index_entries() -> set[tuple[str, str, str, str]]:
    entries = set()
    for spec in _bash_array("COMPOSITE_INDEXES"):
        collection, fields = spec.split(" ", 1)
        parts = [f.split(":") for f in fields.split(",")]
        assert all(len(p) == 2 and p[1] in ("ascending", "descending") for p in parts), spec
        assert len(parts) == 2, f"expected 'field:order,field:order' in {spec!r}"
        (eq_field, _), (order_field, direction) = parts
        entries.add((collection, eq_field, order_field, direction))
    return entries


def test_every_filtered_and_ordered_query_has_a_composite_index_in_deploy_sh():
    queried, unresolved = indexes_queried()
    assert not unresolved, f"cannot read the where/order_by of these queries: {unresolved}"
    missing = queried - _index_entries()
    assert not missing, f"add composite indexes to COMPOSITE_INDEXES in deploy.sh: {sorted(missing)}"


def test_deploy_sh_creates_no_index_no_query_needs():
    queried, _ = indexes_queried()
    extra = _index_entries() - queried
    assert not extra, f"COMPOSITE_INDEXES in deploy.sh lists indexes no query uses: {sorted(extra)}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ('C = "things"\ndef f(store):\n    store.create(C, "k", {}, ttl=5)\n', {"things"}),
        ('def f(store):\n    store.update("literal", "k", g, ttl=1)\n', {"literal"}),
        ('C = "x"\ndef f(store):\n    store.update(C, "k", g)\n    store.create(C, "k", {}, ttl=None)\n', set()),
    ],
)
def test_the_ttl_parser_reads_constants_literals_and_skips_calls_without_a_ttl(tmp_path, monkeypatch, source, expected):
    module = _Module("shared.fake", tmp_path / "fake.py", ast.parse(source))
    resolver = _Resolver({"shared.fake": module})
    found = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("create", "update"):
            ttl = next((kw for kw in node.keywords if kw.arg == "ttl"), None)
            if ttl is None or (isinstance(ttl.value, ast.Constant) and ttl.value.value is None):
                continue
            found.add(resolver.resolve("shared.fake", node.args[0]))
    assert found == expected
