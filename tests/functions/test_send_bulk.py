"""Bulk sends against the local Vonage sandbox: one result per recipient, a summary, pacing
under the configured rate (checked on the times the sandbox recorded), resumable retries,
throttling handled, and 1,000 recipients all accounted for."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from shared.messages.suppression import suppress
from tests.fixtures.send import FR_MOBILE, GB_MOBILE, GB_MOBILE_2, us_numbers


def received_times(requests):
    return [dt.datetime.fromisoformat(r["received_at"].replace("Z", "+00:00")).timestamp() for r in requests]


def max_in_any_window(times, window=1.0):
    """The most requests inside any sliding window [t, t + window)."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))


def test_a_bulk_send_reports_every_recipient_and_a_summary(send_stack):
    # GIVEN one opted-out number and a trial account that allows all but one destination
    suppress(send_stack.store, FR_MOBILE, keyword="STOP")
    send_stack.sandbox_config(trial=True, allow_list=["447911123456", "447911123457"])
    to = [GB_MOBILE, "not-a-number", FR_MOBILE, "447911123456", GB_MOBILE_2, "+4915112345678"]
    # WHEN they are sent in one request
    response = send_stack.http.post({"to": to, "text": "Sale starts now", "api": "sms"})
    # THEN the partial failure is a normal 202 with one result per entry, in order
    assert response.status_code == 202
    body = response.get_json()
    assert (body["channel"], body["api"], body["encoding"], body["segments"]) == ("sms", "sms", "GSM-7", 1)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == ["submitted", "failed", "opted_out", "skipped_duplicate", "submitted", "failed"]
    assert results[0]["id"].startswith("msg_") and len(results[0]["vonage_ids"]) == 1
    assert results[1]["error"]["code"] == "invalid_phone" and results[1]["to"] == "not-a-number"
    assert results[2]["error"]["code"] == "opted_out"
    assert results[3]["duplicate_of"] == 0
    assert results[5]["error"]["code"] == "destination_not_allowed" and results[5]["error"]["http_status"] == 422
    assert body["summary"] == {
        "total": 6, "sent": 2, "failed": 2, "opted_out": 1, "skipped_duplicate": 1, "in_progress": 0, "unknown": 0, "replayed": 0,
    }
    # AND Vonage saw exactly the three numbers that were not skipped
    assert sorted(r["fields"]["to"] for r in send_stack.vonage_requests(api="sms")) == [
        "447911123456", "447911123457", "4915112345678",
    ]


def test_retrying_a_half_finished_bulk_send_sends_only_what_was_not_sent(send_stack):
    numbers = us_numbers(8)
    allowed = [n[1:] for n in numbers[:5]]
    # GIVEN a first attempt where three recipients could not be sent (nothing was sent to them)
    send_stack.sandbox_config(trial=True, allow_list=allowed)
    first = send_stack.http.post({"to": numbers, "text": "Hello", "api": "sms"}, key="campaign-9").get_json()
    assert first["summary"]["sent"] == 5 and first["summary"]["failed"] == 3
    # WHEN the cause is fixed and the caller retries the same call with the same key
    send_stack.sandbox_config(allow_list=[n[1:] for n in numbers])
    second = send_stack.http.post({"to": numbers, "text": "Hello", "api": "sms"}, key="campaign-9").get_json()
    # THEN the five already sent are replayed (same ids) and only the three others are sent
    assert second["summary"]["sent"] == 8 and second["summary"]["replayed"] == 5
    for before, after in zip(first["results"][:5], second["results"][:5], strict=True):
        assert after["id"] == before["id"] and after["replayed"] is True
    accepted = [m["to"] for m in send_stack.sandbox.messages(api="sms")]
    assert sorted(accepted) == sorted(n[1:] for n in numbers)  # each number exactly once
    # AND a third retry sends nothing at all
    calls = len(send_stack.vonage_requests())
    third = send_stack.http.post({"to": numbers, "text": "Hello", "api": "sms"}, key="campaign-9").get_json()
    assert third["summary"]["replayed"] == 8 and len(send_stack.vonage_requests()) == calls


def test_a_bulk_key_reused_with_other_recipients_is_422(send_stack):
    send_stack.http.post({"to": us_numbers(2), "text": "Hello"}, key="campaign-1")
    response = send_stack.http.post({"to": us_numbers(3), "text": "Hello"}, key="campaign-1")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize("api", ["sms", "messages"])
