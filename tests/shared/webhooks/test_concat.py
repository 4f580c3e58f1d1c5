"""Long SMS reassembly: any order, duplicates, concurrency, reference reuse, expiry."""

from __future__ import annotations

import threading

from shared.webhooks.concat import PARTS, add_part, concat_key
from shared.webhooks.formats import parse_inbound
from tests.fixtures.webhooks import sms_inbound

TTL = 3600.0


def part(n, text, *, ref="5F", total=3, message_id=None):
    return parse_inbound(sms_inbound(text, concat=(ref, total, n), message_id=message_id or f"ID-{ref}-{total}-{n}"))


def test_parts_out_of_order_with_a_duplicate_assemble_once_complete(store):
    texts = {1: "Hello ", 2: "long ", 3: "world"}
    results = [add_part(store, part(n, texts[n]), ttl=TTL) for n in (3, 1, 1, 2)]
    assert results[:3] == [None, None, None]
    message = results[3]
    assert message.text == "Hello long world"
    assert message.message_id == "ID-5F-3-1"
    assert message.vonage_ids == ("ID-5F-3-1", "ID-5F-3-2", "ID-5F-3-3")
    assert len(message.raw) == 3


def test_a_late_duplicate_after_completion_resolves_to_the_same_message(store):
    for n in (1, 2, 3):
        add_part(store, part(n, str(n)), ttl=TTL)
    again = add_part(store, part(2, "2"), ttl=TTL)
    assert again is not None and again.text == "123"


def test_concurrent_parts_complete_the_document_exactly(sqlite_store):
    events = [part(n, f"<{n}>", total=12, ref="AA") for n in range(1, 13)] * 2
    results = []
    lock = threading.Lock()

    def run(event):
        result = add_part(sqlite_store, event, ttl=TTL)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    doc = sqlite_store.get(PARTS, concat_key(events[0]))
    assert doc["complete"] is True and len(doc["parts"]) == 12
    texts = {result.text for result in results if result is not None}
    assert texts == {"".join(f"<{n}>" for n in range(1, 13))}


def test_a_reused_reference_starts_a_new_message_and_old_duplicates_still_resolve(store):
    for n in (1, 2):
        add_part(store, part(n, f"old{n}", total=2, ref="R"), ttl=TTL)
    assert add_part(store, part(1, "new1", total=2, ref="R", message_id="NEW-1"), ttl=TTL) is None
    old_again = add_part(store, part(2, "old2", total=2, ref="R"), ttl=TTL)
    assert old_again.text == "old1old2"
    new = add_part(store, part(2, "new2", total=2, ref="R", message_id="NEW-2"), ttl=TTL)
    assert new.text == "new1new2" and new.message_id == "NEW-1"


def test_an_incomplete_message_is_kept_as_abandoned_when_its_reference_is_reused(store):
    add_part(store, part(1, "lost", total=2, ref="Q"), ttl=TTL)
    add_part(store, part(1, "fresh", total=2, ref="Q", message_id="FRESH-1"), ttl=TTL)
    doc = store.get(PARTS, concat_key(part(1, "x", total=2, ref="Q")))
    assert doc["parts"]["1"]["vonage_id"] == "FRESH-1"
    assert doc["abandoned"][0]["parts"]["1"]["text"] == "lost"


def test_parts_that_never_complete_expire(store, store_clock):
    add_part(store, part(1, "a", total=2, ref="E"), ttl=60)
    store_clock.advance(61)
    assert store.get(PARTS, concat_key(part(1, "a", total=2, ref="E"))) is None
    # Part 2 alone cannot complete it any more.
    assert add_part(store, part(2, "b", total=2, ref="E"), ttl=60) is None


def test_different_senders_do_not_mix(store):
    a = parse_inbound(sms_inbound("A1", msisdn="447700900001", concat=("1", 2, 1), message_id="A1"))
    b = parse_inbound(sms_inbound("B2", msisdn="447700900002", concat=("1", 2, 2), message_id="B2"))
    assert add_part(store, a, ttl=TTL) is None
    assert add_part(store, b, ttl=TTL) is None


def test_binary_parts_join_their_data(store):
    def binary(n, data):
        return parse_inbound(sms_inbound("", concat=("B", 2, n), message_id=f"BIN-{n}", message_type="binary", data=data, udh="050003CC0201"))

    add_part(store, binary(1, "AB"), ttl=TTL)
    message = add_part(store, binary(2, "CD"), ttl=TTL)
    assert message.message_type == "binary" and message.text is None and message.details["data"] == "ABCD"
