"""One contract, every bus: the embedded bus and Pub/Sub (on the real emulator) deliver what was
published, unchanged, in order within a conversation, and refuse what is not an event."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.events.base import INBOUND, OPTOUT, STATUS, EventBus, build_event, conversation_key, topic_suffix
from shared.events.consumer import unwrap
from shared.events.embedded import EmbeddedBus

Received = Callable[[int], list[dict[str, Any]]]


@pytest.fixture(params=["embedded", pytest.param("pubsub", marks=pytest.mark.pubsub)])
def bus_under_test(request: pytest.FixtureRequest) -> Iterator[tuple[EventBus, Received]]:
    if request.param == "embedded":
        bus = EmbeddedBus(backoff=0.01)
        got: list[dict[str, Any]] = []
        lock = threading.Lock()

        def keep(cloud_event: Any) -> None:
            with lock:
                got.append(unwrap(cloud_event))

        bus.subscribe(keep)

        def received(want: int) -> list[dict[str, Any]]:
            deadline = time.monotonic() + 30
            while len(got) < want and time.monotonic() < deadline:
                bus.drain(1)
            return list(got)

        yield bus, received
        bus.close()
        return

    from shared.events.pubsub import PubSubBus

    admin = request.getfixturevalue("pubsub")
    topic = admin.topic("contract-events")
    subscription = admin.subscribe("contract-all", topic, ordered=True)
    bus = PubSubBus(project=admin.project, topic="contract-events")
    pulled: list[dict[str, Any]] = []

    def received(want: int) -> list[dict[str, Any]]:
        for message in admin.pull(subscription, want=want - len(pulled), timeout=60):
            event = json.loads(message.data)
            assert message.attributes["ce-id"] == event["id"] and message.ordering_key == (event.get("conversation") or "")
            pulled.append(event)
        return list(pulled)

    yield bus, received
    bus.close()


def test_published_events_arrive_unchanged(bus_under_test):
    bus, received = bus_under_test
    sent = [
        build_event(INBOUND, key="c-1", data={"id": "m1", "text": "héllo ✓", "media": [{"type": "image"}]}, conversation=conversation_key("+1", "+2")),
        build_event(STATUS, key="c-2", data={"vonage_id": "v1", "status": "delivered"}),
        build_event(OPTOUT, key="c-3", data={"number": "+2", "opted_out": True}, conversation=conversation_key("+1", "+2")),
    ]
    bus.publish(sent)
    got = {event["id"]: event for event in received(3)}
    assert set(got) == {event["id"] for event in sent}
    for event in sent:
        arrived = got[event["id"]]
        assert {k: arrived.get(k) for k in ("type", "source", "subject", "data", "conversation", "specversion")} == {
            k: event.get(k) for k in ("type", "source", "subject", "data", "conversation", "specversion")
        }


def test_one_conversation_keeps_its_order(bus_under_test):
    bus, received = bus_under_test
    conversation = conversation_key("+15550000001", "+15550000002")
    bus.publish(build_event(INBOUND, key=f"o-{n}", data={"seq": n}, conversation=conversation) for n in range(15))
    assert [event["data"]["seq"] for event in received(15)] == list(range(15))


def test_what_is_not_an_event_is_refused_before_the_bus(bus_under_test):
    bus, received = bus_under_test
    good = build_event(INBOUND, key="r-1", data={})
    with pytest.raises(ValueError):
        bus.publish([{**good, "type": "com.example.other.v1"}])
    with pytest.raises(ValueError, match="id"):
        bus.publish([{k: v for k, v in good.items() if k != "id"}])
    bus.publish([good])
    assert [event["id"] for event in received(1)] == [good["id"]]


def test_topics_follow_the_type():
    assert [topic_suffix(t) for t in (INBOUND, STATUS, OPTOUT)] == ["message-inbound", "message-status", "optout"]
