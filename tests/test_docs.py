"""The docs: a short README, a site that builds strictly, references generated from the code.

The configuration reference is generated from shared/config_docs.py and the Settings defaults,
the API reference from openapi/openapi.yaml (scripts/mkdocs_hooks.py): these tests check that
every variable Settings.from_env reads is documented and every documented one is read, and
build the site with ``mkdocs build --strict`` (a broken link or anchor fails the build).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared.config import Settings
from shared.config_docs import GROUPS, VARIABLES

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BUILD_TIMEOUT = 300  # seconds: generous, the machine may be loaded


def _hooks():
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )


# ---- README ---------------------------------------------------------------------------------


def test_readme_is_a_few_screens_with_the_two_commands_first() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 15 * 1024
    first_block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    assert [line.split()[0] for line in first_block.strip().splitlines()] == ["./local.sh", "./test.sh"]


def test_readme_links_point_at_files_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?:|#)([^)#]+)", text)
    assert targets, "the README links into the docs"
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert missing == []


def test_readme_paste_block_sets_its_token_and_never_opts_out_the_number_it_texts() -> None:
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if "curl" in b)
    assert block.splitlines()[0] == "export TOKEN=$(cat .data/local-token)"
    first_to = re.sub(r"\D", "", re.search(r'"to": "([^"]+)"', block).group(1))
    stopped = re.findall(r'"from": "\+?([\d ]+)"[^}]*"text": "(?:STOP|STOPALL|UNSUBSCRIBE|CANCEL|END|QUIT)"', block)
    assert first_to not in {re.sub(r"\D", "", number) for number in stopped}


# ---- configuration reference ---------------------------------------------------------------


def test_every_variable_settings_reads_is_documented_and_every_documented_one_is_read() -> None:
    hooks = _hooks()
    read = hooks.variables_read_by_settings()
    documented = set(VARIABLES) | set(hooks.documented_elsewhere(ROOT / "docs"))
    assert read - documented == set(), "document these in shared/config_docs.py (or on their feature's page)"
    assert set(VARIABLES) - read == set(), "shared/config_docs.py documents variables Settings.from_env never reads"


def test_reading_finds_variables_behind_conditions() -> None:
    read = _hooks().variables_read_by_settings()
    # K_SERVICE is read only when STATE_BACKEND and FIRESTORE_EMULATOR_HOST are unset; LOG_LEVEL always.
    assert {"K_SERVICE", "GCLOUD_PROJECT", "LOG_LEVEL", "API_TOKENS"} <= read


def test_each_documented_variable_names_a_real_settings_field_and_group() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    for name, doc in VARIABLES.items():
        assert doc.group in GROUPS, name
        assert doc.field is None or doc.field in fields, f"{name}: no Settings field {doc.field!r}"
        assert doc.field is not None or doc.default is not None, f"{name}: give a field or a default"
        assert doc.meaning.strip(), name


def test_generated_reference_shows_the_code_defaults() -> None:
    table = _hooks().configuration_reference(ROOT / "docs")
    assert "| `VONAGE_MAX_RPS` | `30` |" in table
    assert "| `VERIFY_LIMIT_PER_NUMBER` | `3/600` |" in table
    assert "| `MAX_BODY_BYTES` | `262144` |" in table
    assert "| `WEBHOOK_ALLOW_UNSIGNED` | `false` |" in table


# ---- the site -------------------------------------------------------------------------------


@pytest.mark.slow
def test_site_builds_strictly_with_every_variable_and_operation(tmp_path: Path) -> None:
    built = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stdout + built.stderr
    configuration = (tmp_path / "site" / "configuration" / "index.html").read_text(encoding="utf-8")
    for name in _hooks().variables_read_by_settings():
        assert f"<code>{name}</code>" in configuration, name
    assert "<code>SANDBOX_TRIAL</code>" in configuration
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    document = yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text(encoding="utf-8"))
    for path, item in document["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                assert f"{method.upper()} {path}" in api, (method, path)
    for schema in document["components"]["schemas"]:
        assert f'id="schema-{schema.lower()}"' in api, schema
    sandbox = (tmp_path / "site" / "sandbox" / "index.html").read_text(encoding="utf-8")
    assert "Control endpoints" in sandbox  # sandbox/README.md, included as it is


@pytest.mark.slow
def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    page = docs / "troubleshooting.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [a page that is not there](missing.md).\n", encoding="utf-8")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    config["docs_dir"] = str(docs)
    config["hooks"] = [str(ROOT / "scripts" / "mkdocs_hooks.py")]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    built = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0
    assert "missing.md" in built.stdout + built.stderr


@pytest.mark.slow
def test_readme_paste_block_works_against_the_local_run(tmp_path: Path) -> None:
    """The block as printed, on the local run's real ports (the token read from its banner)."""
    import json

    from tests.fixtures.local_run import local_run

    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if "curl" in b)
    with local_run(tmp_path) as run:
        script = (
            block.replace("$(cat .data/local-token)", run.token)
            .replace("http://127.0.0.1:8080", run.functions_url)
            .replace("http://127.0.0.1:8025", run.sandbox_url)
        )
        done = subprocess.run(["bash", "-euc", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    sent, injected, listed, started, inbox = answers
    assert sent["status"] == "submitted" and sent["id"].startswith("msg_")
    assert injected["parts"] == 1
    assert [m["text"] for m in listed["messages"]] == ["hours"]
    assert listed["messages"][0]["handoff"]["reply_result"]["sent"] is True
    assert started["status"] == "pending"
    codes = [m for m in inbox["messages"] if m["kind"] == "verify"]
    assert codes and codes[0]["request_id"] == started["request_id"]