def test_bulk_pacing_never_exceeds_the_configured_rate(send_stack, api):
    # GIVEN a low configured rate, and a sandbox that would throttle above it
    send_stack.configure(VONAGE_MAX_RPS="5")
    send_stack.sandbox_config(rate_limit=5, balance="100")
    # WHEN 13 recipients are sent in one call (about 2.5 s at 5/s)
    body = send_stack.http.post({"to": us_numbers(13), "text": "Hello", "api": api}).get_json()
    # THEN all went out, none was throttled, and no one-second window saw more than 5 requests
    assert body["summary"]["sent"] == 13
    requests = send_stack.vonage_requests(api=api)
    assert len(requests) == 13
    assert all(r["status"] in (200, 202) and r["outcome"] in ("0", "202") for r in requests)
    assert max_in_any_window(received_times(requests)) <= 5


def test_throttled_recipients_are_retried_with_backoff(send_stack):
    # GIVEN Vonage throttles the first four attempts, and the client itself does not retry
    send_stack.configure(VONAGE_MAX_RETRIES="0")
    send_stack.sandbox_config(balance="100")
    send_stack.sandbox.set_faults("throttle;count=4")
    # WHEN 24 recipients are sent
    started = time.monotonic()
    body = send_stack.http.post({"to": us_numbers(24), "text": "Hello", "api": "sms"}).get_json()
    # THEN the throttled recipients were tried again after Vonage's backoff, and all were sent
    requests = send_stack.vonage_requests(api="sms")
    assert [r["outcome"] for r in requests].count("1") == 4
    assert len(requests) == 28
    assert body["summary"]["sent"] == 24
    assert sorted(m["to"] for m in send_stack.sandbox.messages(api="sms")) == sorted(n[1:] for n in us_numbers(24))
    assert time.monotonic() - started >= 1.0  # the pacer paused for the throttle's Retry-After (1 s)


@pytest.mark.slow
def test_a_thousand_recipients_are_all_accounted_for(send_stack):
    # GIVEN a high configured rate and an account that allows it
    send_stack.configure(VONAGE_MAX_RPS="5000")
    send_stack.sandbox_config(rate_limit=None, balance="1000", status_webhook_url=None)  # receipts: not the point here
    numbers = us_numbers(1000)
    # WHEN they are sent in one request
    response = send_stack.http.post({"to": numbers, "text": "Flash sale: 20% off today", "api": "sms"}, key="big-1")
    # THEN every recipient has a result, each sent once with its own ids
    assert response.status_code == 202
    body = response.get_json()
    assert body["summary"]["total"] == 1000 and body["summary"]["sent"] == 1000
    results = body["results"]
    assert [r["to"] for r in results] == numbers
    assert len({r["id"] for r in results}) == 1000
    assert len({r["vonage_ids"][0] for r in results}) == 1000
    accepted = send_stack.sandbox.messages(api="sms")
    assert sorted(m["to"] for m in accepted) == sorted(n[1:] for n in numbers)


def test_an_account_level_error_stops_the_bulk_send(send_stack):
    # GIVEN an account without credit
    send_stack.sandbox_config(balance="0")
    response = send_stack.http.post({"to": us_numbers(40), "text": "Hello", "api": "sms"}, key="broke-1")
    # THEN the answer is that error, not 40 copies of it, and Vonage was not asked 40 times
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_balance"
    assert error["details"]["summary"]["sent"] == 0
    assert len(send_stack.vonage_requests()) < 40
    # AND after a top-up the same call with the same key sends to everyone
    send_stack.sandbox_config(balance="100")
    retry = send_stack.http.post({"to": us_numbers(40), "text": "Hello", "api": "sms"}, key="broke-1").get_json()
    assert retry["summary"]["sent"] == 40


def test_a_bulk_dry_run_lists_what_would_happen(send_stack):
    suppress(send_stack.store, FR_MOBILE, keyword="STOP")
    body = send_stack.http.post({"to": [GB_MOBILE, FR_MOBILE, "x", GB_MOBILE], "text": "Hi", "dry_run": True}).get_json()
    assert [r["status"] for r in body["results"]] == ["would_send", "opted_out", "failed", "skipped_duplicate"]
    assert body["summary"] == {"total": 4, "would_send": 1, "opted_out": 1, "failed": 1, "skipped_duplicate": 1}
    assert send_stack.vonage_requests() == []
