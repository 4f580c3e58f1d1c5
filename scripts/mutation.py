"""Mutation testing of the core modules: does the suite notice when the code is wrong?

A small AST-based mutator (no dependency): for each core module it makes one small change at a
time (a comparison flipped or moved by one, ``and``/``or`` swapped, a ``not`` dropped, an ``if``
negated, a number moved by one, ``True``/``False`` swapped, ``+``/``-`` swapped, a
``hmac.compare_digest(a, b)`` turned into ``a == b``), writes the mutant into a scratch copy of
the repository and runs only that module's own test files there. A mutant is *killed* when
those tests fail (or hang past the timeout), *survived* when they pass.

Why not mutmut: mutmut 3 first runs the whole suite to map tests to functions (minutes, and it
starts every emulator-backed test), and needs a layout of one package under ``src``. This
runs one module's test files per mutant, so it is bounded and needs nothing installed.

Usage (not part of CI; see docs/testing.md)::

    scripts/mutation.sh                       # every core module, at most 30 mutants each
    scripts/mutation.sh --max 0               # every mutant (long)
    scripts/mutation.sh --module shared/phone.py --list   # show the mutants, run nothing

Writes ``bench/MUTATION.md`` (kill rate per module, each survivor with its verdict from
``scripts/mutation_verdicts.json``).
"""

from __future__ import annotations

import argparse
import ast
import copy
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "MUTATION.md"
VERDICTS = ROOT / "scripts" / "mutation_verdicts.json"

# Each core module and the test files that own it (run against every mutant of it).
TARGETS: dict[str, list[str]] = {
    "shared/vonage/signatures.py": [
        "tests/shared/vonage/test_signatures.py",
        "tests/shared/vonage/test_signature_edges.py",
    ],
    "shared/vonage/_jws.py": [
        "tests/shared/vonage/test_signatures.py",
        "tests/shared/vonage/test_signature_edges.py",
        "tests/shared/vonage/test_auth.py",
    ],
    "shared/webhooks/auth.py": ["tests/shared/webhooks/test_auth.py", "tests/shared/webhooks/test_auth_edges.py"],
    "shared/webhooks/dedupe.py": [
        "tests/shared/webhooks/test_dedupe_window.py",
        "tests/shared/webhooks/test_inbound_flow.py",
        "tests/shared/webhooks/test_status_flow.py",
    ],
    "shared/messages/idempotency.py": [
        "tests/shared/messages/test_send_idempotency.py",
        "tests/shared/messages/test_idempotency_edges.py",
    ],
    "shared/messages/encoding.py": ["tests/shared/messages/test_send_encoding.py", "tests/shared/messages/test_encoding_edges.py"],
    "shared/verify/fraud.py": ["tests/shared/verify/test_fraud.py", "tests/shared/verify/test_fraud_edges.py"],
    "shared/store/sqlite.py": [
        "tests/shared/store/test_sqlite.py",
        "tests/shared/store/test_contract.py",
        "tests/shared/store/test_sqlite_expiry_boundary.py",
    ],
    "shared/phone.py": ["tests/shared/test_phone.py", "tests/shared/test_phone_edges.py"],
}

_COMPARE_SWAPS: dict[type, list[type]] = {
    ast.Lt: [ast.LtE, ast.GtE],
    ast.LtE: [ast.Lt, ast.Gt],
    ast.Gt: [ast.GtE, ast.LtE],
    ast.GtE: [ast.Gt, ast.Lt],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
}
_BINOP_SWAPS: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult}
_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}


@dataclass(frozen=True)
class Mutant:
    module: str
    line: int
    start: tuple[int, int]  # (line, col) of the replaced source, 1-based line
    end: tuple[int, int]
    original: str
    replacement: str

    @property
    def key(self) -> str:
        """Stable across unrelated edits: the module, the code replaced and what replaced it."""
        return f"{self.module}: {self.original} -> {self.replacement}"


