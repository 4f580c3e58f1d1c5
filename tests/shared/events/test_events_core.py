"""Events without a server: the CloudEvent shape, the outbox in the webhook's own write,
publish failures that lose nothing, the sweep, consumers that run once, the embedded bus."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from cloudevents.http import from_json

from shared.config import Settings
from shared.errors import StoreError
from shared.events import base as events_base
from shared.events.base import EVENT_TYPES, INBOUND, OPTOUT, STATUS, VERIFY_COMPLETED, EventBus, PublishError, build_event, event_id
from shared.events.builders import batch_completed_event
from shared.events.consumer import PROCESSED, ConsumerBusy, consume_once, unwrap
from shared.events.embedded import EmbeddedBus
from shared.events.outbox import OUTBOX_COLLECTION, SWEEP_GRACE, flush_marks, is_mark_queued, record_and_publish, sweep
from shared.webhooks import inbound as inbound_module
from shared.webhooks.dedupe import EVENTS
from shared.webhooks.inbound import INBOUND as INBOUND_COLLECTION
from shared.webhooks.inbound import receive_inbound
from shared.webhooks.status import receive_status, status_event_key, verify_event_key
from shared.webhooks.formats import parse_status
from tests.fixtures.webhooks import FaultyStore, RecordingSender, messages_inbound, messages_status, sms_inbound, verify_summary
from tests.shared.webhooks import bots

USER = "+447700900123"
OURS = "+447700900000"


class RecordingBus(EventBus):
    """A bus that keeps what it was given; ``fail`` makes the next publishes raise."""

    name = "recording"

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.ordering_keys: list[str] = []
        self.fail = 0

    def _publish(self, envelope: events_base.Envelope) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("bus down")
        self.published.append(envelope.event)
        self.ordering_keys.append(envelope.ordering_key)


@pytest.fixture(autouse=True)
def _clean_bots():
    bots.CALLS.clear()
    inbound_module.load_handler.cache_clear()
    yield
    bots.CALLS.clear()


def settings(**overrides: Any) -> Settings:
    return Settings(signature_secret="s" * 32, inbound_handler="tests.shared.webhooks.bots:echo", **overrides)


# ---- the event itself ---------------------------------------------------------------------


def test_an_event_is_a_valid_cloudevent_with_an_id_stable_per_key_and_type():
    first = build_event(INBOUND, key="in:sms:M-1", data={"from": USER, "text": "hi"}, conversation=f"{OURS}:{USER}")
    again = build_event(INBOUND, key="in:sms:M-1", data={"from": USER, "text": "hi"})
    other_type = build_event(STATUS, key="in:sms:M-1", data={})
    assert first["id"] == again["id"] == event_id(INBOUND, "in:sms:M-1")
    assert other_type["id"] != first["id"]
    body = RecordingBus().envelope(first).body
    parsed = from_json(body)  # the reference library reads our structured JSON
    assert parsed["specversion"] == "1.0" and parsed["type"] == INBOUND and parsed["source"] == "//vonage-functions"
    assert parsed.data == {"from": USER, "text": "hi"} and parsed["conversation"] == f"{OURS}:{USER}"


@pytest.mark.parametrize("field", ["code", "pin", "token", "api_secret"])
def test_an_event_refuses_secret_fields_even_nested(field):
    with pytest.raises(ValueError, match=field):
        build_event(VERIFY_COMPLETED, key="k", data={"outer": {field: "123456"}})


def test_an_unknown_type_is_refused():
    with pytest.raises(ValueError):
        build_event("com.example.other.v1", key="k", data={})


# ---- outbox: recorded with the webhook's outcome, published once ------------------------


def test_an_inbound_message_is_published_once_with_e164_numbers_and_its_conversation(store):
    bus, send = RecordingBus(), RecordingSender()
    params = sms_inbound("hi", message_id="M-1")
    assert receive_inbound(params, settings=settings(), store=store, send=send, bus=bus)["action"] == "handler"
    assert receive_inbound(params, settings=settings(), store=store, send=send, bus=bus)["result"] == "duplicate"
    [event] = bus.published
    assert event["type"] == INBOUND and event["id"] == event_id(INBOUND, "in:sms:M-1")
    assert event["data"]["from"] == USER and event["data"]["to"] == OURS and event["data"]["text"] == "hi"
    assert "raw" not in event["data"] and "handoff" not in event["data"]
    assert bus.ordering_keys == [f"{OURS}:{USER}"]
    doc = store.get(EVENTS, "in:sms:M-1")
    assert doc["state"] == "done" and doc["outbox"][0]["id"] == event["id"]
    # The mark waits for this process's next webhook write (its own copy cannot carry it).
    assert doc["outbox_state"] == "pending" and is_mark_queued(store, EVENTS, "in:sms:M-1")
    assert flush_marks(store) == 1 and store.get(EVENTS, "in:sms:M-1")["outbox_state"] == "published"
    assert len(send.calls) == 1


def test_stop_publishes_the_message_and_an_optout_event(store):
    bus = RecordingBus()
    receive_inbound(sms_inbound("STOP", message_id="M-2"), settings=settings(), store=store, send=RecordingSender(), bus=bus)
    assert [e["type"] for e in bus.published] == [INBOUND, OPTOUT]
    optout = bus.published[1]["data"]
    assert optout["number"] == USER and optout["opted_out"] is True and optout["keyword"] == "STOP"


def test_a_failed_publish_answers_503_keeps_the_event_and_vonages_retry_publishes_it(store):
    bus, send = RecordingBus(), RecordingSender()
    bus.fail = 1
    params = sms_inbound("hi", message_id="M-3")
    with pytest.raises(PublishError) as raised:
        receive_inbound(params, settings=settings(), store=store, send=send, bus=bus)
    assert raised.value.status == 503 and raised.value.code == "events_unavailable"
    pending = store.get(EVENTS, "in:sms:M-3")
    assert pending["state"] == "done" and pending["outbox_state"] == "pending" and len(pending["outbox"]) == 1
    assert store.get(INBOUND_COLLECTION, "M-3")["handoff"]["state"] == "done"
    # Vonage retries the webhook: the pending event goes out, nothing is done twice.
    assert receive_inbound(params, settings=settings(), store=store, send=send, bus=bus)["result"] == "duplicate"
    assert [e["id"] for e in bus.published] == [pending["outbox"][0]["id"]]
    assert is_mark_queued(store, EVENTS, "in:sms:M-3")  # a copy now would not publish it again
    assert receive_inbound(params, settings=settings(), store=store, send=send, bus=bus)["result"] == "duplicate"
    assert [e["id"] for e in bus.published] == [pending["outbox"][0]["id"]]
    flush_marks(store)
    assert store.get(EVENTS, "in:sms:M-3")["outbox_state"] == "published"
    assert len(send.calls) == 1 and len(bots.CALLS) == 1


def test_the_sweep_publishes_what_no_retry_came_for(store, store_clock):
    bus = RecordingBus()
    bus.fail = 1
    with pytest.raises(PublishError):
        receive_inbound(messages_inbound(text="yo", message_uuid="U-1"), settings=settings(), store=store,
                        send=RecordingSender(), bus=bus, clock=store_clock)
    assert sweep(store, bus, now=store_clock()) == 0  # within its grace the webhook's retry owns it
    assert sweep(store, bus, now=store_clock() + SWEEP_GRACE - 1) == 0
    assert sweep(store, bus, now=store_clock() + SWEEP_GRACE + 1) == 1
    assert [e["data"]["id"] for e in bus.published] == ["U-1"]
    assert sweep(store, bus, now=store_clock() + 2 * SWEEP_GRACE) == 0
    assert store.get(EVENTS, "in:messages:U-1")["outbox_state"] == "published"


def test_a_failed_publish_on_the_one_transaction_path_answers_503_and_the_retry_publishes_once(store):
    # No handler, no keyword: record, dedupe and outbox in one transaction (folded dedupe).
    bus = RecordingBus()
    bus.fail = 1
    plain = Settings(signature_secret="s" * 32, inbound_handler=None)
    params = sms_inbound("hi", message_id="F-1")
    with pytest.raises(PublishError):
        receive_inbound(params, settings=plain, store=store, send=RecordingSender(), bus=bus)
    pending = store.get(EVENTS, "in:sms:F-1")
    assert pending["state"] == "done" and pending["outbox_state"] == "pending"
    assert not is_mark_queued(store, EVENTS, "in:sms:F-1")  # nothing went out: nothing to mark
    assert receive_inbound(params, settings=plain, store=store, send=RecordingSender(), bus=bus)["result"] == "duplicate"
    assert receive_inbound(params, settings=plain, store=store, send=RecordingSender(), bus=bus)["result"] == "duplicate"
    assert [e["id"] for e in bus.published] == [pending["outbox"][0]["id"]]  # once


def test_a_queued_mark_rides_on_the_next_webhook_write_of_the_process(store):
    bus = RecordingBus()
    plain = Settings(signature_secret="s" * 32, inbound_handler=None)
    receive_inbound(sms_inbound("one", message_id="R-1"), settings=plain, store=store, bus=bus)
    assert store.get(EVENTS, "in:sms:R-1")["outbox_state"] == "pending" and is_mark_queued(store, EVENTS, "in:sms:R-1")
    receive_status(messages_status("U-R", "delivered"), settings=plain, store=store, bus=bus)  # a parked receipt
    assert store.get(EVENTS, "in:sms:R-1")["outbox_state"] == "published"
    assert not is_mark_queued(store, EVENTS, "in:sms:R-1")
    assert is_mark_queued(store, EVENTS, status_event_key(parse_status(messages_status("U-R", "delivered"))))


def test_a_write_that_fails_gives_its_marks_back(store):
    bus = RecordingBus()
    plain = Settings(signature_secret="s" * 32, inbound_handler=None)
    faulty = FaultyStore(store)
    receive_inbound(sms_inbound("one", message_id="G-1"), settings=plain, store=faulty, bus=bus)
    faulty.fail("update", INBOUND_COLLECTION)
    with pytest.raises(StoreError):
        receive_inbound(sms_inbound("two", message_id="G-2"), settings=plain, store=faulty, bus=bus)
    assert is_mark_queued(faulty, EVENTS, "in:sms:G-1") and store.get(EVENTS, "in:sms:G-2") is None
    receive_inbound(sms_inbound("two", message_id="G-2"), settings=plain, store=faulty, bus=bus)
    assert store.get(EVENTS, "in:sms:G-1")["outbox_state"] == "published"
    assert [e["data"]["id"] for e in bus.published] == ["G-1", "G-2"]


def test_a_mark_that_never_rides_is_republished_once_by_the_sweep(store, store_clock):
    from tests.fixtures.roundtrips import CountingStore

    bus = RecordingBus()
    plain = Settings(signature_secret="s" * 32, inbound_handler=None)
    instance = CountingStore(store)  # an instance that published, queued its mark, then stopped
    receive_inbound(sms_inbound("one", message_id="D-1"), settings=plain, store=instance, bus=bus, clock=store_clock)
    assert is_mark_queued(instance, EVENTS, "in:sms:D-1")
    # Another instance's sweep: within the grace it leaves the document to its own instance...
    assert sweep(store, bus, now=store_clock() + SWEEP_GRACE - 1) == 0
    # ...after it, publishes it again (consumers dedupe by id), once, and marks it.
    assert sweep(store, bus, now=store_clock() + SWEEP_GRACE + 1) == 1
    assert sweep(store, bus, now=store_clock() + 2 * SWEEP_GRACE) == 0
    assert [e["data"]["id"] for e in bus.published] == ["D-1", "D-1"]
    assert store.get(EVENTS, "in:sms:D-1")["outbox_state"] == "published"


def test_the_sweep_writes_its_own_processs_marks_and_never_republishes_them(store, store_clock):
    bus = RecordingBus()
    plain = Settings(signature_secret="s" * 32, inbound_handler=None)
    receive_inbound(sms_inbound("one", message_id="S-1"), settings=plain, store=store, bus=bus, clock=store_clock)
    assert sweep(store, bus, now=store_clock() + 10 * SWEEP_GRACE) == 0
    assert [e["data"]["id"] for e in bus.published] == ["S-1"]
    assert store.get(EVENTS, "in:sms:S-1")["outbox_state"] == "published" and not is_mark_queued(store, EVENTS, "in:sms:S-1")


def test_concurrent_copies_on_the_one_transaction_paths_are_processed_and_published_once(store):
    from shared.messages.records import MESSAGES, attach_vonage_ids, new_message_record
    from tests.fixtures.webhooks import sms_receipt

    bus = RecordingBus()
    plain = Settings(signature_secret="s" * 32, inbound_handler=None)
    store.create(MESSAGES, "msg_c", new_message_record("msg_c", channel="sms", api="sms", to=USER, sender="Acme"))
    attach_vonage_ids(store, "msg_c", [{"vonage_id": "V-C"}])
    copies = 6
    barrier = threading.Barrier(copies)
    results: list[str] = []

    def deliver(kind: str) -> None:
        barrier.wait()
        if kind == "inbound":
            answer = receive_inbound(sms_inbound("hi", message_id="C-1"), settings=plain, store=store, bus=bus)
        else:
            answer = receive_status(sms_receipt("V-C", "delivered"), settings=plain, store=store, bus=bus)
        results.append(answer["result"])

    for kind in ("inbound", "status"):
        results.clear()
        threads = [threading.Thread(target=deliver, args=(kind,)) for _ in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        first = "stored" if kind == "inbound" else "applied"
        assert sorted(results) == sorted([first] + ["duplicate"] * (copies - 1)), (kind, results)
    # One event each (a copy that finds the outbox pending while the first publishes may publish
    # it too: same id, consumers drop it).
    assert sorted({(e["type"], e["id"]) for e in bus.published}) == sorted(
        {(INBOUND, event_id(INBOUND, "in:sms:C-1")), (STATUS, event_id(STATUS, "st:sms:V-C|delivered|0"))})
    history = store.get(MESSAGES, "msg_c")["history"]
    assert [entry["status"] for entry in history].count("delivered") == 1


def test_marks_queued_and_taken_from_many_threads_are_each_written_once():
    from shared.events import outbox

    class Owner:  # a stand-in store object: the queue only keys on it
        pass

    owner: Any = Owner()
    refs = [(EVENTS, f"k{n}") for n in range(400)]
    taken: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(chunk: list[tuple[str, str]]) -> None:
        for collection, key in chunk:
            outbox._queue_mark(owner, collection, key)
            with outbox.MarkRide(owner) as ride:
                with lock:
                    taken.extend((u.collection, u.key) for u in ride.updates)
                ride.landed()

    threads = [threading.Thread(target=work, args=(refs[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(refs)  # each mark rode exactly once
    assert not any(outbox.is_mark_queued(owner, c, k) for c, k in refs)


def test_a_store_failure_before_the_outbox_write_publishes_nothing_and_the_retry_publishes_once(store):
    faulty = FaultyStore(store)
    bus = RecordingBus()
    faulty.fail("update", EVENTS, times=1)  # the finish write (outcome + outbox) fails
    params = sms_inbound("hi", message_id="M-4")
    with pytest.raises(StoreError):
        receive_inbound(params, settings=settings(), store=faulty, send=RecordingSender(), bus=bus)
    assert bus.published == []
    receive_inbound(params, settings=settings(), store=faulty, send=RecordingSender(), bus=bus)
    assert [e["data"]["id"] for e in bus.published] == ["M-4"]


def test_status_and_verify_outcomes_are_published(store):
    bus = RecordingBus()
    fields = messages_status("U-9", "delivered")
    receive_status(fields, settings=settings(), store=store, bus=bus)
    receive_status(fields, settings=settings(), store=store, bus=bus)
    [status] = bus.published
    assert status["type"] == STATUS and status["id"] == event_id(STATUS, status_event_key(parse_status(fields)))
    assert status["data"]["status"] == "delivered" and status["data"]["to"] == USER and status["data"]["result"] == "parked"
    bus.published.clear()
    from shared.verify.records import VerificationRecord  # noqa: F401 - the verify record module exists

    summary = verify_summary("req-1", "completed")
    receive_status(summary, settings=settings(), store=store, bus=bus)
    # An unknown request changes nothing and publishes nothing.
    assert bus.published == [] and store.get(EVENTS, verify_event_key(summary))["state"] == "done"


def test_a_batch_completed_event_is_recorded_once_and_published(store):
    bus = RecordingBus()
    event = batch_completed_event("B-1", {"total": 3, "submitted": 2, "failed": 1})
    assert record_and_publish(store, bus, event, ttl=3600) is True
    assert record_and_publish(store, bus, event, ttl=3600) is False
    assert [e["data"] for e in bus.published] == [{"batch_id": "B-1", "total": 3, "submitted": 2, "failed": 1}]
    assert store.get(OUTBOX_COLLECTION, event["id"])["outbox_state"] == "published"


def test_no_bus_means_no_events_and_no_outbox(store):
    receive_inbound(sms_inbound("hi", message_id="M-5"), settings=settings(), store=store, send=RecordingSender(), bus=None)
    doc = store.get(EVENTS, "in:sms:M-5")
    assert doc["state"] == "done" and "outbox" not in doc


# ---- consumers: once per event id ----------------------------------------------------------


def test_a_consumer_runs_once_per_event_id(store):
    calls: list[str] = []
    event = build_event(INBOUND, key="k1", data={"id": "x"})
    assert consume_once(store, "c", event, lambda e: calls.append(e["id"]), ttl=600) is True
    assert consume_once(store, "c", event, lambda e: calls.append(e["id"]), ttl=600) is False
    assert consume_once(store, "other", event, lambda e: calls.append("other"), ttl=600) is True
    assert calls == [event["id"], "other"]
    assert store.get(PROCESSED, f"c:{event['id']}")["state"] == "done"


def test_a_failing_consumer_releases_its_claim_so_the_redelivery_runs(store):
    event = build_event(INBOUND, key="k2", data={})
    calls: list[int] = []

    def flaky(_: dict) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        consume_once(store, "c", event, flaky, ttl=600)
    assert consume_once(store, "c", event, flaky, ttl=600) is True
    assert len(calls) == 2


def test_a_delivery_running_elsewhere_is_refused_until_its_lease_ends(store, store_clock):
    event = build_event(INBOUND, key="k3", data={})
    store.create(PROCESSED, f"c:{event['id']}", {"state": "processing", "claim": "other", "at": store_clock()}, ttl=600)
    with pytest.raises(ConsumerBusy) as raised:
        consume_once(store, "c", event, lambda e: None, ttl=600, lease=60, clock=store_clock)
    assert raised.value.status == 503
    store_clock.advance(61)
    assert consume_once(store, "c", event, lambda e: None, ttl=600, lease=60, clock=store_clock) is True


def test_unwrap_reads_our_event_inside_a_pubsub_message_published_event():
    import base64

    from cloudevents.http import CloudEvent

    ours = build_event(INBOUND, key="k4", data={"id": "m"})
    body = RecordingBus().envelope(ours).body
    wrapper = CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub.googleapis.com/x"},
        {"message": {"data": base64.b64encode(body).decode(), "attributes": {}, "messageId": "1"}},
    )
    assert unwrap(wrapper)["id"] == ours["id"] and unwrap(wrapper)["data"] == {"id": "m"}


# ---- the embedded bus -------------------------------------------------------------------


def test_the_embedded_bus_retries_a_failing_consumer_without_repeating_the_others():
    bus = EmbeddedBus(backoff=0.01, max_attempts=5)
    good: list[str] = []
    flaky_calls: list[str] = []

    def flaky(event: Any) -> None:
        flaky_calls.append(event["id"])
        if len(flaky_calls) < 3:
            raise RuntimeError("not yet")

    bus.subscribe(lambda e: good.append(e["id"]))
    bus.subscribe(flaky, [INBOUND])
    event = build_event(INBOUND, key="k5", data={})
    bus.publish([event, build_event(STATUS, key="k6", data={})])
    assert bus.drain(30)
    assert len(good) == 2 and flaky_calls == [event["id"]] * 3 and bus.dead_letters == []
    bus.close()


def test_the_embedded_bus_dead_letters_after_the_last_attempt():
    bus = EmbeddedBus(backoff=0.01, max_attempts=3)
    attempts: list[int] = []

    def broken(event: Any) -> None:
        attempts.append(1)
        raise ValueError("always")

    bus.subscribe(broken)
    event = build_event(INBOUND, key="k7", data={})
    bus.publish([event])
    assert bus.drain(30)
    assert len(attempts) == 3
    [dead] = bus.dead_letters
    assert dead.event["id"] == event["id"] and dead.attempts == 3 and dead.error == "ValueError"
    bus.close()


def test_the_embedded_bus_publish_does_not_wait_for_consumers():
    bus = EmbeddedBus()
    release = threading.Event()
    bus.subscribe(lambda e: release.wait(30))
    bus.publish([build_event(INBOUND, key="k8", data={})])  # returns while the consumer blocks
    assert not bus.drain(0.2)
    release.set()
    assert bus.drain(30)
    bus.close()


# ---- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "backend", "dispatch"),
    [
        ({}, "embedded", "inline"),
        ({"PUBSUB_TOPIC": "t"}, "pubsub", "bus"),
        ({"PUBSUB_TOPIC_PREFIX": "vonage"}, "pubsub", "bus"),
        ({"PUBSUB_TOPIC": "t", "EVENTS_BACKEND": "none"}, "none", "inline"),
        ({"EVENTS_BACKEND": "embedded", "INBOUND_DISPATCH": "bus"}, "embedded", "bus"),
    ],
)
def test_the_events_backend_is_chosen_like_the_store(env, backend, dispatch):
    chosen = Settings.from_env(env)
    assert (chosen.events_backend, chosen.inbound_dispatch) == (backend, dispatch)


def test_bad_events_settings_are_named():
    from shared.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"EVENTS_BACKEND": "kafka", "INBOUND_DISPATCH": "later", "EVENTS_CONSUMERS": "nocolon"})
    text = str(raised.value)
    assert "EVENTS_BACKEND" in text and "INBOUND_DISPATCH" in text and "EVENTS_CONSUMERS" in text


def test_emit_batch_completed_never_fails_the_send_path_and_the_sweep_publishes_later(store):
    import time

    from shared.events.emit import emit_batch_completed

    bus = RecordingBus()
    bus.fail = 1
    assert emit_batch_completed("B-2", {"total": 1}, store=store, bus=bus, ttl=3600) is True
    assert bus.published == []
    assert emit_batch_completed("B-2", {"total": 1}, store=store, bus=bus, ttl=3600) is False
    assert sweep(store, bus, now=time.time() + SWEEP_GRACE + 1) == 1
    assert [e["data"]["batch_id"] for e in bus.published] == ["B-2"]
    assert emit_batch_completed("B-3", {"total": 1}, store=store, bus=None) is False


def test_webhook_traffic_sweeps_now_and_then_what_no_retry_came_for(store, monkeypatch):
    import time

    from shared.events import outbox

    bus = RecordingBus()
    bus.fail = 1
    with pytest.raises(PublishError):
        receive_inbound(sms_inbound("lost?", message_id="SW-1"), settings=settings(), store=store,
                        send=RecordingSender(), bus=bus)
    monkeypatch.setattr(outbox, "SWEEP_GRACE", 0.0)
    monkeypatch.setattr(outbox, "_last_sweep", time.monotonic())
    # Within SWEEP_EVERY another webhook does not sweep...
    receive_inbound(sms_inbound("next", message_id="SW-2"), settings=settings(), store=store, send=RecordingSender(), bus=bus)
    assert [e["data"]["id"] for e in bus.published] == ["SW-2"]
    # ...after it, the next webhook publishes the forgotten event too.
    monkeypatch.setattr(outbox, "SWEEP_EVERY", 0.0)
    receive_status(messages_status("U-SW", "delivered"), settings=settings(), store=store, bus=bus)
    assert sorted(e["data"].get("id") or e["data"]["vonage_id"] for e in bus.published) == ["SW-1", "SW-2", "U-SW"]
    assert store.get(EVENTS, "in:sms:SW-1")["outbox_state"] == "published"


def test_an_embedded_consumer_that_cannot_be_loaded_is_named():
    from shared.errors import ConfigError
    from shared.events import open_bus

    with pytest.raises(ConfigError, match="EVENTS_CONSUMERS: 'examples.nothing_here:fn'"):
        open_bus(Settings.from_env({"EVENTS_CONSUMERS": "examples.nothing_here:fn"}))
    bus = open_bus(Settings.from_env({"EVENTS_CONSUMERS": "examples.event_log:log_event", "INBOUND_DISPATCH": "bus"}))
    assert isinstance(bus, EmbeddedBus) and len(bus._consumers) == 2
    bus.close()
    assert open_bus(Settings.from_env({"EVENTS_BACKEND": "none"})) is None


def test_pubsub_without_a_project_or_topic_is_a_config_error():
    from shared.errors import ConfigError
    from shared.events import open_bus

    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        open_bus(Settings.from_env({"PUBSUB_TOPIC": "events"}))
    with pytest.raises(ConfigError, match="PUBSUB_TOPIC"):
        open_bus(Settings.from_env({"EVENTS_BACKEND": "pubsub", "GOOGLE_CLOUD_PROJECT": "p"}))
    bus = open_bus(Settings.from_env({"PUBSUB_TOPIC_PREFIX": "vf", "GOOGLE_CLOUD_PROJECT": "p"}))
    assert bus.name == "pubsub" and bus.topic_for(bus.envelope(build_event(STATUS, key="k", data={}))) == "vf-message-status"


def test_a_low_balance_is_one_event_an_hour_and_carries_no_secret(store):
    from shared.events import BALANCE_LOW
    from shared.events.emit import emit_balance_low

    bus = RecordingBus()
    data = {"balance": "3.5", "threshold": "5.0", "currency": "EUR", "source": "get-balance"}
    hour = 1_800_000_000 // 3600 * 3600
    assert emit_balance_low(data, at=hour + 10, store=store, bus=bus, ttl=3600) is True
    assert emit_balance_low(data, at=hour + 3599, store=store, bus=bus, ttl=3600) is False  # same hour: one page
    assert emit_balance_low(data, at=hour + 3600, store=store, bus=bus, ttl=3600) is True  # the next hour pages again
    assert [e["type"] for e in bus.published] == [BALANCE_LOW, BALANCE_LOW]
    assert bus.published[0]["data"] == data and bus.published[0]["id"] != bus.published[1]["id"]


# ---- built without the library, checked by it --------------------------------------------


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_built_event_is_what_the_reference_library_makes_of_it(event_type):
    from cloudevents.conversion import to_dict
    from cloudevents.http import from_dict

    event = build_event(event_type, key="k-1", data={"n": 1, "nested": {"a": [1, "b"]}}, subject="s",
                        conversation=f"{OURS}:{USER}", at=1767225600.5)
    # The library reads our object and gives back exactly the same attributes and data.
    assert to_dict(from_dict(dict(event))) == event
    assert event["time"] == "2026-01-01T00:00:00.500000Z"
    envelope = RecordingBus().envelope(event)
    assert json.loads(envelope.body) == event and envelope.attributes["ce-id"] == event["id"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": ""}, "needs id"),
        ({"specversion": "0.3"}, "specversion"),
        ({"Bad-Name": "x"}, "attribute name"),
        ({"averyveryverylongattributename": "x"}, "attribute name"),
        ({"subject": 12}, "subject attribute must be a string"),
        ({"ext": {"nested": 1}}, "string, a number or a boolean"),
        ({"type": "com.example.other.v1"}, "unknown event type"),
    ],
)
def test_the_envelope_refuses_an_event_that_breaks_the_spec(change, message):
    event = {**build_event(INBOUND, key="k-2", data={"text": "hi"}), **change}
    with pytest.raises(ValueError, match=message):
        RecordingBus().envelope(event)
