"""The record of a failover workflow: per-item statuses, the delivered item, receipts found by workflow id."""

from __future__ import annotations

from shared.messages.records import (
    MESSAGES,
    StatusEvent,
    attach_vonage_ids,
    new_message_record,
    record_status_event,
)

WORKFLOW = "wf-0001-aaaa"


def workflow_record(store):
    items = [{"index": 1, "channel": "whatsapp", "message_type": "template", "status": "pending", "history": []},
             {"index": 2, "channel": "sms", "message_type": "text", "status": "pending", "history": []}]
    store.create(MESSAGES, "msg_1", new_message_record("msg_1", channel="whatsapp", api="messages", to="+447911123456",
                                                       sender="447700900000", extra={"items": items, "workflow_id": None,
                                                                                     "delivered_item": None}))


def status(uuid, value, number, *, at="2026-01-30T12:00:00Z", error=None):
    return StatusEvent(vonage_id=uuid, status=value, timestamp=at, error_code=error, source="messages",
                       extra={"api": "messages", "workflow": {"workflow_id": WORKFLOW, "items_number": str(number),
                                                              "items_total": "2"}})


def test_a_rejected_first_item_is_not_a_failed_message_while_the_next_is_tried(store):
    workflow_record(store)
    attach_vonage_ids(store, "msg_1", [{"vonage_id": "uuid-1"}], workflow_id=WORKFLOW)
    assert record_status_event(store, status("uuid-1", "rejected", 1, error="1300")) == "applied"
    record = store.get(MESSAGES, "msg_1")
    assert record["status"] == "submitted" and record["items"][0]["status"] == "rejected"
    assert record["items"][0]["error"]["code"] == "1300"
    # The second item's status carries a message_uuid never seen: found by the workflow id.
    assert record_status_event(store, status("uuid-2", "delivered", 2, at="2026-01-30T12:00:01Z")) == "applied"
    record = store.get(MESSAGES, "msg_1")
    assert (record["status"], record["delivered_item"]) == ("delivered", 2)
    assert record_status_event(store, status("uuid-2", "delivered", 2, at="2026-01-30T12:00:01Z")) == "duplicate"
    # A late failure of an item does not undo a delivery.
    record_status_event(store, status("uuid-2", "rejected", 2, at="2026-01-30T12:00:02Z", error="1330"))
    assert store.get(MESSAGES, "msg_1")["status"] == "delivered"


def test_a_failover_status_arriving_before_the_send_stored_its_ids_is_parked_then_merged(store):
    workflow_record(store)
    assert record_status_event(store, status("uuid-2", "submitted", 2)) == "parked"
    assert record_status_event(store, status("uuid-1", "rejected", 1, error="1300")) == "parked"
    record = attach_vonage_ids(store, "msg_1", [{"vonage_id": "uuid-1"}], workflow_id=WORKFLOW)
    assert record is not None
    assert [item["status"] for item in record["items"]] == ["rejected", "submitted"]
    assert record["status"] == "submitted" and record["workflow_id"] == WORKFLOW


def test_the_last_item_failing_fails_the_message_with_its_error(store):
    workflow_record(store)
    attach_vonage_ids(store, "msg_1", [{"vonage_id": "uuid-1"}], workflow_id=WORKFLOW)
    record_status_event(store, status("uuid-1", "rejected", 1, error="1300"))
    record_status_event(store, status("uuid-2", "undeliverable", 2, error="1190"))
    record = store.get(MESSAGES, "msg_1")
    assert record["status"] == "undeliverable" and record["error"]["code"] == "1190"
    assert record["delivered_item"] is None
