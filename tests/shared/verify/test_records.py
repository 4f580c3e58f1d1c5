"""Verification records: masking, derived expiry, monotonic finishing, store round trips."""

from __future__ import annotations

import pytest

from shared.verify.records import (
    COLLECTION,
    VerificationRecord,
    VerificationStatus,
    load_record,
    save_record,
    update_record,
)
from shared.verify.records import store_clock as clock_of
from tests.fixtures.verify import GB_MOBILE

NOW = 1_800_000_000.0


def _pending(**overrides):
    values = dict(api="v2", phone=GB_MOBILE, channels=("sms", "voice"), max_attempts=3, ttl=600, now=NOW)
    values.update(overrides)
    return VerificationRecord.pending("req-1", **values)


def test_pending_record_keeps_only_a_masked_number():
    record = _pending()
    doc = record.to_doc()
    assert doc["masked_number"] == "+44********56"
    assert "7400123456" not in str(doc)
    assert doc["status"] == "pending" and doc["attempts"] == 0
    assert doc["expires_at"] == NOW + 600


def test_doc_round_trip_is_lossless():
    record = _pending(client_ref="abc").with_attempt(now=NOW + 1).with_event({"key": "k"}, now=NOW + 2)
    assert VerificationRecord.from_doc(record.to_doc()) == record


def test_expiry_is_derived_on_read():
    record = _pending()
    assert record.status_at(NOW + 599) is VerificationStatus.PENDING
    assert record.status_at(NOW + 600) is VerificationStatus.EXPIRED
    assert record.is_expired(NOW + 601)
    assert record.public(NOW + 601)["status"] == "expired"


def test_finish_is_monotonic():
    verified = _pending().finish(VerificationStatus.VERIFIED, now=NOW + 5, reason="code_checked")
    assert verified.status is VerificationStatus.VERIFIED and verified.finished_at == NOW + 5
    again = verified.finish(VerificationStatus.FAILED, now=NOW + 6, reason="x")
    assert again is verified


def test_finish_after_expiry_records_expired_not_the_late_outcome():
    late = _pending().finish(VerificationStatus.VERIFIED, now=NOW + 700, reason="late")
    assert late.status is VerificationStatus.EXPIRED
    assert late.finished_at == NOW + 600


def test_finish_needs_a_final_status():
    with pytest.raises(ValueError):
        _pending().finish(VerificationStatus.PENDING, now=NOW, reason="x")


def test_attempts_remaining_never_negative():
    record = _pending(max_attempts=1).with_attempt(now=NOW).with_attempt(now=NOW)
    assert record.attempts == 2 and record.attempts_remaining == 0


def test_events_are_bounded():
    record = _pending()
    for i in range(30):
        record = record.with_event({"key": str(i)}, now=NOW)
    assert len(record.events) == 20 and record.events[-1]["key"] == "29"


def test_store_round_trip_and_update(store, store_clock):
    record = VerificationRecord.pending(
        "req-9", api="legacy", phone=GB_MOBILE, channels=("sms",), max_attempts=3, ttl=600, now=store_clock()
    )
    save_record(store, record, now=store_clock())
    assert load_record(store, "req-9") == record
    after = update_record(store, "req-9", lambda r: r.with_attempt(now=store_clock()))
    assert after is not None and after.attempts == 1
    assert load_record(store, "req-9").attempts == 1
    # A no-op update writes nothing and still answers the stored record.
    assert update_record(store, "req-9", lambda r: None).attempts == 1
    assert update_record(store, "unknown", lambda r: r.with_attempt(now=0)) is None


def test_record_outlives_its_expiry_for_late_callbacks(store, store_clock):
    record = VerificationRecord.pending(
        "req-ttl", api="v2", phone=GB_MOBILE, channels=("sms",), max_attempts=3, ttl=600, now=store_clock()
    )
    save_record(store, record, now=store_clock())
    store_clock.advance(600 + 3600)
    assert load_record(store, "req-ttl").status_at(store_clock()) is VerificationStatus.EXPIRED
    store_clock.advance(86400)
    assert store.get(COLLECTION, "req-ttl") is None


def test_records_read_time_from_the_stores_clock(store, store_clock):
    # The fake clock of the store moves every verification rule: no test needs to sleep.
    store_clock.advance(123)
    assert clock_of(store)() == store_clock()
