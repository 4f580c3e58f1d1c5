"""Verify v2 callbacks applied to records: monotonic, idempotent, unknown ids reported."""

from __future__ import annotations

import pytest

from shared.errors import ValidationError
from shared.verify.callbacks import apply_verify_callback
from shared.verify.records import VerificationRecord, VerificationStatus, load_record, save_record
from tests.fixtures.verify import GB_MOBILE

REQUEST_ID = "c11236f4-00bf-4b89-84ba-88b25df97315"


def summary(status, **extra):
    return {
        "request_id": REQUEST_ID,
        "submitted_at": "2026-11-27T15:00:00.000Z",
        "type": "summary",
        "status": status,
        "channel_timeout": 180,
        "workflow": [{"channel": "sms", "initiated_at": "2026-11-27T15:00:00.000Z", "status": status}],
        **extra,
    }


def event(status, *, channel="sms", at="2026-11-27T15:00:10.000Z"):
    return {"request_id": REQUEST_ID, "triggered_at": at, "type": "event", "channel": channel, "status": status, "finalized_at": at}


@pytest.fixture
def pending(store, store_clock):
    record = VerificationRecord.pending(
        REQUEST_ID, api="v2", phone=GB_MOBILE, channels=("sms", "voice"), max_attempts=3, ttl=600, now=store_clock()
    )
    save_record(store, record, now=store_clock())
    return record


@pytest.mark.parametrize(
    ("vonage_status", "expected"),
    [("completed", VerificationStatus.VERIFIED), ("failed", VerificationStatus.FAILED), ("expired", VerificationStatus.EXPIRED)],
)
def test_summary_finishes_the_record(store, pending, vonage_status, expected):
    assert apply_verify_callback(store, summary(vonage_status)) is True
    record = load_record(store, REQUEST_ID)
    assert record.status is expected
    assert record.reason == f"vonage_summary_{vonage_status}"
    assert record.events[0]["workflow"] == [{"channel": "sms", "status": vonage_status}]


def test_failed_channel_event_is_remembered_but_keeps_the_request_open(store, pending):
    # The workflow moves on to voice: one failed channel does not end the verification.
    assert apply_verify_callback(store, event("failed")) is True
    record = load_record(store, REQUEST_ID)
    assert record.status is VerificationStatus.PENDING
    assert [(e["channel"], e["status"]) for e in record.events] == [("sms", "failed")]


def test_completed_event_verifies(store, pending):
    assert apply_verify_callback(store, event("completed", channel="voice")) is True
    assert load_record(store, REQUEST_ID).status is VerificationStatus.VERIFIED


def test_same_callback_twice_changes_nothing(store, pending):
    apply_verify_callback(store, event("failed"))
    first = load_record(store, REQUEST_ID)
    assert apply_verify_callback(store, event("failed")) is True
    assert load_record(store, REQUEST_ID) == first


def test_finished_record_is_not_reopened_by_a_late_callback(store, pending):
    apply_verify_callback(store, summary("completed"))
    apply_verify_callback(store, summary("failed", submitted_at="2026-11-27T15:09:00.000Z"))
    apply_verify_callback(store, event("failed", at="2026-11-27T15:09:30.000Z"))
    record = load_record(store, REQUEST_ID)
    assert record.status is VerificationStatus.VERIFIED
    assert len(record.events) == 3  # still remembered, for the audit trail


def test_callback_after_our_expiry_records_expired(store, store_clock, pending):
    store_clock.advance(601)
    apply_verify_callback(store, summary("completed"))
    assert load_record(store, REQUEST_ID).status is VerificationStatus.EXPIRED


def test_unknown_request_id_returns_false(store):
    assert apply_verify_callback(store, summary("completed")) is False


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "summary", "status": "completed"},
        {"request_id": "", "type": "summary"},
        {"request_id": REQUEST_ID, "type": "message"},
        {"request_id": REQUEST_ID},
    ],
)
def test_payload_that_is_not_a_verify_callback_is_422(store, payload):
    with pytest.raises(ValidationError) as info:
        apply_verify_callback(store, payload)
    assert info.value.status == 422


def test_silent_auth_action_pending_changes_no_status(store, pending):
    payload = {**event("action_pending", channel="silent_auth"), "action": {"type": "check", "check_url": "https://x"}}
    assert apply_verify_callback(store, payload) is True
    assert load_record(store, REQUEST_ID).status is VerificationStatus.PENDING
