"""Bulk and scheduled sends through the embedded queue, against the local sandbox: POST answers
202 with a batch, the worker sends each recipient once through the same per-recipient routine,
GET shows counts and pages, a repeated POST creates nothing, DELETE cancels what has not gone,
send_at is honoured and bounded, and deliver refuses requests that are not tasks."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.messages.suppression import suppress
from tests.fixtures.send import FR_MOBILE, us_numbers


@pytest.fixture
def queued(send_stack, monkeypatch):
    send_stack.configure(QUEUE_BACKEND="embedded", VONAGE_MAX_RPS="200", QUEUE_MIN_BACKOFF_SECONDS="0.01")
    # These tests run the queue themselves, step by step (run_queue), not in background threads.
    monkeypatch.setattr("shared.queue.worker.start_worker", lambda: None)
    return send_stack


def test_a_process_that_accepts_a_batch_also_works_on_the_queue(send_stack):
    # functions-framework run by hand starts no worker the way app.py does: the first batch does.
    send_stack.configure(QUEUE_BACKEND="embedded", VONAGE_MAX_RPS="200")
    response = send_stack.http.post({"to": us_numbers(3), "text": "Hi", "api": "sms"})
    assert response.status_code == 202
    import time

    deadline = time.monotonic() + 60
    while len(send_stack.sandbox.messages(api="sms")) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(m["to"] for m in send_stack.sandbox.messages(api="sms")) == sorted(n[1:] for n in us_numbers(3))


def run_queue(limit=10_000):
    """Run due tasks in this process (the app's worker threads do this when served)."""
    from shared import deps
    from shared.queue.embedded import QueueWorker
    from shared.queue.worker import embedded_handler

    handler = embedded_handler(settings=deps.get_settings(), store=deps.get_store(), vonage=deps.get_vonage(),
                               pacer=deps.get_queue_pacer(), queue=deps.get_queue())
    worker = QueueWorker(deps.get_queue(), handler, threads=1)
    ran = 0
    while ran < limit and worker.run_once():
        ran += 1
    return ran


def rfc3339(seconds_ahead):
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds_ahead)).isoformat().replace("+00:00", "Z")


def test_a_bulk_send_is_queued_and_each_recipient_sent_once(queued):
    suppress(queued.store, FR_MOBILE, keyword="STOP")
    to = [*us_numbers(5), "not-a-number", us_numbers(1)[0], FR_MOBILE]
    response = queued.http.post({"to": to, "text": "Sale", "api": "sms"})
    assert response.status_code == 202
    body = response.get_json()
    assert body["batch_id"].startswith("bat_") and body["status"] == "queued"
    assert body["summary"] == {"total": 8, "queued": 6, "failed": 1, "skipped_duplicate": 1}
    assert queued.vonage_requests() == []  # nothing is sent inside the request
    assert run_queue() == 7  # one expand task, then the six recipients
    sent = sorted(r["fields"]["to"] for r in queued.vonage_requests(api="sms"))
    assert sent == sorted(n[1:] for n in us_numbers(5))
    status = queued.http.get(f"/{body['batch_id']}").get_json()
    assert status["summary"] == {"total": 8, "queued": 0, "submitted": 5, "failed": 1, "skipped_duplicate": 1, "opted_out": 1}
    states = [r["state"] for r in status["results"]]
    assert states == ["submitted"] * 5 + ["failed", "skipped_duplicate", "opted_out"]
    assert status["results"][0]["id"].startswith("msg_") and status["results"][5]["error"]["code"] == "invalid_phone"
    assert status["next_cursor"] is None


def test_a_repeated_post_with_the_same_key_creates_nothing(queued):
    body = {"to": us_numbers(4), "text": "Hi", "api": "sms"}
    first = queued.http.post(body, key="campaign-7").get_json()
    second = queued.http.post(body, key="campaign-7")
    assert second.status_code == 202 and second.get_json()["batch_id"] == first["batch_id"]
    assert run_queue() == 5  # the expand task and four recipients: the second POST added none
    assert len(queued.vonage_requests(api="sms")) == 4
    other = queued.http.post({**body, "text": "Other"}, key="campaign-7")
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "idempotency_key_reused"


