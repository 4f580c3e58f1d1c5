"""Bulk and scheduled sends through Cloud Tasks (its emulator, started by ./test.sh): the send
function creates the tasks, the emulator dispatches them over HTTP to ``deliver`` served by
functions-framework in its own process, and the sandbox receives each recipient exactly once.
The emulator dedupes no names and deletes no tasks, so these also show that the product does
not need it to: a second enqueue creates nothing, cancel stops the rest, send_at is not early."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures.ports import free_port
from tests.fixtures.send import us_numbers

pytestmark = pytest.mark.cloudtasks

REPO = Path(__file__).resolve().parents[2]
SECRET = "emulator-secret-0123456789"


def _wait_port(port, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("functions-framework exited before it served deliver")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("functions-framework did not start in time")


@pytest.fixture
def tasks_stack(send_stack, tmp_path):
    host = os.environ.get("CLOUD_TASKS_EMULATOR_HOST", "").strip()
    if not host:
        pytest.skip("CLOUD_TASKS_EMULATOR_HOST is not set: Cloud Tasks was NOT tested (run ./test.sh, which starts the emulator)")
    from google.cloud import tasks_v2

    from shared.queue.cloudtasks import CloudTasksQueue

    queue_path = f"projects/p1/locations/l1/queues/q{uuid.uuid4().hex[:10]}"
    port = free_port()
    send_stack.sandbox_config(balance="1000000")
    send_stack.configure(
        QUEUE_BACKEND="cloudtasks",
        CLOUD_TASKS_QUEUE=queue_path,
        CLOUD_TASKS_EMULATOR_HOST=host,
        DELIVER_URL=f"http://127.0.0.1:{port}/",
        DELIVER_SECRET=SECRET,
        # The emulator ignores the queue's rate (deploy.sh sets it on the real queue); the
        # process pacer of the one deliver instance keeps this run under the sandbox's 30/s.
        VONAGE_MAX_RPS="25",
    )
    client = CloudTasksQueue(queue_path, "http://unused", emulator_host=host).client
    client.create_queue(parent=queue_path.rsplit("/queues/", 1)[0], queue=tasks_v2.Queue(name=queue_path))
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOG_LEVEL": "WARNING"}
    log = open(tmp_path / "deliver.log", "ab")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "functions_framework", "--target", "deliver", "--source", str(REPO / "main.py"),
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=log,
    )
    try:
        _wait_port(port, server)
        yield send_stack
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def wait_for(check, timeout=180.0, every=0.3):
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = check()
    return value


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_200_recipients_are_dispatched_to_deliver_and_sent_once(tasks_stack):
    numbers = us_numbers(200)
    body = {"to": numbers, "text": "Sale", "api": "sms"}
    first = tasks_stack.http.post(body, key="tasks-1")
    assert first.status_code == 202
    batch = first.get_json()["batch_id"]
    done = wait_for(lambda: tasks_stack.http.get(f"/{batch}").get_json()["summary"].get("submitted") == 200)
    assert done, tasks_stack.http.get(f"/{batch}").get_json()["summary"]
    counts = Counter(r["fields"]["to"] for r in tasks_stack.vonage_requests(api="sms"))
    assert sorted(counts) == sorted(n[1:] for n in numbers) and max(counts.values()) == 1
    assert sorted(m["to"] for m in tasks_stack.sandbox.messages(api="sms")) == sorted(n[1:] for n in numbers)
    # A second enqueue of the same batch creates nothing, so nothing more is sent.
    again = tasks_stack.http.post(body, key="tasks-1")
    assert again.status_code == 202 and again.get_json()["batch_id"] == batch
    time.sleep(3)
    assert len(tasks_stack.vonage_requests(api="sms")) == 200


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_cancel_stops_the_rest_of_a_batch(tasks_stack):
    tasks_stack.sandbox.set_faults("delay=0.3")  # each send takes a while: there is time to cancel
    numbers = us_numbers(60)
    batch = tasks_stack.http.post({"to": numbers, "text": "Sale", "api": "sms"}).get_json()["batch_id"]
    assert wait_for(lambda: len(tasks_stack.vonage_requests(api="sms")) >= 5, timeout=120)
    cancelled = tasks_stack.http.post(None, path=f"/{batch}", method="DELETE").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["cancelled"] > 0
    settled = wait_for(lambda: tasks_stack.http.get(f"/{batch}").get_json()["summary"].get("queued") == 0, timeout=120)
    assert settled
    # The emulator still dispatches every cancelled task: deliver sends none of them. Only the
    # attempt that was already with Vonage when the cancel came may still land (and be counted).
    previous, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 3 and time.monotonic() - quiet_since < 60:
        sent = len(tasks_stack.vonage_requests(api="sms"))
        if sent != previous:
            previous, quiet_since = sent, time.monotonic()
        time.sleep(0.2)
    summary = tasks_stack.http.get(f"/{batch}").get_json()["summary"]
    assert summary.get("submitted", 0) + summary.get("cancelled", 0) == 60
    assert sent == summary.get("submitted", 0) < 60
    assert summary.get("cancelled", 0) >= 60 - sent


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_a_future_send_at_is_not_sent_early(tasks_stack):
    import datetime as dt

    send_at = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    answer = tasks_stack.http.post({"to": us_numbers(3), "text": "Later", "api": "sms", "send_at": send_at})
    assert answer.status_code == 202 and answer.get_json()["status"] == "scheduled"
    batch = answer.get_json()["batch_id"]
    time.sleep(5)  # the expand task ran; the recipients' tasks wait for their schedule_time
    assert tasks_stack.vonage_requests() == []
    assert tasks_stack.http.get(f"/{batch}").get_json()["status"] == "scheduled"
    cancelled = tasks_stack.http.post(None, path=f"/{batch}", method="DELETE").get_json()
    assert cancelled["summary"].get("cancelled") == 3
