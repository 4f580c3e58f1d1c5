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


# ---- the newcomer's edges --------------------------------------------------------------------


def _banner(process: subprocess.Popen) -> str:
    banner = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        banner.append(line)
        if "Ctrl-C stops everything" in line:
            break
    return "".join(banner)


def _serve(tmp_path: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.local", "serve", "--port", "0", "--sandbox-port", "0"],
        cwd=ROOT,
        env=_env(STATE_SQLITE_PATH=str(tmp_path / "local.sqlite3"), LOG_LEVEL="WARNING", **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def test_the_token_is_kept_in_a_file_and_the_paste_block_exports_it(tmp_path):
    tokens = []
    for _run in range(2):
        process = _serve(tmp_path)
        try:
            text = _banner(process)
        finally:
            _stop(process)
        tokens.append(re.search(r"API token\s+(\S+)", text).group(1))
        paste = text.split("Try (paste into a shell):", 1)[1].strip().splitlines()
        assert paste[0].strip() == f"export TOKEN={tokens[-1]}"
        assert tokens[-1] not in "\n".join(paste[1:])  # the commands use $TOKEN
        assert '"Authorization: Bearer $TOKEN"' in paste[1]
    token_file = tmp_path / "local-token"
    assert tokens[0] == tokens[1] == token_file.read_text().strip()  # created once, reused
    assert token_file.stat().st_mode & 0o077 == 0


def test_the_stop_example_does_not_opt_out_the_number_the_first_example_sends_to(tmp_path):
    process = _serve(tmp_path)
    try:
        text = _banner(process)
    finally:
        _stop(process)
    paste = text.split("Try (paste into a shell):", 1)[1]
    send_to = re.search(r'"to": "([^"]+)"', paste).group(1)
    stop_from = re.search(r'"from": "(\d+)"[^\n]*"text": "STOP"', paste).group(1)
    assert re.sub(r"\D", "", send_to) != stop_from


def test_reset_says_what_it_removes_then_wipes_the_local_state(tmp_path):
    from sandbox.local import reset_local_state

    store = tmp_path / "local.sqlite3"
    for suffix in ("", "-wal"):
        Path(str(store) + suffix).write_text("state")
    (tmp_path / "local-token").write_text("local-keepme\n")
    said: list[str] = []
    removed = reset_local_state(environ={"STATE_SQLITE_PATH": str(store)}, say=said.append)
    assert str(store) in removed and str(store) + "-wal" in removed
    assert not store.exists() and not Path(str(store) + "-wal").exists()
    text = "\n".join(said)
    assert "opt-out" in text and str(store) in text and "kept" in text
    assert text.index(str(store)) < text.index("Done")  # said before it was done
    assert (tmp_path / "local-token").read_text() == "local-keepme\n"


def test_reset_through_the_command_line_and_local_sh_usage(tmp_path):
    store = tmp_path / "local.sqlite3"
    store.write_text("state")
    result = subprocess.run([sys.executable, "-m", "sandbox.local", "reset"], cwd=ROOT,
                            env=_env(STATE_SQLITE_PATH=str(store)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "removes the local state" in result.stdout and not store.exists()
    assert "./local.sh reset" in (ROOT / "local.sh").read_text()


def test_a_busy_port_names_the_setting_to_change(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sandbox.local", "serve", "--port", str(port), "--sandbox-port", "0"],
            cwd=ROOT, env=_env(STATE_SQLITE_PATH=str(tmp_path / "local.sqlite3")),
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert f"port {port} (PORT) is already in use" in result.stderr
    assert f"PORT={port + 1} ./local.sh" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_wait_idle_waits_for_the_bots_reply_sent_from_the_event_bus(tmp_path):
    """The README's paste block lists the inbound message after /_sandbox/wait_idle and shows the
    reply: the bot answers from the event bus after the webhook is answered, so wait_idle must
    wait for the bus too (a bot slower than the webhook made that listing race the reply)."""
    from tests.fixtures.local_run import local_run

    with local_run(tmp_path, INBOUND_HANDLER="tests.fixtures.slow_bot:handle") as run:
        injected = httpx.post(
            f"{run.sandbox_url}/_sandbox/inbound", json={"from": "14155550124", "to": "14155550100", "text": "hi"}
        )
        assert injected.status_code == 200, injected.text
        idle = httpx.post(f"{run.sandbox_url}/_sandbox/wait_idle", params={"timeout": "30"}, timeout=40).json()
        listed = httpx.get(
            f"{run.functions_url}/inbound",
            params={"number": "14155550124"},
            headers={"Authorization": f"Bearer {run.token}"},
        ).json()
    assert idle == {"idle": True}
    (message,) = listed["messages"]
    assert message["handoff"]["reply_result"]["sent"] is True  # listed DELAY s too early without the wait
