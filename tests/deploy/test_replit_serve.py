""".replit and scripts/serve.sh: the deployment command really serves every function
from one gunicorn process on 0.0.0.0 and the port it is given."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.fixtures.ports import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]
TOKEN = "serve-test-token-0123456789"


@pytest.fixture(scope="module")
def replit() -> dict:
    return tomllib.loads((REPO / ".replit").read_text(encoding="utf-8"))


def test_replit_deploys_on_autoscale_with_the_production_server(replit):
    deployment = replit["deployment"]
    assert deployment["deploymentTarget"] == "autoscale"
    assert deployment["run"] == ["sh", "-c", "exec bash scripts/serve.sh"]
    assert "requirements.txt" in " ".join(deployment["build"])


def test_replit_run_button_starts_the_local_stack(replit):
    assert replit["run"] == "./local.sh"


def test_replit_maps_its_public_port_to_the_port_serve_sh_binds(replit):
    assert replit["ports"] == [{"localPort": 8080, "externalPort": 80}]
    assert 'PORT="${PORT:-8080}"' in (REPO / "scripts" / "serve.sh").read_text(encoding="utf-8")


def test_replit_python_is_new_enough_for_the_code(replit):
    (module,) = [m for m in replit["modules"] if m.startswith("python-")]
    major, minor = (int(x) for x in module.split("-", 1)[1].split(":")[0].split("."))
    assert (major, minor) >= (3, 11)


class _Server:
    def __init__(self, process: subprocess.Popen, port: int, log: pathlib.Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@contextlib.contextmanager
def _serve(tmp: pathlib.Path, replit: dict, **extra: str) -> Iterator[_Server]:
    """The exact [deployment] run command of .replit, with a free port, as Replit runs it."""
    port = free_port()
    log = tmp / "serve.log"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("VONAGE_", "STATE_", "API_TOKENS", "GOOGLE_", "DATABASE_URL", "FIRESTORE_"))}
    env.update(
        PORT=str(port),
        PYTHON=sys.executable,
        API_TOKENS=TOKEN,
        REPLIT_DEPLOYMENT="1",
        XDG_RUNTIME_DIR=str(tmp),
        VONAGE_API_KEY="k",
        VONAGE_API_SECRET="s",
        **extra,
    )
    with open(log, "wb") as out:
        # A session of its own, so the whole gunicorn group is stopped afterwards, and only it.
        process = subprocess.Popen(replit["deployment"]["run"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = _Server(process, port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if server.request("GET", "/healthz")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve.sh did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


@pytest.fixture(scope="module")
def served(tmp_path_factory, replit) -> Iterator[_Server]:
    """The deployment on SQLite (no database configured), with a Google key to write out."""
    tmp = tmp_path_factory.mktemp("serve")
    with _serve(tmp, replit, STATE_BACKEND="sqlite", STATE_SQLITE_PATH=str(tmp / "state.sqlite3"),
                GOOGLE_CREDENTIALS_JSON='{"type": "service_account"}') as server:
        yield server


def test_the_deployment_serves_every_function_over_real_http(served):
    status, body = served.request("GET", "/healthz")
    assert status == 200
    assert body["functions"] == ["/balance", "/deliver", "/inbound", "/send", "/status", "/verify-cancel", "/verify-check", "/verify-next",
                                   "/verify-start"]
    assert served.request("GET", "/readyz") == (200, {"status": "ok", "store": "sqlite"})


def test_the_deployment_answers_as_the_functions_do(served):
    status, body = served.request("POST", "/send", body=b'{"to": "+447911123456", "text": "x"}',
                                  headers={"Content-Type": "application/json"})
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    status, body = served.request("GET", "/send/nope", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = served.request("POST", "/verify-start", body=b"{", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, body["error"]["code"]) == (400, "invalid_json")


def test_gunicorn_listens_on_all_interfaces_with_threads(served):
    text = served.log.read_text(errors="replace")
    assert f"Listening at: http://0.0.0.0:{served.port}" in text
    assert "Using worker: gthread" in text


def test_a_replit_deployment_on_sqlite_is_warned_about(served):
    assert "WARNING" in served.log.read_text(errors="replace") and "STATE_BACKEND=firestore" in served.log.read_text()


def test_the_google_key_is_written_to_a_private_file(served, tmp_path_factory):
    keys = list(pathlib.Path(served.log.parent).glob("vonage-functions-*/google-credentials.json"))
    assert len(keys) == 1
    assert keys[0].read_text() == '{"type": "service_account"}'
    assert oct(keys[0].stat().st_mode & 0o777) == oct(0o600)


@pytest.mark.parametrize("env, message", [({"PORT": "http"}, "PORT"), ({"THREADS": "0"}, "THREADS")])
def test_serve_refuses_a_bad_port_or_thread_count(env, message):
    done = subprocess.run(["bash", str(REPO / "scripts" / "serve.sh")], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr


# ---- PostgreSQL: Replit's own database -----------------------------------------------------


def test_replit_has_the_postgres_client_for_its_database(replit):
    assert [m for m in replit["modules"] if m.startswith("postgresql-")], replit["modules"]


@pytest.mark.parametrize(
    "env, warned",
    [
        ({}, True),
        ({"DATABASE_URL": "postgresql://app:pw@db.example/app"}, False),
        ({"DATABASE_URL": "postgresql://app:pw@db.example/app", "STATE_BACKEND": "sqlite"}, True),
        ({"STATE_BACKEND": "postgres", "DATABASE_URL": "postgresql://app:pw@db.example/app"}, False),
        ({"STATE_BACKEND": "firestore"}, False),
        ({"FIRESTORE_EMULATOR_HOST": "127.0.0.1:8681"}, False),
        ({"DATABASE_URL": "  "}, True),
    ],
)
def test_the_sqlite_warning_stays_only_without_postgres_or_firestore(env, warned):
    base = {key: value for key, value in os.environ.items() if not key.startswith(("STATE_", "DATABASE_URL", "FIRESTORE_"))}
    # PYTHON=true: serve.sh decides and warns, then execs `true` instead of gunicorn.
    done = subprocess.run(["bash", str(REPO / "scripts" / "serve.sh")],
                          env={**base, "REPLIT_DEPLOYMENT": "1", "PYTHON": "true", **env},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert ("WARNING" in done.stderr) is warned, done.stderr
    assert "pw@" not in done.stderr


@pytest.mark.postgres
def test_a_replit_deployment_with_a_database_keeps_its_state_in_postgres(tmp_path, replit, postgres_store):
    from tests.fixtures.store import postgres_test_url

    with _serve(tmp_path, replit, DATABASE_URL=postgres_test_url()) as server:
        assert server.request("GET", "/readyz") == (200, {"status": "ok", "store": "postgres"})
        log = server.log.read_text(errors="replace")
    assert "WARNING" not in log
    assert "DATABASE_URL is set" in log  # the choice and its reason, logged once


def test_serve_on_a_busy_port_names_the_setting_to_change():
    import socket

    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = subprocess.run(["bash", str(REPO / "scripts" / "serve.sh")], env={**os.environ, "PORT": str(port)},
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"port {port} (PORT) is already in use" in done.stderr and f"PORT={port + 1}" in done.stderr
