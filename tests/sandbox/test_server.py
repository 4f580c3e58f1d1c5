"""Starting and stopping: loopback only, HTTPS with a generated CA, no thread left behind."""

from __future__ import annotations

import ssl
import threading
import time

import httpx
import pytest

from sandbox import Sandbox, SandboxConfig
from tests.fixtures.sandbox import SANDBOX_API_KEY, SANDBOX_API_SECRET
from tests.sandbox._helpers import BASIC, client, send_sms, sms_message


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_stop_leaves_no_thread_even_with_open_and_held_connections() -> None:
    before = _threads()
    box = Sandbox(SandboxConfig(api_key=SANDBOX_API_KEY, api_secret=SANDBOX_API_SECRET, retry_delays=(0.01,)))
    url = box.start()
    keep_alive = client()  # its connection stays open after the answer (HTTP/1.1 keep-alive)
    assert send_sms(url).status_code == 200
    assert keep_alive.get(f"{url}/_sandbox/health").status_code == 200
    outcome: list[object] = []

    def held_request() -> None:
        try:
            outcome.append(
                httpx.post(
                    f"{url}/v1/messages",
                    json=sms_message(),
                    headers={"Authorization": BASIC, "X-Sandbox-Fault": "timeout=30"},
                    timeout=60,
                    trust_env=False,
                )
            )
        except httpx.HTTPError as exc:
            outcome.append(exc)

    held = threading.Thread(target=held_request)
    held.start()
    deadline = time.monotonic() + 5
    while not box.messages(api="messages") and time.monotonic() < deadline:
        time.sleep(0.01)  # the message is accepted first, then its answer is held
    assert box.messages(api="messages")
    started = time.monotonic()
    box.stop()
    assert time.monotonic() - started < 5
    held.join(5)
    keep_alive.close()
    assert not held.is_alive()
    assert not isinstance(outcome[0], httpx.ConnectError)  # it was in flight, not refused
    assert _threads() - before == set()
    box.stop()  # a second stop is harmless


def test_only_loopback_addresses() -> None:
    with pytest.raises(ValueError):
        Sandbox().start(host="0.0.0.0")


def test_context_manager_starts_and_stops() -> None:
    with Sandbox() as box:
        assert box.is_running and box.url.startswith("http://127.0.0.1:")
    assert not box.is_running
    with pytest.raises(RuntimeError):
        _ = box.url


def test_https_with_the_generated_ca(sandbox_factory) -> None:
    box = sandbox_factory(tls=True)
    assert box.url.startswith("https://127.0.0.1:")
    assert box.ca_file is not None
    with httpx.Client(verify=ssl.create_default_context(cafile=box.ca_file), trust_env=False) as http:
        assert http.get(f"{box.url}/_sandbox/health").json() == {"ok": True}
    with httpx.Client(trust_env=False) as http, pytest.raises(httpx.ConnectError):
        http.get(f"{box.url}/_sandbox/health")  # not trusted without the CA


def test_tls_files_are_removed_on_stop() -> None:
    import os

    box = Sandbox()
    box.start(tls=True)
    ca_file = box.ca_file
    assert ca_file and os.path.exists(ca_file)
    box.stop()
    assert not os.path.exists(ca_file)


def test_sms_over_https(sandbox_factory) -> None:
    box = sandbox_factory(tls=True)
    with httpx.Client(verify=ssl.create_default_context(cafile=box.ca_file), trust_env=False) as http:
        response = http.post(
            f"{box.url}/sms/json",
            data={"from": "ACME", "to": "447700900001", "text": "secure"},
            headers={"Authorization": BASIC},
        )
    assert response.json()["messages"][0]["status"] == "0"


def test_port_in_use_is_reported(sandbox) -> None:
    port = int(sandbox.url.rsplit(":", 1)[1])
    other = Sandbox()
    with pytest.raises(OSError, match="cannot listen"):
        other.start(port=port)
    assert not other.is_running


def test_many_concurrent_sends_are_all_answered(sandbox) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        status = send_sms(sandbox.url).json()["messages"][0]["status"]
        with lock:
            results.append(status)

    workers = [threading.Thread(target=one) for _ in range(10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert sorted(results) == ["0"] * 10
    assert len(sandbox.messages()) == 10
