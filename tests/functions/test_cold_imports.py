"""Cold start guards: what importing main.py and serving one function load (docs/performance.md).

Each check runs in a fresh interpreter and reads ``sys.modules``: counts of modules, never a
time. Importing main.py (what a WSGI host, Lambda or a tool pays) loads no function module, no
web framework and no Google library; a function served by functions-framework loads its own
module only; a consumer still reaches the framework as a CloudEvent function.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.ports import free_port

REPO = Path(__file__).resolve().parents[2]

ENTRY_POINTS = (
    "balance",
    "deliver",
    "inbound",
    "on_inbound",
    "send",
    "status",
    "verify_cancel",
    "verify_check",
    "verify_next",
    "verify_start",
)
# Loaded only when needed: functions-framework (and Flask, cloudevents under it) when it is the
# host, Google's client libraries when the settings choose them, the rest on a request's path.
DEFERRED = ("functions_framework", "cloudevents", "flask", "google", "grpc", "httpx", "phonenumbers", "cryptography")


def _run(code: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FUNCTION_", "FIRESTORE_", "PUBSUB_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# Namespace packages the site's .pth files create at interpreter start, before any import of ours.
_REPORT = (
    "import json, sys\n"
    "NAMESPACES = {{'google', 'google.cloud'}}\n"
    "deferred = sorted(m for m in sys.modules if m.split('.')[0] in {deferred!r} and m not in NAMESPACES)\n"
    "functions = sorted(m for m in sys.modules if m.startswith('functions.'))\n"
    "print(json.dumps({{'deferred': deferred, 'functions': functions, 'extra': extra}}))\n"
)


def test_import_main_loads_no_function_no_framework_and_no_google_library() -> None:
    report = _run(
        "import sys, main\nextra = sorted(m for m in sys.modules if m.startswith('shared'))\n"
        + _REPORT.format(deferred=DEFERRED)
    )
    assert report["deferred"] == []
    assert report["functions"] == []
    assert report["extra"] == []  # not even the shared package: main.py is a table of entry points


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_an_entry_point_imported_from_main_loads_no_framework_and_no_google_library(name: str) -> None:
    report = _run(
        f"import sys\nfrom main import {name}\nextra = [callable({name})]\n" + _REPORT.format(deferred=DEFERRED)
    )
    assert report["deferred"] == [], f"importing {name} loaded {report['deferred']}"
    assert report["functions"] == [f"functions.{name}"]
    assert report["extra"] == [True]


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_functions_framework_serving_one_target_loads_only_that_function(name: str) -> None:
    report = _run(
        "import os, sys, functions_framework\n"
        "before = set(sys.modules)\n"
        f"functions_framework.create_app(target={name!r}, source='main.py')\n"
        "extra = {'signature': os.environ['FUNCTION_SIGNATURE_TYPE'],"
        " 'google': sorted(m for m in set(sys.modules) - before if m.startswith(('google.', 'grpc')))}\n"
        + _REPORT.format(deferred=())
    )
    assert report["functions"] == [f"functions.{name}"]
    assert report["extra"]["google"] == []
    assert report["extra"]["signature"] == ("cloudevent" if name == "on_inbound" else "http")


def test_a_consumer_imported_before_the_framework_is_still_served_as_a_cloud_event() -> None:
    # The decorator only tells a framework that is already loaded; main.py tells it again.
    report = _run(
        "import os, sys, main\n"
        "from functions.on_inbound import on_inbound\n"
        "assert 'functions_framework' not in sys.modules\n"
        "import functions_framework\n"
        "functions_framework.create_app(target='on_inbound', source='main.py')\n"
        "extra = os.environ['FUNCTION_SIGNATURE_TYPE']\n" + _REPORT.format(deferred=())
    )
    assert report["extra"] == "cloudevent"


def _post(port: int, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_the_functions_framework_command_serves_on_inbound_as_a_cloud_event_function(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNCTION_")} | {"PYTHONPATH": str(REPO)}
    with open(tmp_path / "ff.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "functions_framework", "--target", "on_inbound", "--source", str(REPO / "main.py"),
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=log,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, (tmp_path / "ff.log").read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "functions-framework did not start"
                    time.sleep(0.2)
            # An event of a type the consumer does not handle is acknowledged without touching
            # the store: 200 only if the framework handed it over as a CloudEvent.
            other = json.dumps({"specversion": "1.0", "id": "e-1", "source": "/test", "type": "com.example.other"})
            assert _post(port, other.encode(), {"Content-Type": "application/cloudevents+json"}) == 200
            # A plain HTTP request is not a CloudEvent: the framework itself refuses it.
            assert _post(port, b"{}", {"Content-Type": "application/json"}) == 400
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
