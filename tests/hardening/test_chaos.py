"""Chaos: the whole loop at scale through every fault the sandbox and the store can inject.

One run (issue 9, full volume): 2,000 messages sent through ``POST /send`` (bulk lists and single sends,
SMS API and Messages API, one- and multi-part SMS), their receipts delivered with 30 %
duplicates and reordering, 10 % throttled answers from Vonage and 5 % of store calls failing, plus
1,000 inbound messages (a quarter multipart, out of order; a third duplicated) answered by the
echo bot. Callers do what a good client does: retry a 5xx or a 409 with the same
Idempotency-Key. Afterwards:

- every message a caller was told was sent is stored, ``delivered`` with one delivered event
  per part and a history without a duplicate event, and Vonage got it exactly once;
- every inbound message is stored exactly once and complete (parts reassembled), handed off;
- every inbound message got exactly one reply;
- no webhook was given up by Vonage's retries (every one ended 2xx).

The default run sends a quarter of that volume (500 messages, 250 inbound): every fault
threshold below still holds with a wide margin. ``HARDENING_PROFILE=long`` runs five times the
full volume.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.fixtures.hardening import (
    HARDENING_API_KEY,
    HARDENING_API_SECRET,
    HARDENING_API_TOKEN,
    HARDENING_SIGNATURE_SECRET,
    hardening_profile,
)
from tests.hardening.faults import RandomFaultStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# A quarter of the issue-9 volume by default (every fault threshold below still holds with a wide
# margin); the long profile runs five times the full volume.
SCALE = 5.0 if hardening_profile() == "long" else 0.25
SENDS = int(2000 * SCALE)
INBOUND = int(1000 * SCALE)
BATCH = 25  # recipients per bulk send
SINGLES = SENDS // 10  # the rest go in bulk lists
OUR_NUMBER = "447700900000"
APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
# Vonage retries a webhook for 24 h; these short delays add up to ~40 s, longer than any lease
# or in-progress hold below, so a webhook that keeps meeting store failures still gets through.
RETRY_DELAYS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 6.0, 6.0)
CLIENT_THREADS = 8


def _number(index: int) -> str:
    """Distinct valid numbers: +1 415 555 0000..9999 (libphonenumber accepts these)."""
    return f"+1415{index // 10000 + 555:03d}{index % 10000:04d}"


def _send_text(index: int, api: str) -> str:
    # Every fifth SMS API message is long: two parts, two receipts to aggregate.
    if api == "sms" and index % 5 == 0:
        return f"chaos-out-{index} " + "long message body " * 12
    return f"chaos-out-{index} hello"


def _inbound_text(index: int) -> str:
    if index % 4 == 0:  # a quarter arrive as several parts
        return f"chaos-in-{index} " + "part of a long inbound message " * 6
    return f"chaos-in-{index} hi"


class _Caller:
    """A well-behaved client: retries 5xx and 409 with the same Idempotency-Key until it is told."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.local = threading.local()
        self.told: dict[str, str] = {}  # number -> message id we were told was sent
        self.lock = threading.Lock()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.attempts: list[int] = []  # requests each job needed

    def _http(self) -> httpx.Client:
        client = getattr(self.local, "client", None)
        if client is None:
            client = httpx.Client(base_url=self.base_url, timeout=60.0, trust_env=False)
            self.local.client = client
        return client

    def send(self, body: dict[str, Any]) -> None:
        key = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {HARDENING_API_TOKEN}", "Idempotency-Key": key}
        numbers = body["to"] if isinstance(body["to"], list) else [body["to"]]
        last = ""
        got: dict[str, str] = {}
        for _attempt in range(200):
            response = self._http().post("/send", json=body, headers=headers)
            last = f"{response.status_code} {response.text[:3000]}"
            with self.lock:
                self.statuses[response.status_code] += 1
            if response.status_code in (409, 503):
                time.sleep(min(float(response.headers.get("Retry-After", "0.2")), 0.5) / 4)
                continue
            assert response.status_code == 202, f"unexpected answer {response.status_code}: {response.text}"
            data = response.json()
            results = data["results"] if "results" in data else [data]
            if "results" in data:
                sent = {numbers[r["index"]]: r.get("id") for r in results if r.get("status") == "submitted"}
            else:
                sent = {numbers[0]: data["id"]} if data.get("status") == "submitted" else {}
            with self.lock:
                self.told.update(sent)
            # A recipient told "submitted" once is done: a later attempt may find its replay
            # failing on the store (503-style, for that entry) without undoing the send.
            changed = {n: (got[n], i) for n, i in sent.items() if n in got and got[n] != i}
            assert changed == {}, f"a replay answered another message id: {changed}"
            got.update(sent)
            if len(got) == len(numbers):
                with self.lock:
                    self.attempts.append(_attempt + 1)
                return
            time.sleep(0.05)  # some recipients met a store failure: the same request again
        raise AssertionError(f"a send never completed after 200 attempts: {numbers[:3]}...; last answer: {last}")


