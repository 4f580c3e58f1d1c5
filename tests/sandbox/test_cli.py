"""The command line: ``python -m sandbox serve`` and ``python -m sandbox inbox``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.__main__ import main
from sandbox.config import SandboxConfig
from tests.sandbox._helpers import TO, client, post_json

ROOT = Path(__file__).resolve().parents[2]


def test_inbox_command_prints_the_latest_code(sandbox, capsys) -> None:
    post_json(sandbox.url, "/v2/verify", {"brand": "ACME", "workflow": [{"channel": "sms", "to": TO}]})
    code = sandbox.last_code(TO)
    assert main(["inbox", TO, "--url", sandbox.url]) == 0
    out = capsys.readouterr().out
    assert f"Your ACME verification code is: {code}" in out
    assert main(["inbox", TO, "--url", sandbox.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["code"] == code


def test_inbox_command_over_https_with_the_ca(sandbox_factory, capsys) -> None:
    box = sandbox_factory(tls=True)
    assert main(["inbox", "447700900999", "--url", box.url, "--ca-file", box.ca_file]) == 0
    assert "No messages" in capsys.readouterr().out


def test_inbox_command_reports_an_unreachable_sandbox(capsys) -> None:
    assert main(["inbox", TO, "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot read the inbox" in capsys.readouterr().err


def test_config_from_environment_with_vonage_fallbacks() -> None:
    config = SandboxConfig.from_env(
        {
            "VONAGE_API_KEY": "key12345",
            "SANDBOX_API_SECRET": "s3cret-value",
            "SANDBOX_TRIAL": "true",
            "SANDBOX_ALLOW_LIST": "+447700900001, 447700900002",
            "SANDBOX_RATE_LIMIT": "none",
            "SANDBOX_FAULTS": "5xx;rate=0.1,duplicate;api=sms",
            "SANDBOX_RETRY_DELAYS": "0.1,0.2",
        }
    )
    assert config.api_key == "key12345" and config.api_secret == "s3cret-value"
    assert config.trial and config.allow_list == ("447700900001", "447700900002")
    assert config.rate_limit is None
    assert [rule.kind for rule in config.faults] == ["5xx", "duplicate"]
    assert config.retry_delays == (0.1, 0.2)
    assert "s3cret-value" not in repr(config)
    with pytest.raises(ValueError):
        SandboxConfig.from_env({"SANDBOX_WEBHOOK_FORMAT": "XML"})


@pytest.mark.slow
def test_serve_command_runs_until_terminated(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDBOX_", "VONAGE_"))}
    env["SANDBOX_API_KEY"] = "clikey12"
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--port", "0", "--trial", "--allow", TO],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Vonage sandbox on http://127.0.0.1:"), first
        url = first.split()[3]
        with client() as http:
            config = http.get(f"{url}/_sandbox/config").json()
        assert config["api_key"] == "clikey12" and config["trial"] is True and config["allow_list"] == [TO]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_config_takes_python_values_and_refuses_bad_ones() -> None:
    from decimal import Decimal

    config = SandboxConfig(balance=0.5, allow_list=["+447700900001"], faults=["duplicate"])  # type: ignore[arg-type]
    assert config.balance == Decimal("0.5") and config.allow_list == ("447700900001",)
    assert config.faults[0].kind == "duplicate"
    with pytest.raises(ValueError):
        SandboxConfig(rate_limit=0)
    with pytest.raises(ValueError):
        SandboxConfig().updated({"faults": "meltdown"})
    assert "sandbox-secret" not in str(SandboxConfig().public_dict())
