"""examples/support_agent.py: customers reach the agent's phone, the agent's answers reach them."""

from __future__ import annotations

from shared.events.base import INBOUND, build_event
from shared.events.consumer import consume_once
from examples.support_agent import SESSIONS, relay
from tests.fixtures.webhooks import RecordingSender

AGENT = "+447700900555"
OURS = "+447700900000"
ALICE = "+447911123456"
BOB = "+447911654321"


def inbound(key: str, sender: str, text: str) -> dict:
    return build_event(INBOUND, key=key, data={"id": key, "from": sender, "to": OURS, "text": text, "channel": "sms"})


def test_customers_reach_the_agent_and_the_agent_answers_the_current_or_a_picked_customer(store):
    send = RecordingSender()
    relay(inbound("m1", ALICE, "my order is late"), agent=AGENT, store=store, send=send)
    relay(inbound("m2", AGENT, "Sorry! It ships today."), agent=AGENT, store=store, send=send)
    relay(inbound("m3", BOB, "hello?"), agent=AGENT, store=store, send=send)
    relay(inbound("m4", AGENT, f"@{ALICE} Tracking: 123"), agent=AGENT, store=store, send=send)
    relay(inbound("m5", AGENT, "Anything else?"), agent=AGENT, store=store, send=send)
    assert [(c["to"], c["text"], c["sender"]) for c in send.calls] == [
        (AGENT, f"[{ALICE}] my order is late", "447700900000"),
        (ALICE, "Sorry! It ships today.", "447700900000"),
        (AGENT, f"[{BOB}] hello?", "447700900000"),
        (ALICE, "Tracking: 123", "447700900000"),
        (ALICE, "Anything else?", "447700900000"),  # @ made Alice current again
    ]
    assert store.get(SESSIONS, AGENT)["customer"] == ALICE


def test_the_agent_without_a_customer_is_told_how_to_pick_one(store):
    send = RecordingSender()
    relay(inbound("m6", AGENT, "hi"), agent=AGENT, store=store, send=send)
    assert [(c["to"], c["text"][:11]) for c in send.calls] == [(AGENT, "No customer")]


def test_a_redelivered_event_relays_once(store):
    send = RecordingSender()
    event = inbound("m7", ALICE, "twice?")

    def run(e: dict) -> None:
        relay(e, agent=AGENT, store=store, send=send)

    assert consume_once(store, "support_relay", event, run, ttl=600) is True
    assert consume_once(store, "support_relay", event, run, ttl=600) is False
    relay(event, agent=AGENT, store=store, send=send)  # even past the consumer's dedupe: one send per key
    assert len(send.sent) == 1 and next(iter(send.sent)) == f"support-relay:{event['id']}"