@pytest.fixture
def chaos(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, sandbox_factory: Any, rsa_private_pem: str) -> Any:
    """The one-process app over HTTP on a store failing 5 % of calls, and a faulty sandbox."""
    from werkzeug.serving import make_server

    import app as one_process_app
    import functions.inbound
    import functions.send
    import functions.status
    from shared import deps
    from shared.store.sqlite import SQLiteStateStore
    from shared.webhooks import inbound as inbound_core
    from tests.fixtures.hardening import _STACK_ENV_PREFIXES, _reset_singletons

    inner = SQLiteStateStore(str(tmp_path / "chaos.sqlite3"))
    store = RandomFaultStore(inner, rate=0.0, seed=9)
    for module in (functions.send, functions.status, functions.inbound):
        monkeypatch.setattr(module, "get_store", lambda: store)
    # Test timings for the hand-off lease: an attempt whose claim could not be released blocks
    # the message for this long (60 s in production, where Vonage retries for 24 h).
    monkeypatch.setattr(inbound_core, "HANDOFF_LEASE", 2.0)
    monkeypatch.setattr(inbound_core, "HANDOFF_WAIT", 0.3)

    server = make_server("127.0.0.1", 0, one_process_app.create_app(), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    def vonage(seed: int, **extra: Any) -> Any:
        return sandbox_factory(
            api_key=HARDENING_API_KEY,
            api_secret=HARDENING_API_SECRET,
            signature_secret=HARDENING_SIGNATURE_SECRET,
            signature_method="sha256",
            sms_signing=True,
            application_id=APPLICATION_ID,
            private_key=rsa_private_pem,
            rate_limit=None,
            balance="1000000",
            retry_delays=RETRY_DELAYS,
            webhook_timeout=10.0,
            seed=seed,
            **extra,
        )

    # One Vonage account, served by three sandboxes so their webhook workers run side by side
    # (Vonage delivers many webhooks at once): the SMS API with its receipts, the Messages API
    # with its statuses (replies go this way too), and the phones that send the inbound messages.
    sms_api = vonage(11, status_webhook_url=f"{url}/status")
    messages_api = vonage(12, status_webhook_url=f"{url}/status")
    phones = vonage(13, inbound_webhook_url=f"{url}/inbound")
    for name in list(os.environ):
        if name.startswith(_STACK_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    env = {
        "VONAGE_API_KEY": HARDENING_API_KEY,
        "VONAGE_API_SECRET": HARDENING_API_SECRET,
        "VONAGE_SIGNATURE_SECRET": HARDENING_SIGNATURE_SECRET,
        "VONAGE_SIGNATURE_METHOD": "sha256",
        "VONAGE_APPLICATION_ID": APPLICATION_ID,
        "VONAGE_PRIVATE_KEY": rsa_private_pem,
        "VONAGE_API_BASE_URL": messages_api.url,
        "VONAGE_REST_BASE_URL": sms_api.url,
        "VONAGE_BRAND_NUMBER": OUR_NUMBER,
        "VONAGE_MAX_RETRIES": "3",
        "VONAGE_MAX_RPS": "5000",
        "IDEMPOTENCY_IN_PROGRESS_SECONDS": "2",
        "API_TOKENS": HARDENING_API_TOKEN,
        "INBOUND_HANDLER": "examples.echo_bot:handle",
        "STATE_BACKEND": "sqlite",
        "STATE_SQLITE_PATH": str(tmp_path / "unused.sqlite3"),
        "QUEUE_BACKEND": "none",  # the chaos run checks synchronous bulk answers
        # ~50,000 INFO lines would be formatted three times (stdout, pytest, the leak scanner):
        # the time goes to the run instead. Warnings and errors are still written and scanned.
        "LOG_LEVEL": "WARNING",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _reset_singletons()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield url, (sms_api, messages_api), phones, store, inner
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        deps.reset()
        inner.close()


def test_chaos_every_message_ends_right_and_nothing_told_is_lost(chaos: Any) -> None:
    url, vonage, phones, store, inner = chaos
    from sandbox import FaultRule

    # GIVEN Vonage throttling 10 % of sends, duplicating 30 % of the receipts and
    # reordering half of them, and a store refusing 5 % of calls
    for sandbox in vonage:
        sandbox.set_faults(
            # Throttling, not 5xx: a 5xx is an unknown outcome the client never retries (the send
            # may have happened), so it cannot end in "every caller told 202"; throttling certainly
            # did not send and is retried.
            FaultRule("throttle", rate=0.10, api="sms"),
            FaultRule("throttle", rate=0.10, api="messages"),
            FaultRule("duplicate", rate=0.30, api="sms"),
            FaultRule("duplicate", rate=0.30, api="messages"),
            FaultRule("reorder", rate=0.50, api="messages"),
            seed=5,
        )
    store.rate = 0.05
    started = time.monotonic()

    # WHEN callers send 2,000 messages (bulk and single, both APIs) while 1,000 inbound arrive
    caller = _Caller(url)
    jobs: list[dict[str, Any]] = []
    bulk_numbers = list(range(SINGLES, SENDS))
    for batch_index, start in enumerate(range(0, len(bulk_numbers), BATCH)):
        indexes = bulk_numbers[start : start + BATCH]
        api = "sms" if batch_index % 2 == 0 else "messages"
        # One text per list (a bulk send has one text): long on some SMS API lists.
        jobs.append({"to": [_number(i) for i in indexes], "text": _send_text(indexes[0], api), "api": api})
    for index in range(SINGLES):
        api = "sms" if index % 2 == 0 else "messages"
        jobs.append({"to": _number(index), "text": _send_text(index, api), "api": api})

    inbound_senders = {}
    duplicated = 0
    for index in range(INBOUND):
        sender = _number(5000 + index) if SCALE <= 1 else _number(60000 + index)
        inbound_senders[sender] = _inbound_text(index)
        duplicate = index % 3 == 0
        duplicated += duplicate
        parts = 2 + index % 3 if index % 4 == 0 else None
        phones.inject_inbound(sender, OUR_NUMBER, _inbound_text(index), parts=parts, shuffle=parts is not None,
                              duplicate=duplicate)

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(caller.send, jobs))
    sent_at = time.monotonic()
    assert all(box.wait_idle(timeout=600) for box in (phones, *vonage)), "webhooks were still being delivered after 10 minutes"
    settled_at = time.monotonic()
    store.rate = 0.0

    # THEN every send the callers were told about is stored, delivered, with a clean history
    numbers = [_number(i) for i in range(SENDS)]
    assert set(caller.told) == set(numbers), "every caller eventually got a 202"
    sent_by_vonage = [m for box in vonage for m in box.messages()]
    vonage_messages = [m for m in sent_by_vonage if "+" + m["to"] in set(numbers)]
    by_number = collections.Counter("+" + m["to"] for m in vonage_messages)
    assert [n for n, count in by_number.items() if count != 1] == [], "a message reached Vonage twice"
    assert len(by_number) == SENDS
    accepted_ids = {"+" + m["to"]: m.get("message_ids") or [m["id"]] for m in vonage_messages}
    problems: list[str] = []
    for number, message_id in caller.told.items():
        record = inner.get("messages", message_id)
        if record is None:
            problems.append(f"{message_id}: missing")
            continue
        problems.extend(_record_problems(record, accepted_ids[number]))
    kinds_of_problem = collections.Counter(p.split(": ", 1)[1].split(" ")[0:3].__str__() for p in problems)
    assert problems[:20] == [], f"{len(problems)} message records are wrong: {dict(kinds_of_problem)}"

    # every inbound message is stored once, complete, handed off, and answered exactly once
    records = inner.query("inbound", limit=INBOUND * 3)
    by_sender = collections.defaultdict(list)
    for record in records:
        by_sender[record["from"]].append(record)
    assert len(records) == INBOUND
    wrong = [s for s, text in inbound_senders.items()
             if len(by_sender[s]) != 1 or by_sender[s][0]["text"] != text or by_sender[s][0]["handoff"].get("state") != "done"]
    assert wrong[:10] == [], f"{len(wrong)} inbound messages are missing, doubled, incomplete or not handed off"
    replies = collections.Counter("+" + m["to"] for m in sent_by_vonage if "+" + m["to"] in inbound_senders)
    unanswered = {s: (replies[s], (by_sender[s][0].get("handoff") or {}).get("reply_result")) for s in inbound_senders if replies[s] != 1}
    assert unanswered == {}, "every inbound message gets exactly one reply"
    reply_texts = {"+" + m["to"]: m.get("text") or (m.get("fields") or {}).get("text") for m in sent_by_vonage
                   if "+" + m["to"] in inbound_senders}
    assert all(str(reply_texts[s]).startswith("You said: chaos-in-") for s in inbound_senders)

    # and no webhook was given up: every delivery ended with a 2xx from our functions
    deliveries = [d for box in (phones, *vonage) for d in box.deliveries()]
    ended = collections.Counter(d["state"] for d in deliveries)
    assert set(ended) == {"delivered"}, f"webhook outcomes: {dict(ended)}"
    retried = sum(1 for d in deliveries if len(d["attempts"]) > 1)
    kinds = collections.Counter(d["kind"] for d in deliveries)

    # the faults really happened (the run proves something)
    assert store.failures > 100 and retried > 100 and caller.statuses[503] > 10
    assert sum(1 for d in deliveries if d["duplicate_of"]) > SENDS * 0.2
    print(
        f"\nchaos: {SENDS} sends, {INBOUND} inbound ({duplicated} duplicated) | send phase {sent_at - started:.1f} s, "
        f"settled after {settled_at - started:.1f} s | store calls {store.calls}, failed {store.failures} | "
        f"caller answers {dict(caller.statuses)}, attempts per job max {max(caller.attempts)} "
        f"p99 {sorted(caller.attempts)[int(len(caller.attempts) * 0.99)]} | webhooks {dict(kinds)}, retried {retried}"
    )


def _record_problems(record: dict[str, Any], vonage_ids: list[str]) -> list[str]:
    """What is wrong with a message record that should be delivered (empty when nothing)."""
    found = []
    message_id = record["id"]
    if record["status"] != "delivered":
        found.append(f"{message_id}: status {record['status']}")
    if sorted(record.get("vonage_ids") or []) != sorted(vonage_ids):
        found.append(f"{message_id}: vonage ids {record.get('vonage_ids')} != {vonage_ids}")
    parts = record.get("parts") or []
    if sorted(p.get("status") for p in parts) != ["delivered"] * len(vonage_ids):
        found.append(f"{message_id}: parts {[p.get('status') for p in parts]}")
    history = record.get("history") or []
    keys = [entry["event_key"] for entry in history if entry.get("event_key")]
    if len(keys) != len(set(keys)):
        found.append(f"{message_id}: a duplicate event in the history")
    events = [(entry.get("vonage_id"), entry["status"]) for entry in history if entry.get("event_key")]
    if len(events) != len(set(events)):
        found.append(f"{message_id}: the same status of the same part twice in the history")
    delivered = collections.Counter(entry.get("vonage_id") for entry in history if entry["status"] == "delivered")
    if sorted(delivered) != sorted(vonage_ids) or set(delivered.values()) != {1}:
        found.append(f"{message_id}: delivered events {dict(delivered)}")
    if [entry["status"] for entry in history[:1]] != ["pending"] or sum(e["status"] == "pending" for e in history) != 1:
        found.append(f"{message_id}: history does not start with one pending")
    return found


