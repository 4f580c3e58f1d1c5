"""Events on the real Pub/Sub emulator: a signed webhook -> topic -> push subscription ->
consumer served by functions-framework -> the reply reaches the sandbox exactly once; redelivery
changes nothing; one conversation's events arrive in order; a consumer that keeps failing ends in
the dead-letter topic; a failed publish loses nothing.

The emulator (scripts/services/pubsub.sh) is started by ./test.sh. One gap of the emulator: a
subscription with BOTH message ordering and a dead-letter policy crashes its push loop
(NullPointerException in OrderedMessageBacklog), so ordering and dead-lettering are tested on two
subscriptions here; deploy.sh sets both on the real service, which supports the combination.
"""

from __future__ import annotations

import functools
import json
import pathlib
import threading
import time
from typing import Any

import pytest

from shared import deps
from shared.config import Settings
from shared.events.base import EVENT_TYPES, INBOUND, PublishError, build_event, conversation_key, topic_suffix
from shared.events.consumer import PROCESSED
from shared.events.outbox import SWEEP_GRACE, flush_marks, sweep
from shared.events.pubsub import PubSubBus
from shared.webhooks.dedupe import EVENTS
from shared.webhooks.inbound import receive_inbound
from tests.fixtures.sandbox import SANDBOX_API_KEY, SANDBOX_API_SECRET, SANDBOX_SIGNATURE_SECRET
from tests.fixtures.webhooks import RecordingSender, serve_wsgi, sms_inbound
from tests.functions.pubsub_consumers import ORDER

pytestmark = [pytest.mark.pubsub, pytest.mark.slow]

REPO = pathlib.Path(__file__).resolve().parents[2]
USER = "+447911123456"
OURS = "447700900000"
PREFIX = "vonage"


