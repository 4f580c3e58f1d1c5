"""The README's first command: ./local.sh (python -m sandbox.local) serves and demos the whole loop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sandbox.local import has_real_credentials

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VONAGE_", "API_TOKENS", "STATE_", "FIRESTORE_"))}
    env.update(extra)
    return env


def test_demo_walks_the_whole_loop_and_exits_zero():
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.local", "demo"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    steps = re.findall(r"^\s+OK\s+(\d) ", result.stdout, flags=re.M)
    assert steps == [str(n) for n in range(1, 10)], result.stdout
    assert "All steps passed." in result.stdout
    assert "FAIL" not in result.stdout


def test_serve_prints_urls_and_a_token_that_works(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.local", "serve", "--port", "0", "--sandbox-port", "0"],
        cwd=ROOT,
        env=_env(STATE_SQLITE_PATH=str(tmp_path / "local.sqlite3"), LOG_LEVEL="WARNING"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            banner.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(banner)
        functions_url = re.search(r"Functions\s+(http://\S+)", text).group(1)
        sandbox_url = re.search(r"Sandbox\s+(http://\S+)", text).group(1)
        token = re.search(r"API token\s+(\S+)", text).group(1)
        assert httpx.get(f"{functions_url}/healthz").json()["status"] == "ok"
        assert httpx.post(f"{functions_url}/send", json={"to": "+14155550123", "text": "hi"}).status_code == 401
        sent = httpx.post(
            f"{functions_url}/send",
            json={"to": "+14155550123", "text": "hi"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert sent.status_code == 202, sent.text
        accepted = httpx.get(f"{sandbox_url}/_sandbox/messages").json()
        assert any(m.get("text") == "hi" for m in accepted["messages"])
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0


def test_real_credentials_mean_no_sandbox():
    assert not has_real_credentials({})
    assert has_real_credentials({"VONAGE_API_KEY": "k", "VONAGE_API_SECRET": "s"})
    assert has_real_credentials({"VONAGE_APPLICATION_ID": "a", "VONAGE_PRIVATE_KEY": "p"})
    assert not has_real_credentials({"VONAGE_API_KEY": "k"})
    assert not has_real_credentials({"VONAGE_API_KEY": "k", "VONAGE_API_SECRET": "s", "LOCAL_SANDBOX": "1"})
