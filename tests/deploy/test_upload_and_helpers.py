"""What `gcloud functions deploy --source=.` uploads, and the Vonage webhook helper's pure parts."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _load_helper():
    spec = importlib.util.spec_from_file_location("vonage_webhooks", REPO / "scripts" / "vonage_webhooks.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


helper = _load_helper()


def _list_for_upload(directory: pathlib.Path) -> set[str]:
    """The files gcloud would upload from ``directory``, as gcloud itself reads .gcloudignore."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        pytest.skip("the Google Cloud CLI is not installed: cannot ask it what .gcloudignore leaves out")
    env = {**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    done = subprocess.run(
        [gcloud, "meta", "list-files-for-upload", str(directory)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    return {line.strip() for line in done.stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def uploaded() -> set[str]:
    return _list_for_upload(REPO)


# A tree with every kind of file a working copy may hold, and the real .gcloudignore.
LAYOUT = {
    "kept": ["main.py", "requirements.txt", "shared/config.py", "shared/store/base.py", "functions/send.py"],
    "dropped": [
        "tests/test_x.py", "tests/fixtures/deploy.py", "sandbox/server.py", "bench/run.py", ".venv/lib/x.py",
        ".git/config", "scripts/vonage_webhooks.py", ".data/state.sqlite3", "deploy.env", ".env", ".env.local",
        "requirements-dev.txt", ".replit", "replit.nix", "lambda_handler.py", "deploy.sh", "test.sh", "local.sh",
        "README.md", "shared/__pycache__/config.cpython-311.pyc", "pytest.ini", "lambda.zip",
    ],
}


@pytest.fixture(scope="module")
def uploaded_from_sample(tmp_path_factory) -> set[str]:
    root = tmp_path_factory.mktemp("upload")
    shutil.copy(REPO / ".gcloudignore", root / ".gcloudignore")
    for path in LAYOUT["kept"] + LAYOUT["dropped"]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("x", encoding="utf-8")
    return _list_for_upload(root)


def test_the_upload_holds_what_the_functions_run(uploaded, uploaded_from_sample):
    assert {"main.py", "requirements.txt", "shared/__init__.py", "shared/config.py", "functions/__init__.py"} <= uploaded
    assert set(LAYOUT["kept"]) <= uploaded_from_sample


@pytest.mark.parametrize("path", LAYOUT["dropped"])
def test_the_upload_leaves_out_tests_tools_local_state_and_secrets(uploaded_from_sample, path):
    assert path not in uploaded_from_sample


def test_the_real_upload_has_no_tests_or_sandbox(uploaded):
    assert not [p for p in uploaded if p.split("/", 1)[0] in ("tests", "sandbox", "bench", ".venv", ".git", "scripts")]


def test_apply_webhooks_adds_the_messages_and_verify_capabilities_when_absent():
    body = helper.apply_application_webhooks(
        {"name": "n", "capabilities": {}},
        inbound_url="https://a/in",
        status_url="https://a/st",
        verify_status_url="https://a/st",
    )
    assert body == {
        "name": "n",
        "capabilities": {
            "messages": {
                "webhooks": {
                    "inbound_url": {"address": "https://a/in", "http_method": "POST"},
                    "status_url": {"address": "https://a/st", "http_method": "POST"},
                },
                "version": "v1",
            },
            "verify": {"webhooks": {"status_url": {"address": "https://a/st", "http_method": "POST"}}},
        },
    }


def test_apply_webhooks_keeps_an_explicit_messages_version_and_leaves_the_input_alone():
    application = {"name": "n", "capabilities": {"messages": {"version": "v0.1", "webhooks": {}}}}
    body = helper.apply_application_webhooks(application, inbound_url="https://x/i", status_url="https://x/s")
    assert body["capabilities"]["messages"]["version"] == "v0.1"
    assert "verify" not in body["capabilities"]
    assert application["capabilities"]["messages"]["webhooks"] == {}


@pytest.mark.parametrize(
    "url, masked",
    [
        ("https://h/inbound?token=abc", "https://h/inbound?token=****"),
        ("https://h/inbound?a=1&token=abc&b=2", "https://h/inbound?a=1&token=****&b=2"),
        ("https://h/inbound", "https://h/inbound"),
    ],
)
def test_mask_url_hides_the_webhook_token(url, masked):
    assert helper.mask_url(url) == masked


def test_helper_refuses_to_run_without_credentials(capsys):
    status = helper.main(["sms", "--inbound-url", "https://a/i", "--status-url", "https://a/s"], environ={})
    assert status == 2
    assert "VONAGE_API_KEY" in capsys.readouterr().err


def test_helper_refuses_plain_http_webhook_urls(capsys):
    env = {"VONAGE_API_KEY": "k", "VONAGE_API_SECRET": "s"}
    status = helper.main(["sms", "--inbound-url", "http://a/i?token=zzz", "--status-url", "https://a/s"], environ=env)
    assert status == 2
    err = capsys.readouterr().err
    assert "https://" in err and "zzz" not in err


def test_helper_reports_an_unreachable_vonage_without_the_secret(capsys):
    env = {"VONAGE_API_KEY": "k", "VONAGE_API_SECRET": "very-secret", "VONAGE_REST_BASE_URL": "http://127.0.0.1:9"}
    status = helper.main(["sms", "--inbound-url", "https://a/i", "--status-url", "https://a/s"], environ=env)
    assert status == 1
    captured = capsys.readouterr()
    assert "failed" in captured.err
    assert "very-secret" not in captured.err + captured.out