class _Fixed:
    """``deps.get_store`` returning the test's store; ``deps.reset`` leaves it open (the fixture owns it)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __call__(self) -> Any:
        return self.store

    def cache_info(self) -> Any:
        return functools._CacheInfo(0, 0, None, 0)

    def cache_clear(self) -> None:
        pass


class CountingApp:
    """A WSGI wrapper that counts requests and, for the first ``lose`` ones, runs the function but
    answers 500 (its acknowledgement lost): Pub/Sub must deliver the event again."""

    def __init__(self, app: Any, *, lose: int = 0) -> None:
        self.app = app
        self.lose = lose
        self.statuses: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._lock:
            losing = len(self.statuses) < self.lose
        seen: list[str] = []

        def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen.append(status)
            if not losing:
                return start_response(status, headers, exc_info)
            return lambda data: None

        body = b"".join(self.app(environ, capture))
        code = 500 if losing else int(seen[0].split()[0])
        with self._lock:
            self.statuses.append(code)
        if losing:
            start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")])
            return [b"acknowledgement lost"]
        return [body]


def _serve(target: str, source: pathlib.Path, monkeypatch: Any, *, lose: int = 0) -> tuple[Any, CountingApp]:
    import functions_framework

    # functions-framework records the signature type in os.environ for the whole process; set it
    # through monkeypatch so later create_app() calls of HTTP functions are not served as events.
    monkeypatch.setenv("FUNCTION_SIGNATURE_TYPE", "cloudevent")

    app = CountingApp(functions_framework.create_app(target=target, source=str(source)), lose=lose)
    return serve_wsgi(app), app


def _wait(condition: Any, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def topics(pubsub):
    """Every event type's topic under PREFIX in the test's project."""
    return {event_type: pubsub.topic(f"{PREFIX}-{topic_suffix(event_type)}") for event_type in EVENT_TYPES}


@pytest.fixture
def bus(pubsub):
    created = PubSubBus(project=pubsub.project, prefix=PREFIX)
    yield created
    created.close()


def test_a_signed_webhook_reaches_the_consumer_through_pubsub_and_the_reply_goes_out_once(
    pubsub, topics, webhook_env, webhook_server, sandbox_factory, store, monkeypatch
):
    consumer_server, consumer_app = _serve("on_inbound", REPO / "main.py", monkeypatch, lose=1)
    try:
        pubsub.subscribe("on-inbound", topics[INBOUND], push_endpoint=consumer_server.url + "/", ordered=True)
        sandbox = sandbox_factory(
            inbound_webhook_url=f"{webhook_server.url}/inbound",
            status_webhook_url=f"{webhook_server.url}/status",
            sms_signing=True,
            signature_method="sha256",
        )
        webhook_env.set(
            VONAGE_API_KEY=SANDBOX_API_KEY,
            VONAGE_API_SECRET=SANDBOX_API_SECRET,
            VONAGE_SIGNATURE_SECRET=SANDBOX_SIGNATURE_SECRET,
            VONAGE_SIGNATURE_METHOD="sha256",
            VONAGE_API_BASE_URL=sandbox.url,
            VONAGE_REST_BASE_URL=sandbox.url,
            INBOUND_HANDLER="examples.echo_bot:handle",
            PUBSUB_TOPIC_PREFIX=PREFIX,  # EVENTS_BACKEND=pubsub and INBOUND_DISPATCH=bus follow
            GOOGLE_CLOUD_PROJECT=pubsub.project,
        )
        monkeypatch.setattr(deps, "get_store", _Fixed(store))
        assert Settings.from_env().inbound_dispatch == "bus"

        sent = sandbox.inject_inbound(USER, OURS, "hello pubsub", duplicate=True)
        assert sandbox.wait_idle(30)
        [message_id] = sent["message_ids"]
        # The webhook answered at once (both copies 200) without running the handler.
        assert all(a["status"] == 200 for d in sandbox.deliveries(kind="sms-inbound") for a in d["attempts"])
        flush_marks(store)  # the mark rides on the next webhook write; write it now if none came yet
        doc = store.get(EVENTS, f"in:sms:{message_id}")
        assert doc["outbox_state"] == "published"
        event_id = doc["outbox"][0]["id"]

        # The first push ran the consumer but its acknowledgement was lost: Pub/Sub redelivered.
        assert _wait(lambda: consumer_app.statuses[:2] == [500, 200] and len(sandbox.inbox(USER)) >= 1)
        assert sandbox.wait_idle(30)
        assert [entry.get("text") for entry in sandbox.inbox(USER)] == ["You said: hello pubsub"]
        assert store.get(PROCESSED, f"on_inbound:{event_id}")["state"] == "done"
        assert store.get("inbound", message_id)["handoff"]["reply_result"]["sent"] is True
    finally:
        consumer_server.server.shutdown()


def test_one_conversations_events_arrive_in_order(pubsub, topics, bus, webhook_env, store, monkeypatch):
    monkeypatch.setattr(deps, "get_store", _Fixed(store))
    server, app = _serve("record_order", REPO / "tests" / "functions" / "pubsub_consumers.py", monkeypatch)
    try:
        pubsub.subscribe("ordered", topics[INBOUND], push_endpoint=server.url + "/", ordered=True)
        conversations = [conversation_key("+447700900000", f"+44791112345{n}") for n in (1, 2)]
        events = [
            build_event(INBOUND, key=f"order-{n}-{seq}", data={"seq": seq}, conversation=conversations[n])
            for seq in range(12)
            for n in (0, 1)
        ]
        bus.publish(events)
        assert _wait(lambda: all(len((store.get(ORDER, c) or {}).get("seqs", [])) >= 12 for c in conversations))
        for conversation in conversations:
            assert store.get(ORDER, conversation)["seqs"] == list(range(12))
    finally:
        server.server.shutdown()


def test_a_consumer_that_keeps_failing_ends_in_the_dead_letter_topic(pubsub, topics, bus, webhook_env, store, monkeypatch):
    monkeypatch.setattr(deps, "get_store", _Fixed(store))
    server, app = _serve("always_fails", REPO / "tests" / "functions" / "pubsub_consumers.py", monkeypatch)
    try:
        dead = pubsub.topic(f"{PREFIX}-dead-letter")
        dead_sub = pubsub.subscribe("dead-letters", dead)
        pubsub.subscribe(
            "failing", topics[INBOUND], push_endpoint=server.url + "/", dead_letter_topic=dead, max_delivery_attempts=5
        )
        event = build_event(INBOUND, key="doomed", data={"id": "doomed"}, conversation="+1:+2")
        bus.publish([event])
        [message] = pubsub.pull(dead_sub, timeout=120)
        assert json.loads(message.data)["id"] == event["id"]
        assert message.attributes["ce-id"] == event["id"]
        assert len(app.statuses) == 5 and set(app.statuses) == {500}
    finally:
        server.server.shutdown()


def test_a_failed_publish_loses_nothing(pubsub, webhook_env, store, store_clock):
    settings = Settings(signature_secret="s" * 32, inbound_handler="examples.echo_bot:handle", google_cloud_project=pubsub.project)
    bus = PubSubBus(project=pubsub.project, prefix=PREFIX, timeout=30)
    try:
        params = sms_inbound("no topic yet", message_id="PUB-1")
        # No topic exists: Pub/Sub refuses, the webhook answers 503 and the event stays in the outbox.
        with pytest.raises(PublishError):
            receive_inbound(params, settings=settings, store=store, send=RecordingSender(), bus=bus, clock=store_clock)
        pending = store.get(EVENTS, "in:sms:PUB-1")
        assert pending["outbox_state"] == "pending"
        topic = pubsub.topic(f"{PREFIX}-{topic_suffix(INBOUND)}")
        subscription = pubsub.subscribe("catch-all", topic)
        # Vonage retries the webhook: the pending event is published (same id), once.
        assert receive_inbound(params, settings=settings, store=store, send=RecordingSender(), bus=bus, clock=store_clock)["result"] == "duplicate"
        [message] = pubsub.pull(subscription)
        assert json.loads(message.data)["id"] == pending["outbox"][0]["id"]
        assert message.ordering_key == conversation_key("+447700900000", "+447700900123")

        # Without a retry, the sweep publishes it.
        pubsub.publisher.delete_topic(topic=topic)
        with pytest.raises(PublishError):
            receive_inbound(sms_inbound("swept", message_id="PUB-2"), settings=settings, store=store,
                            send=RecordingSender(), bus=bus, clock=store_clock)
        topic = pubsub.topic(f"{PREFIX}-{topic_suffix(INBOUND)}")
        subscription = pubsub.subscribe("catch-all-2", topic)
        assert sweep(store, bus, now=store_clock() + SWEEP_GRACE + 1) == 1
        [message] = pubsub.pull(subscription)
        assert json.loads(message.data)["data"]["id"] == "PUB-2"
    finally:
        bus.close()
