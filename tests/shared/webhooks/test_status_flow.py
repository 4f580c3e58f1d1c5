"""Status webhooks without HTTP: per-event dedupe, monotonic statuses, parts, early receipts, Verify."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.errors import BadRequestError, StoreError, ValidationError
from shared.messages.records import MESSAGES, attach_vonage_ids, new_message_record
from shared.verify.records import VerificationRecord, load_record, save_record, store_clock
from shared.webhooks.dedupe import EVENTS
from shared.webhooks.status import receive_status
from tests.fixtures.webhooks import FaultyStore, messages_status, sms_inbound, sms_receipt, verify_event, verify_summary

SETTINGS = Settings(signature_secret="s" * 32)


def sent_message(store, message_id, vonage_ids, *, api="sms", channel="sms"):
    store.create(MESSAGES, message_id, new_message_record(message_id, channel=channel, api=api, to="+447700900123", sender="Acme"))
    attach_vonage_ids(store, message_id, [{"vonage_id": vid} for vid in vonage_ids])


def receive(store, fields):
    return receive_status(fields, settings=SETTINGS, store=store)


def statuses(record):
    return [entry["status"] for entry in record["history"]]


def test_sms_receipts_out_of_order_and_duplicated_end_delivered_with_a_clean_history(store):
    sent_message(store, "msg_1", ["V1"])
    delivered = sms_receipt("V1", "delivered", timestamp="2026-01-30 12:00:09")
    accepted = sms_receipt("V1", "accepted", timestamp="2026-01-30 12:00:02")
    results = [receive(store, fields)["result"] for fields in (delivered, accepted, delivered, accepted)]
    assert results == ["applied", "applied", "duplicate", "duplicate"]
    record = store.get(MESSAGES, "msg_1")
    assert record["status"] == "delivered"
    assert statuses(record) == ["pending", "submitted", "delivered", "accepted"]  # arrival order, once each
    assert record["history"][2]["at"] == "2026-01-30 12:00:09"  # Vonage's time kept
    assert record["price"] == "0.03330000"


def test_a_retried_receipt_with_fresh_times_is_still_a_duplicate(store):
    sent_message(store, "msg_r", ["VR"])
    assert receive(store, sms_receipt("VR", "delivered", timestamp="2026-01-30 12:00:05", scts="2601301200"))["result"] == "applied"
    retry = sms_receipt("VR", "delivered", timestamp="2026-01-30 12:01:10", scts="2601301201")
    assert receive(store, retry)["result"] == "duplicate"
    assert statuses(store.get(MESSAGES, "msg_r")).count("delivered") == 1


def test_a_late_submitted_never_overwrites_a_final_failure(store):
    sent_message(store, "msg_2", ["U2"], api="messages", channel="whatsapp")
    receive(store, messages_status("U2", "rejected", error_code="1160", timestamp="2026-01-30T12:00:09Z"))
    receive(store, messages_status("U2", "submitted", timestamp="2026-01-30T12:00:01Z"))
    receive(store, messages_status("U2", "delivered", timestamp="2026-01-30T12:00:10Z"))
    record = store.get(MESSAGES, "msg_2")
    assert record["status"] == "rejected"
    assert record["error"]["code"] == "1160" and record["error"]["text"].startswith("Non-whitelisted")


def test_read_after_delivered_is_progress_and_nothing_goes_back(store):
    sent_message(store, "msg_3", ["U3"], api="messages", channel="whatsapp")
    for status, second in (("read", 9), ("delivered", 5), ("submitted", 1)):
        receive(store, messages_status("U3", status, timestamp=f"2026-01-30T12:00:0{second}Z"))
    record = store.get(MESSAGES, "msg_3")
    assert record["status"] == "read"
    assert record["currency"] == "EUR"


def test_several_statuses_of_one_message_are_all_recorded(store):
    sent_message(store, "msg_4", ["U4"], api="messages", channel="viber")
    for status, second in (("submitted", 1), ("delivered", 5), ("read", 9)):
        assert receive(store, messages_status("U4", status, timestamp=f"2026-01-30T12:00:0{second}Z"))["result"] == "applied"
    assert statuses(store.get(MESSAGES, "msg_4"))[-3:] == ["submitted", "delivered", "read"]


def test_multipart_status_is_the_aggregate_and_names_the_failed_part(store):
    sent_message(store, "msg_5", ["P1", "P2", "P3"])
    receive(store, sms_receipt("P1", "delivered"))
    receive(store, sms_receipt("P3", "delivered"))
    assert store.get(MESSAGES, "msg_5")["status"] == "submitted"
    receive(store, sms_receipt("P2", "delivered"))
    record = store.get(MESSAGES, "msg_5")
    assert record["status"] == "delivered" and record["price"] == "0.09990000"

    sent_message(store, "msg_6", ["Q1", "Q2"])
    receive(store, sms_receipt("Q1", "delivered"))
    receive(store, sms_receipt("Q2", "failed", err_code="4"))
    record = store.get(MESSAGES, "msg_6")
    assert record["status"] == "failed" and record["failed_part"] == 2
    assert record["error"] == {"code": "4", "text": "Call barred by user"}


def test_an_early_receipt_is_parked_and_merged_when_the_send_stores_its_ids(store):
    assert receive(store, sms_receipt("EARLY", "delivered"))["result"] == "parked"
    assert receive(store, sms_receipt("EARLY", "delivered"))["result"] == "duplicate"
    store.create(MESSAGES, "msg_7", new_message_record("msg_7", channel="sms", api="sms", to="+447700900123", sender="Acme"))
    attach_vonage_ids(store, "msg_7", [{"vonage_id": "EARLY"}])
    record = store.get(MESSAGES, "msg_7")
    assert record["status"] == "delivered"
    assert statuses(record).count("delivered") == 1


def test_store_outage_is_a_store_error_and_the_retry_applies_the_event(store):
    sent_message(store, "msg_8", ["V8"])
    faulty = FaultyStore(store)
    faulty.fail("update", MESSAGES)
    receipt = sms_receipt("V8", "delivered")
    with pytest.raises(StoreError):
        receive(faulty, receipt)
    # The dedupe record travels in the message's own write (folded dedupe): nothing is half-written.
    assert store.get(EVENTS, "st:sms:V8|delivered|0") is None
    assert store.get(MESSAGES, "msg_8")["status"] == "submitted"
    assert receive(faulty, receipt)["result"] == "applied"
    assert store.get(MESSAGES, "msg_8")["status"] == "delivered"


def test_verify_callbacks_update_the_verification_record(store):
    now = store_clock(store)()
    save_record(store, VerificationRecord.pending("req-1", api="v2", phone="+447700900123", channels=("sms",),
                                                  max_attempts=3, ttl=600, now=now), now=now)
    assert receive(store, verify_event("req-1", "completed"))["result"] == "applied"
    assert receive(store, verify_event("req-1", "completed"))["result"] == "duplicate"
    assert receive(store, verify_summary("req-1", "completed"))["result"] == "applied"
    assert load_record(store, "req-1").status.value == "verified"
    assert receive(store, verify_summary("req-unknown", "expired"))["result"] == "unknown_request"


def test_non_status_payloads_are_refused(store):
    with pytest.raises(BadRequestError):
        receive(store, sms_inbound())
    with pytest.raises(BadRequestError):
        receive(store, {"nothing": "here"})
    with pytest.raises((BadRequestError, ValidationError)):
        receive(store, {"message_uuid": "u"})  # a status without a status
