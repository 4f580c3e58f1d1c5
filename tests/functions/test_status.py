"""The status function over real HTTP: receipts in every format and signature, order, parts, outages.

Message records are created the way the send path creates them (``new_message_record`` then
``attach_vonage_ids``); tests/functions/test_inbound_sandbox.py also runs the whole loop with the
local Vonage sandbox sending real signed receipts.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from shared.messages.records import MESSAGES, attach_vonage_ids, new_message_record
from shared.verify.records import VerificationRecord, load_record, save_record, store_clock
from tests.fixtures.webhooks import FaultyStore, messages_inbound, messages_status, sms_receipt, verify_event, verify_summary

METHODS = ["md5hash", "md5", "sha1", "sha256", "sha512"]
FORMATS = ["GET", "POST", "POST-JSON"]


def sent(store, message_id, vonage_ids, *, api="sms", channel="sms"):
    store.create(MESSAGES, message_id, new_message_record(message_id, channel=channel, api=api, to="+447700900123", sender="Acme"))
    attach_vonage_ids(store, message_id, [{"vonage_id": vid} for vid in vonage_ids])


def history(record):
    return [(entry["status"], entry.get("vonage_id")) for entry in record["history"]]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_sms_receipts_signed_with_every_method_in_every_format(webhook_env, webhook_client, store, fmt, method):
    webhook_env.set(VONAGE_SIGNATURE_METHOD=method)
    sent(store, "msg_f", ["DLR-1"])
    response = webhook_client.sms("/status", sms_receipt("DLR-1", "delivered", **{"client-ref": "a&b=c"}), fmt=fmt, method=method)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "applied", "id": "DLR-1", "status": "delivered"}
    record = store.get(MESSAGES, "msg_f")
    assert record["status"] == "delivered" and record["price"] == "0.03330000"


@pytest.mark.parametrize("channel", ["sms", "mms", "whatsapp", "messenger", "viber_service", "rcs"])
def test_messages_statuses_on_every_channel_including_read(webhook_client, store, channel):
    sent(store, "msg_c", ["UUID-C"], api="messages", channel=channel)
    for status, second in (("submitted", 1), ("delivered", 2), ("read", 3)):
        response = webhook_client.json("/status", messages_status("UUID-C", status, channel=channel, timestamp=f"2026-01-30T12:00:0{second}Z"))
        assert response.status_code == 200 and response.json()["result"] == "applied"
    record = store.get(MESSAGES, "msg_c")
    assert record["status"] == "read" and record["currency"] == "EUR"
    assert [s for s, _ in history(record)][-3:] == ["submitted", "delivered", "read"]


def test_statuses_out_of_order_and_duplicated_end_right_with_a_clean_history(webhook_client, store):
    sent(store, "msg_o", ["UUID-O"], api="messages", channel="whatsapp")
    events = [
        messages_status("UUID-O", "delivered", timestamp="2026-01-30T12:00:05Z"),
        messages_status("UUID-O", "submitted", timestamp="2026-01-30T12:00:01Z"),
        messages_status("UUID-O", "read", timestamp="2026-01-30T12:00:09Z"),
    ]
    deliveries = events * 3
    random.Random(7).shuffle(deliveries)
    for payload in deliveries:
        assert webhook_client.json("/status", payload).status_code == 200
    record = store.get(MESSAGES, "msg_o")
    assert record["status"] == "read"
    recorded = [entry for entry in record["history"] if entry.get("vonage_id")]
    assert sorted(entry["status"] for entry in recorded) == ["delivered", "read", "submitted"]  # each once
    assert {entry["at"] for entry in recorded} == {"2026-01-30T12:00:05Z", "2026-01-30T12:00:01Z", "2026-01-30T12:00:09Z"}


def test_a_late_accepted_never_overwrites_rejected_and_the_error_is_explained(webhook_client, store):
    sent(store, "msg_r", ["DLR-R"])
    webhook_client.sms("/status", sms_receipt("DLR-R", "rejected", err_code="3", timestamp="2026-01-30 12:00:09"))
    webhook_client.sms("/status", sms_receipt("DLR-R", "accepted", timestamp="2026-01-30 12:00:01"))
    webhook_client.sms("/status", sms_receipt("DLR-R", "delivered", timestamp="2026-01-30 12:00:10"))
    record = store.get(MESSAGES, "msg_r")
    assert record["status"] == "rejected"
    assert record["error"] == {"code": "3", "text": "Absent subscriber (permanent)"}


def test_a_three_part_message_aggregates_its_receipts(webhook_client, store):
    sent(store, "msg_p", ["P-1", "P-2", "P-3"])
    for part in ("P-3", "P-1"):
        webhook_client.sms("/status", sms_receipt(part, "delivered"))
    assert store.get(MESSAGES, "msg_p")["status"] == "submitted"
    webhook_client.sms("/status", sms_receipt("P-2", "expired", err_code="8"))
    record = store.get(MESSAGES, "msg_p")
    assert record["status"] == "expired" and record["failed_part"] == 2
    assert record["error"]["text"] == "Network error"
    assert record["price"] == "0.09990000"


def test_an_early_receipt_is_parked_and_merged(webhook_client, store):
    response = webhook_client.sms("/status", sms_receipt("EARLY-1", "delivered"))
    assert response.json()["result"] == "parked"
    sent(store, "msg_e", ["EARLY-1"])
    assert store.get(MESSAGES, "msg_e")["status"] == "delivered"


def test_twenty_concurrent_copies_of_a_receipt_are_recorded_once(webhook_client, store):
    sent(store, "msg_x", ["DLR-X"])
    statuses = []
    barrier = threading.Barrier(20)

    def deliver():
        barrier.wait()
        statuses.append(webhook_client.sms("/status", sms_receipt("DLR-X", "delivered")).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 20
    assert [s for s, _ in history(store.get(MESSAGES, "msg_x"))] == ["pending", "submitted", "delivered"]


def test_verify_v2_callbacks_update_the_verification(webhook_client, store):
    now = store_clock(store)()
    save_record(store, VerificationRecord.pending("REQ-1", api="v2", phone="+447700900123", channels=("sms",),
                                                  max_attempts=3, ttl=600, now=now), now=now)
    assert webhook_client.json("/status", verify_event("REQ-1", "completed")).json()["result"] == "applied"
    assert webhook_client.json("/status", verify_summary("REQ-1", "completed")).status_code == 200
    assert load_record(store, "REQ-1").status.value == "verified"
    assert webhook_client.json("/status", verify_event("REQ-404")).json()["result"] == "unknown_request"


def test_tampered_stale_and_unsigned_receipts_are_refused(webhook_client, store):
    sent(store, "msg_t", ["DLR-T", "UUID-T"])
    tampered = webhook_client.sms("/status", sms_receipt("DLR-T", "delivered"), tamper=lambda f: f.update(status="failed"))
    stale = webhook_client.sms("/status", sms_receipt("DLR-T", "delivered"), timestamp=time.time() - 900)
    unsigned = webhook_client.sms("/status", sms_receipt("DLR-T", "delivered"), sign=False)
    jwt_tampered = webhook_client.json("/status", messages_status("UUID-T", "read"), signed_body=b"{}")
    jwt_stale = webhook_client.json("/status", messages_status("UUID-T", "read"), iat=time.time() - 900)
    assert [r.status_code for r in (tampered, stale, unsigned, jwt_tampered, jwt_stale)] == [401] * 5
    assert store.get(MESSAGES, "msg_t")["status"] == "submitted"


def test_an_inbound_message_at_the_status_url_is_a_400(webhook_client):
    response = webhook_client.json("/status", messages_inbound())
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_webhook"


def test_store_outage_answers_503_and_the_retry_records_the_receipt(webhook_client, store, monkeypatch):
    import functions.status

    sent(store, "msg_s", ["DLR-S"])
    faulty = FaultyStore(store)
    faulty.fail("update", MESSAGES)  # the receipt's transaction fails after its dedupe doc was created
    monkeypatch.setattr(functions.status, "get_store", lambda: faulty)
    receipt = sms_receipt("DLR-S", "delivered")
    response = webhook_client.sms("/status", receipt)
    assert response.status_code == 503 and response.json()["error"]["code"] == "store_unavailable"
    assert webhook_client.sms("/status", receipt).json()["result"] == "applied"
    faulty.down = True
    assert webhook_client.sms("/status", sms_receipt("DLR-S", "delivered")).status_code == 503
    faulty.down = False
    assert store.get(MESSAGES, "msg_s")["status"] == "delivered"


@pytest.mark.parametrize("target", ["inbound", "status"])
def test_main_py_exports_the_function_for_functions_framework(webhook_env, target):
    from functions_framework import create_app

    client = create_app(target=target, source="main.py").test_client()
    # Unsigned: the function itself answers (401 in our JSON shape), proving main.py serves it.
    response = client.post("/", json={"msisdn": "447700900123", "to": "447700900000", "messageId": "X"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