def test_results_come_a_page_at_a_time_with_a_cursor(queued):
    batch = queued.http.post({"to": us_numbers(250), "text": "Hi", "api": "sms"}).get_json()["batch_id"]
    pages, cursor = [], None
    while True:
        page = queued.http.get(f"/{batch}" + (f"?cursor={cursor}" if cursor else "")).get_json()
        pages.append([r["index"] for r in page["results"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [100, 100, 50]
    assert sum(pages, []) == list(range(250))
    bad = queued.http.get(f"/{batch}?cursor=9")
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "invalid_cursor"


def test_cancel_stops_what_has_not_been_sent(queued):
    batch = queued.http.post({"to": us_numbers(6), "text": "Hi", "api": "sms"}).get_json()["batch_id"]
    assert run_queue(limit=3) == 3  # the expand task and two recipients
    response = queued.http.post(None, path=f"/{batch}", method="DELETE")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "cancelled" and body["cancelled"] == 4
    assert body["summary"]["submitted"] == 2 and body["summary"]["cancelled"] == 4
    assert run_queue() == 0
    assert len(queued.vonage_requests(api="sms")) == 2


def test_a_batch_cancelled_before_its_chunks_were_expanded_sends_nothing(queued):
    # The recipients are accepted in page documents; their own records come with the expansion.
    # A cancel that comes first records every one of them cancelled itself.
    batch = queued.http.post({"to": us_numbers(1200), "text": "Hi", "api": "sms"}).get_json()["batch_id"]
    assert [r["state"] for r in queued.http.get(f"/{batch}?cursor=11").get_json()["results"]] == ["queued"] * 100
    body = queued.http.post(None, path=f"/{batch}", method="DELETE").get_json()
    assert body["cancelled"] == 1200 and body["summary"]["cancelled"] == 1200 and body["summary"]["queued"] == 0
    assert run_queue() == 3  # the three expand tasks (500 recipients each): no recipient task is created
    assert queued.vonage_requests() == []
    last = queued.http.get(f"/{batch}?cursor=11").get_json()
    assert [r["state"] for r in last["results"]] == ["cancelled"] * 100 and last["summary"]["cancelled"] == 1200


def test_a_scheduled_send_waits_for_its_time_and_can_be_cancelled(queued):
    response = queued.http.post({"to": us_numbers(1)[0], "text": "Later", "api": "sms", "send_at": rfc3339(3600)})
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "scheduled" and body["summary"]["queued"] == 1
    assert run_queue() == 1 and run_queue() == 0 and queued.vonage_requests() == []  # only the expand task ran
    assert queued.http.get(f"/{body['batch_id']}").get_json()["status"] == "scheduled"
    cancelled = queued.http.post(None, path=f"/{body['batch_id']}", method="DELETE").get_json()
    assert cancelled["summary"]["cancelled"] == 1


def test_send_at_is_checked(queued, send_stack):
    too_far = queued.http.post({"to": us_numbers(1)[0], "text": "x", "send_at": rfc3339(31 * 86400)})
    assert too_far.status_code == 422 and too_far.get_json()["error"]["code"] == "send_at_too_far"
    malformed = queued.http.post({"to": us_numbers(1)[0], "text": "x", "send_at": "tomorrow"})
    assert malformed.status_code == 422 and malformed.get_json()["error"]["details"]["field"] == "send_at"
    no_zone = queued.http.post({"to": us_numbers(1)[0], "text": "x", "send_at": "2030-01-01T09:00:00"})
    assert no_zone.status_code == 422
    send_stack.configure(QUEUE_BACKEND="none")
    no_queue = send_stack.http.post({"to": us_numbers(1)[0], "text": "x", "send_at": rfc3339(60)})
    assert no_queue.status_code == 422 and no_queue.get_json()["error"]["code"] == "queue_required"


def test_another_tenants_batch_is_not_found_and_an_admin_sees_it(queued):
    # Batches are scoped like messages (shared.tenants): another tenant's id answers 404 exactly
    # like an unknown one, on GET and on DELETE; an admin token reads every tenant's batches.
    queued.configure(QUEUE_BACKEND="embedded", API_TOKENS="shop:send-test-token-0123456789:send,"
                     "other:other-token-0123456789:send,ops:ops-token-0123456789:*")
    batch = queued.http.post({"to": us_numbers(2), "text": "Hi", "api": "sms"}).get_json()["batch_id"]
    response = queued.http.get(f"/{batch}", token="other-token-0123456789")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert queued.http.post(None, path=f"/{batch}", method="DELETE", token="other-token-0123456789").status_code == 404
    seen = queued.http.get(f"/{batch}", token="ops-token-0123456789")
    assert seen.status_code == 200 and seen.get_json()["batch_id"] == batch
    assert queued.http.get(f"/{batch}").status_code == 200  # its own tenant


def test_throttling_is_retried_by_the_queue_not_lost(queued):
    queued.sandbox_config(rate_limit=1)
    batch = queued.http.post({"to": us_numbers(3), "text": "Hi", "api": "sms"}).get_json()["batch_id"]
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run_queue()
        summary = queued.http.get(f"/{batch}").get_json()["summary"]
        if summary.get("submitted") == 3:
            break
        time.sleep(0.2)
    assert summary.get("submitted") == 3 and summary.get("failed", 0) == 0
    accepted = [m["to"] for m in queued.sandbox.messages(api="sms")]
    assert sorted(accepted) == sorted(n[1:] for n in us_numbers(3))
    assert len(queued.vonage_requests(api="sms")) > 3  # some attempts were throttled and retried


def test_a_lost_answer_is_unknown_never_resent_and_settles_unconfirmed(queued):
    queued.configure(QUEUE_BACKEND="embedded", VONAGE_MAX_RPS="200", QUEUE_MIN_BACKOFF_SECONDS="0.01",
                     VONAGE_TIMEOUT_SECONDS="0.3", UNKNOWN_SETTLE_SECONDS="1")
    queued.sandbox.set_faults("timeout=1;count=1")  # Vonage takes it, the answer comes too late
    batch = queued.http.post({"to": us_numbers(2), "text": "Hi", "api": "sms"}).get_json()["batch_id"]
    run_queue()
    results = queued.http.get(f"/{batch}").get_json()["results"]
    states = sorted(r["state"] for r in results)
    assert states == ["submitted", "unknown"]
    unknown = next(r for r in results if r["state"] == "unknown")
    assert unknown["id"].startswith("msg_")
    sent_before = len(queued.vonage_requests(api="sms"))
    assert run_queue() == 0 and len(queued.vonage_requests(api="sms")) == sent_before  # never resent
    import time

    time.sleep(1.1)  # UNKNOWN_SETTLE_SECONDS passes with no receipt
    body = queued.http.get(f"/{batch}").get_json()
    settled = next(r for r in body["results"] if r["index"] == unknown["index"])
    assert settled["state"] == "unconfirmed" and settled["settled_by"] == "timeout"
    assert body["summary"].get("unconfirmed") == 1 and body["summary"].get("unknown", 0) == 0


def test_a_receipt_carrying_the_client_ref_settles_an_unknown_send(queued):
    from shared import deps
    from shared.webhooks.status import receive_status

    queued.configure(QUEUE_BACKEND="embedded", VONAGE_MAX_RPS="200", QUEUE_MIN_BACKOFF_SECONDS="0.01",
                     VONAGE_TIMEOUT_SECONDS="0.3")
    queued.sandbox.set_faults("timeout=1;count=1")
    batch = queued.http.post({"to": us_numbers(1), "text": "Hi", "api": "sms"}).get_json()["batch_id"]
    run_queue()
    (entry,) = queued.http.get(f"/{batch}").get_json()["results"]
    assert entry["state"] == "unknown"
    # The sandbox did take it: its receipt names our client_ref and the Vonage id we never learned.
    (accepted,) = queued.sandbox.messages(api="sms")
    assert accepted["client_ref"] == entry["client_ref"] and entry["client_ref"].startswith("vfq-")
    receipt = {"messageId": accepted["id"], "status": "delivered", "err-code": "0", "msisdn": accepted["to"],
               "to": "447700900000", "client-ref": accepted["client_ref"], "message-timestamp": "2026-12-02 10:00:00"}
    answer = receive_status(receipt, settings=deps.get_settings(), store=deps.get_store())
    assert answer["result"] == "applied"
    body = queued.http.get(f"/{batch}").get_json()
    (settled,) = body["results"]
    assert settled["state"] == "delivered" and settled["settled_by"] == "receipt"
    assert settled["vonage_ids"] == [accepted["id"]]
    assert body["summary"].get("delivered") == 1 and body["summary"].get("unknown", 0) == 0
    record = queued.http.get(f"/{entry['id']}").get_json()
    assert record["status"] == "delivered"
    assert run_queue() == 0 and len(queued.sandbox.messages(api="sms")) == 1  # and it was never resent


def test_queued_sends_spend_the_callers_own_budget_and_wait_for_it(queued):
    # A queued send used to be charged under its own "batch:" scope: each token could spend its
    # per-token budget twice, once directly and once through the queue.
    queued.configure(QUEUE_BACKEND="embedded", VONAGE_MAX_RPS="200", QUEUE_MIN_BACKOFF_SECONDS="0.01",
                     SEND_BUDGET_PER_TOKEN="1/86400")
    assert queued.http.post({"to": us_numbers(1)[0], "text": "Hi", "api": "sms"}).status_code == 202
    batch = queued.http.post({"to": us_numbers(3)[1:], "text": "Hi", "api": "sms"}).get_json()["batch_id"]
    run_queue()
    assert len(queued.sandbox.messages(api="sms")) == 1  # the budget held across both paths
    summary = queued.http.get(f"/{batch}").get_json()["summary"]
    # Waiting for the budget's next window, not failed: the queue retries after its Retry-After.
    assert summary.get("queued") == 2 and summary.get("failed", 0) == 0, summary


def test_a_finished_batch_emits_batch_completed_once(queued):
    from shared.events.outbox import OUTBOX_COLLECTION, OUTBOX_FIELD

    batch = queued.http.post({"to": us_numbers(3), "text": "Hi", "api": "sms"}).get_json()["batch_id"]

    def completed():
        return [e for doc in queued.store.query(OUTBOX_COLLECTION, limit=100) for e in doc[OUTBOX_FIELD]
                if e["type"] == "com.vonage.batch.completed.v1"]

    run_queue(limit=2)
    assert completed() == []  # a recipient is still queued
    run_queue()
    [event] = completed()
    assert event["data"]["batch_id"] == batch and event["data"]["submitted"] == 3 and event["data"]["queued"] == 0