# ---- finding mutants ------------------------------------------------------------------------------


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes not to mutate: docstrings, annotations, f-string insides, log calls, __all__."""
    skip: set[int] = set()

    def all_of(node: ast.AST) -> None:
        for sub in ast.walk(node):
            skip.add(id(sub))

    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            all_of(node)  # docstrings
        elif isinstance(node, ast.JoinedStr):
            all_of(node)  # positions inside f-strings are not reliable before Python 3.12
        elif isinstance(node, (ast.arg, ast.AnnAssign)) and getattr(node, "annotation", None) is not None:
            all_of(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            all_of(node.returns)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _LOG_METHODS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in {"log", "_log", "logger", "logging"}
        ):
            all_of(node)  # what a log line says is not behaviour these tests pin
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            all_of(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for decorator in node.decorator_list:
                all_of(decorator)  # @dataclass(frozen=True) and the like
    return skip


def _replacements(node: ast.AST) -> list[ast.AST]:
    """The mutated copies of ``node`` (each one small change)."""
    out: list[ast.AST] = []
    if isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            for swap in _COMPARE_SWAPS.get(type(op), []):
                mutated = copy.deepcopy(node)
                mutated.ops[index] = swap()
                out.append(mutated)
    elif isinstance(node, ast.BoolOp):
        mutated = copy.deepcopy(node)
        mutated.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append(mutated)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        out.append(copy.deepcopy(node.operand))
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS and not _stringy(node):
        mutated = copy.deepcopy(node)
        mutated.op = _BINOP_SWAPS[type(node.op)]()
        out.append(mutated)
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        out.append(ast.Constant(not node.value))
    elif isinstance(node, ast.Constant) and isinstance(node.value, int):
        out.append(ast.Constant(node.value + 1))
        if node.value != 0:
            out.append(ast.Constant(node.value - 1))
    elif isinstance(node, ast.Constant) and isinstance(node.value, float):
        out.append(ast.Constant(node.value * 2 if node.value else 1.0))
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
        and len(node.args) == 2
    ):
        out.append(ast.Compare(left=node.args[0], ops=[ast.Eq()], comparators=[node.args[1]]))
    return out


def _stringy(node: ast.BinOp) -> bool:
    """``"a" + b`` is string joining: swapping it for ``-`` only makes a TypeError."""
    return any(isinstance(side, (ast.JoinedStr, ast.Constant)) and isinstance(getattr(side, "value", ""), str)
               or isinstance(side, ast.JoinedStr) for side in (node.left, node.right))


def find_mutants(module: str) -> list[Mutant]:
    source = (ROOT / module).read_text(encoding="utf-8")
    tree = ast.parse(source)
    skip = _skipped_nodes(tree)
    mutants: list[Mutant] = []
    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "lineno"):
            continue
        original = ast.get_source_segment(source, node)
        if original is None:
            continue
        candidates = [ast.unparse(r) for r in _replacements(node)]
        if isinstance(node, (ast.If, ast.While)):
            # negate the condition: the test expression is replaced, the body stays
            test = node.test
            if id(test) not in skip:
                segment = ast.get_source_segment(source, test)
                if segment is not None:
                    mutants.append(
                        Mutant(module, test.lineno, (test.lineno, test.col_offset), (test.end_lineno, test.end_col_offset),
                               segment, f"not ({segment})")
                    )
        for text in candidates:
            if text == original:
                continue
            mutants.append(
                Mutant(module, node.lineno, (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset),
                       original, text)
            )
    unique = {m.key + f"@{m.start}": m for m in mutants}
    return sorted(unique.values(), key=lambda m: (m.start, m.replacement))


def apply(source: str, mutant: Mutant) -> str:
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode("utf-8")))
    data = source.encode("utf-8")
    start = offsets[mutant.start[0] - 1] + mutant.start[1]
    end = offsets[mutant.end[0] - 1] + mutant.end[1]
    mutated = data[:start] + f"({mutant.replacement})".encode() + data[end:]
    text = mutated.decode("utf-8")
    ast.parse(text)  # a mutant must still be valid Python
    return text


# ---- running them -------------------------------------------------------------------------------


def _scratch_copy() -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="mutation-"))
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", ".runs", "node_modules", ".pytest_cache", "mutation-*")
    for entry in ROOT.iterdir():
        if entry.name in {".venv", ".git"}:
            continue
        if entry.is_dir():
            shutil.copytree(entry, scratch / entry.name, ignore=ignore)
        else:
            shutil.copy2(entry, scratch / entry.name)
    return scratch


def _run_tests(scratch: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "REQUIRE_ALL_BACKENDS")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # Only the plugins these tests need: loading every installed one (schemathesis, hypothesis)
    # costs about three times the CPU of the tests themselves, once per mutant.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider", "-p", "timeout",
             "-m", "not firestore"],
            cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - started
    elapsed = time.monotonic() - started
    if done.returncode == 0:
        return "survived", elapsed
    if done.returncode == 1:
        return "killed", elapsed
    return f"error {done.returncode}", elapsed


def run(modules: list[str], max_per_module: int, seed: int, log: bool = True,
        save: Path | None = None) -> dict[str, list[dict[str, str]]]:
    scratch = _scratch_copy()
    results: dict[str, list[dict[str, str]]] = {}
    try:
        for module in modules:
            tests = TARGETS[module]
            original = (scratch / module).read_text(encoding="utf-8")
            verdict, baseline = _run_tests(scratch, tests, timeout=900)
            if verdict != "survived":
                raise SystemExit(f"{module}: its tests fail before any mutation ({verdict}); fix that first")
            mutants = find_mutants(module)
            total = len(mutants)
            if max_per_module and total > max_per_module:
                mutants = sorted(random.Random(f"{seed}:{module}").sample(mutants, max_per_module), key=lambda m: m.start)
            if log:
                print(f"{module}: {len(mutants)} of {total} mutants, tests take {baseline:.1f} s", file=sys.stderr, flush=True)
            rows = []
            for mutant in mutants:
                try:
                    (scratch / module).write_text(apply(original, mutant), encoding="utf-8")
                    outcome, _ = _run_tests(scratch, tests, timeout=max(60.0, baseline * 4 + 30))
                finally:
                    (scratch / module).write_text(original, encoding="utf-8")
                if outcome == "timeout":
                    outcome = "killed"  # the tests hung: the mutant broke something they noticed
                rows.append({"line": str(mutant.line), "original": mutant.original, "replacement": mutant.replacement,
                             "key": mutant.key, "outcome": outcome})
                if log:
                    print(f"  {outcome:9} L{mutant.line}: {mutant.original[:60]!r} -> {mutant.replacement[:60]!r}",
                          file=sys.stderr, flush=True)
            results[module] = rows
            results[module + "#total"] = [{"total": str(total)}]
            if save is not None:  # after each module, so a long run interrupted keeps what it did
                save.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


# ---- the report ---------------------------------------------------------------------------------


def render(results: dict[str, list[dict[str, str]]], max_per_module: int, seed: int) -> str:
    verdicts: dict[str, str] = json.loads(VERDICTS.read_text()) if VERDICTS.exists() else {}
    lines = [
        "# Mutation testing of the core modules",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `scripts/mutation.sh"
        + (f" --max {max_per_module}" if max_per_module != 30 else "") + (f" --seed {seed}" if seed != 19 else "") + "`"
        + (f": a seeded sample of at most {max_per_module} mutants per module" if max_per_module else ": every mutant")
        + ", each run against that module's own test files only (listed in `scripts/mutation.py`).",
        "How to read and rerun it: [docs/testing.md](../docs/testing.md).",
        "",
        "| module | mutants found | run | killed | survived | kill rate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    all_run = all_killed = 0
    survivors: list[tuple[str, dict[str, str]]] = []
    errors: list[tuple[str, dict[str, str]]] = []
    for module, rows in results.items():
        if module.endswith("#total"):
            continue
        total = results[module + "#total"][0]["total"]
        killed = sum(1 for r in rows if r["outcome"] == "killed")
        survived = [r for r in rows if r["outcome"] == "survived"]
        errors += [(module, r) for r in rows if r["outcome"] not in ("killed", "survived")]
        survivors += [(module, r) for r in survived]
        all_run += len(rows)
        all_killed += killed
        rate = f"{100 * killed / len(rows):.0f} %" if rows else "-"
        lines.append(f"| `{module}` | {total} | {len(rows)} | {killed} | {len(survived)} | {rate} |")
    overall = f"{100 * all_killed / all_run:.1f} %" if all_run else "-"
    lines += [f"| **all** | | **{all_run}** | **{all_killed}** | **{all_run - all_killed}** | **{overall}** |", ""]
    lines += ["## Survivors", "", "Each with its verdict (`scripts/mutation_verdicts.json`, keyed by module, code and mutant,",
              "optionally `@L<line>`).", ""]
    if not survivors:
        lines.append("None.")
    for module, row in survivors:
        # A verdict may name the line ("<key> @L<line>") where the same change occurs twice.
        verdict = verdicts.get(f"{row['key']} @L{row['line']}") or verdicts.get(row["key"], "NOT YET JUDGED")
        lines.append(f"- `{module}` line {row['line']}: `{_code(row['original'])}` → `{_code(row['replacement'])}`: {verdict}")
    if errors:
        lines += ["", "## Mutants whose test run errored (counted as not killed)", ""]
        for module, row in errors:
            lines.append(f"- `{module}` line {row['line']}: `{_code(row['original'])}` → `{_code(row['replacement'])}` ({row['outcome']})")
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    one_line = " ".join(text.split())
    return (one_line[:100] + " …") if len(one_line) > 100 else one_line.replace("`", "'")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutation.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(TARGETS), help="only this module (repeatable)")
    parser.add_argument("--max", type=int, default=30, help="at most this many mutants per module, a seeded sample (0: all)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--list", action="store_true", help="print the mutants and run nothing")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--no-report", action="store_true", help=f"do not rewrite {REPORT.relative_to(ROOT)}")
    parser.add_argument("--merge", type=Path, nargs="+", help="render the report from saved --json results (run nothing)")
    args = parser.parse_args(argv)
    modules = args.module or list(TARGETS)
    if args.merge:
        merged: dict[str, list[dict[str, str]]] = {}
        for path in args.merge:
            merged.update(json.loads(path.read_text()))
        ordered = {k: merged[k] for m in TARGETS for k in (m, m + "#total") if k in merged}
        report = render(ordered, args.max, args.seed)
        if not args.no_report:
            REPORT.write_text(report, encoding="utf-8")
        print(report)
        return 0
    if args.list:
        for module in modules:
            for mutant in find_mutants(module):
                print(f"{module}:{mutant.line}: {mutant.original!r} -> {mutant.replacement!r}")
        return 0
    results = run(modules, args.max, args.seed, save=args.json)
    report = render(results, args.max, args.seed)
    if not args.no_report:
        REPORT.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
