"""The send function over HTTP, against the local Vonage sandbox (real HTTP, the real client).

Covers the HTTP contract (auth, methods, bad input), records and GET, dry runs, idempotency
(retries, concurrent duplicates, refusals that free the key, unknown outcomes that hold it),
opt-outs and every Vonage error path. Exact wire fields: test_send_wire.py; bulk and pacing:
test_send_bulk.py.
"""

from __future__ import annotations

import threading

import pytest

from shared.messages.records import StatusEvent, record_status_event
from shared.messages.suppression import suppress, unsuppress
from tests.fixtures.send import GB_MOBILE, GB_MOBILE_2, SendHTTP

SMS = {"to": "+44 7911 123456", "text": "Your order has shipped", "api": "sms"}


def error_of(response):
    body = response.get_json()
    assert set(body) == {"error"}, body
    return body["error"]


def assert_no_vonage_call(stack):
    assert stack.vonage_requests() == []


# ---- the HTTP contract -----------------------------------------------------------------------


def test_a_post_without_a_token_is_401_json_and_sends_nothing(send_stack):
    response = send_stack.http.post(SMS, token=None)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    wrong = send_stack.http.post(SMS, token="wrong-token")
    assert wrong.status_code == 401 and error_of(wrong)["code"] == "unauthorized"
    assert_no_vonage_call(send_stack)


def test_without_api_tokens_the_function_is_misconfigured_not_open(send_stack):
    send_stack.configure(API_TOKENS=None)
    response = send_stack.http.post(SMS, token=None)
    assert response.status_code == 500 and error_of(response)["code"] == "misconfigured"
    assert_no_vonage_call(send_stack)


def test_other_methods_are_405(send_stack):
    response = send_stack.http.post(SMS, method="PUT")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"POST", "GET", "DELETE"}  # DELETE cancels a batch


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ("{not json", 400, "invalid_json"),
        ("", 400, "invalid_json"),
        ("[1, 2]", 400, "invalid_json"),
        ('{"to": "+447911123456", "text": "hi", "channel": "pigeon"}', 422, "invalid_channel"),
        ('{"to": "+447911123456"}', 422, "missing_field"),
        ('{"to": 447911123456, "text": "hi"}', 422, "invalid_field"),
        ('{"to": "+447911123456", "text": "hi", "ttl": "soon"}', 422, "invalid_field"),
        ('{"to": "not a number", "text": "hi"}', 422, "invalid_phone"),
        ('{"to": "+447911123456", "text": "' + "a" * 3201 + '"}', 422, "text_too_long"),
        ('{"to": "+447911123456", "text": "' + "a" * 1000 + '"}', 422, "too_many_segments"),
        ('{"to": "+447911123456", "text": "hi", "mystery": 1}', 422, "unknown_field"),
    ],
)
def test_bad_input_is_a_json_4xx_never_a_500(send_stack, data, status, code):
    response = send_stack.http.post(data=data, content_type="application/json")
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code and error["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    assert_no_vonage_call(send_stack)


def test_a_malformed_idempotency_key_is_400(send_stack):
    response = send_stack.http.post(SMS, key="x" * 300)
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_idempotency_key"
    assert_no_vonage_call(send_stack)


# ---- one message, its record -------------------------------------------------------------------


def test_a_single_sms_is_202_with_our_id_and_vonages(send_stack):
    response = send_stack.http.post({**SMS, "client_ref": "order-17"})
    assert response.status_code == 202
    body = response.get_json()
    assert body["id"].startswith("msg_")
    assert body["status"] == "submitted"
    assert body["to"] == GB_MOBILE
    assert (body["channel"], body["api"], body["encoding"], body["segments"]) == ("sms", "sms", "GSM-7", 1)
    accepted = send_stack.sandbox.messages(api="sms")
    assert body["vonage_ids"] == [accepted[0]["id"]]
    assert body["price"] == "0.03330000" and body["currency"] == "EUR"
    assert body["client_ref"] == "order-17"


def test_get_returns_the_record_by_path_or_query_and_needs_a_token(send_stack):
    sent = send_stack.http.post({**SMS, "client_ref": "order-17"}).get_json()
    by_path = send_stack.http.get(f"/{sent['id']}")
    assert by_path.status_code == 200
    record = by_path.get_json()
    assert record["id"] == sent["id"]
    assert record["status"] == "submitted"
    assert record["vonage_ids"] == sent["vonage_ids"]
    assert (record["to"], record["from"], record["channel"], record["api"]) == (GB_MOBILE, "447700900000", "sms", "sms")
    assert (record["encoding"], record["segments"], record["client_ref"]) == ("GSM-7", 1, "order-17")
    assert [entry["status"] for entry in record["history"]] == ["pending", "submitted"]
    assert record["created_at"] and record["submitted_at"]
    assert send_stack.http.get(f"/?id={sent['id']}").get_json() == record
    assert send_stack.http.get(f"/{sent['vonage_ids'][0]}").get_json()["id"] == sent["id"]
    anonymous = send_stack.http.get(f"/{sent['id']}", token=None)
    assert anonymous.status_code == 401 and error_of(anonymous)["code"] == "unauthorized"
    assert "history" not in anonymous.get_data(as_text=True)


def test_get_of_an_unknown_or_missing_id_is_404(send_stack):
    assert error_of(send_stack.http.get("/msg_" + "0" * 32))["code"] == "not_found"
    assert send_stack.http.get("/msg_" + "0" * 32).status_code == 404
    for path in ("/", "/../../etc/passwd"):
        response = send_stack.http.get(path)
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_a_long_sms_has_one_vonage_id_per_part(send_stack):
    text = "word " * 80  # 400 GSM-7 characters: 3 parts of at most 152
    body = send_stack.http.post({**SMS, "text": text}).get_json()
    assert body["segments"] == 3
    assert len(body["vonage_ids"]) == 3 == len(set(body["vonage_ids"]))
    record = send_stack.http.get(f"/{body['id']}").get_json()
    assert [part["vonage_id"] for part in record["parts"]] == body["vonage_ids"]


def test_a_receipt_stored_by_the_status_function_shows_in_the_record(send_stack):
    body = send_stack.http.post(SMS).get_json()
    receipts = send_stack.receiver.wait_for(1, where=lambda r: r.path == "/status")
    fields = receipts[0].fields
    assert fields["messageId"] == body["vonage_ids"][0]
    # What the status function does with it (shared.messages.records is its store API).
    record_status_event(
        send_stack.store,
        StatusEvent(vonage_id=fields["messageId"], status=fields["status"], timestamp=fields.get("message-timestamp"),
                    price=fields.get("price"), source="sms"),
    )
    record = send_stack.http.get(f"/{body['id']}").get_json()
    assert record["status"] == "delivered"
    assert [entry["status"] for entry in record["history"]] == ["pending", "submitted", "delivered"]
    assert record["price"] == fields["price"]


# ---- dry run ---------------------------------------------------------------------------------


def test_a_dry_run_reports_the_encoding_and_sends_nothing(send_stack):
    response = send_stack.http.post({**SMS, "text": "Café “special” ok", "dry_run": True})
    assert response.status_code == 200
    body = response.get_json()
    assert body["dry_run"] is True
    assert (body["encoding"], body["segments"], body["characters"]) == ("UCS-2", 1, 17)
    assert [(c["char"], c["position"]) for c in body["unicode_characters"]] == [("“", 5), ("”", 13)]
    assert body["status"] == "would_send" and body["to"] == GB_MOBILE
    assert "estimated_price" in body  # from the pricing API (tests/functions/test_money_safety.py)
    assert send_stack.vonage_requests("sms") == [] and send_stack.vonage_requests("messages") == []


def test_a_dry_run_of_a_too_long_text_says_so_instead_of_refusing(send_stack):
    body = send_stack.http.post({**SMS, "text": "a" * 1000, "dry_run": True}).get_json()
    assert body["segments"] == 7 and body["max_segments"] == 6 and body["within_limit"] is False
    assert_no_vonage_call(send_stack)


# ---- idempotency -----------------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_first_result_without_calling_vonage(send_stack):
    first = send_stack.http.post(SMS, key="order-17-shipped")
    again = send_stack.http.post({**SMS, "to": "0044 7911 123456"}, key="order-17-shipped")  # same request, other spelling
    assert first.status_code == again.status_code == 202
    assert again.get_json() == {**first.get_json(), "replayed": True}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(send_stack.vonage_requests()) == 1


def test_the_same_key_with_a_different_body_is_422(send_stack):
    send_stack.http.post(SMS, key="k-1")
    response = send_stack.http.post({**SMS, "text": "Different"}, key="k-1")
    assert response.status_code == 422 and error_of(response)["code"] == "idempotency_key_reused"
    response = send_stack.http.post({**SMS, "to": GB_MOBILE_2}, key="k-1")
    assert response.status_code == 422 and error_of(response)["code"] == "idempotency_key_reused"
    assert len(send_stack.vonage_requests()) == 1


def test_keys_of_different_callers_do_not_collide(send_stack):
    send_stack.configure(API_TOKENS="token-a,token-b")
    first = send_stack.http.post(SMS, key="same", token="token-a")
    second = send_stack.http.post({**SMS, "text": "other"}, key="same", token="token-b")
    assert first.status_code == second.status_code == 202
    assert len(send_stack.vonage_requests()) == 2


def test_twenty_concurrent_identical_requests_call_vonage_once(send_stack):
    # GIVEN Vonage answers slowly, so the duplicates arrive while the first is in progress
    send_stack.sandbox.set_faults("delay=0.5;count=1")
    barrier = threading.Barrier(20)
    responses = []
    lock = threading.Lock()

    def post() -> None:
        client = SendHTTP()  # one test client per thread, like separate callers
        barrier.wait()
        response = client.post(SMS, key="concurrent-1")
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # THEN exactly one request reached Vonage
    assert len(send_stack.vonage_requests()) == 1
    statuses = sorted(r.status_code for r in responses)
    assert len(responses) == 20 and set(statuses) <= {202, 409}
    sent = [r.get_json() for r in responses if r.status_code == 202]
    assert len({body["id"] for body in sent}) == 1
    for response in responses:
        if response.status_code == 409:
            assert error_of(response)["code"] == "idempotency_in_progress"
            assert int(response.headers["Retry-After"]) >= 1
    # AND a later retry gets the one result
    late = send_stack.http.post(SMS, key="concurrent-1")
    assert late.status_code == 202 and late.get_json()["id"] == sent[0]["id"]
    assert len(send_stack.vonage_requests()) == 1


def test_a_refusal_frees_the_key_so_the_same_request_can_be_retried_once_fixed(send_stack):
    # GIVEN a trial account that may not send to this number yet
    send_stack.sandbox_config(trial=True, allow_list=[])
    refused = send_stack.http.post(SMS, key="welcome-1")
    assert refused.status_code == 422 and error_of(refused)["code"] == "destination_not_allowed"
    # WHEN the number is allowed and the caller retries with the same key
    send_stack.sandbox_config(allow_list=["447911123456"])
    retried = send_stack.http.post(SMS, key="welcome-1")
    # THEN it is sent (nothing had been sent the first time), and only once
    assert retried.status_code == 202
    assert send_stack.http.post(SMS, key="welcome-1").get_json()["id"] == retried.get_json()["id"]
    assert [r["outcome"] for r in send_stack.vonage_requests()] == ["29", "0"]
    first_record = send_stack.http.get(f"/{error_of(refused)['details']['id']}").get_json()
    assert first_record["status"] == "failed" and first_record["error"]["code"] == "destination_not_allowed"


def test_an_unknown_outcome_holds_the_key_until_the_in_progress_expiry(send_stack):
    # GIVEN Vonage takes the message but the answer never arrives in time
    send_stack.configure(VONAGE_TIMEOUT_SECONDS="0.3", IDEMPOTENCY_IN_PROGRESS_SECONDS="1")
    send_stack.sandbox.set_faults("timeout=1;count=1")
    first = send_stack.http.post(SMS, key="maybe-sent")
    assert first.status_code == 504
    error = error_of(first)
    assert error["code"] == "vonage_timeout"
    record = send_stack.http.get(f"/{error['details']['id']}").get_json()
    assert record["status"] == "pending" and record["error"]["outcome"] == "unknown"
    # WHEN the caller retries at once
    retry = send_stack.http.post(SMS, key="maybe-sent")
    # THEN it is told the outcome is unknown and when the key frees up; nothing is sent again
    assert retry.status_code == 409
    assert error_of(retry)["details"]["outcome"] == "unknown"
    assert int(retry.headers["Retry-After"]) >= 1
    assert len(send_stack.vonage_requests(api="sms")) <= 1
    # AND after the in-progress expiry the key can be used again
    import time

    time.sleep(1.2)
    assert send_stack.http.post(SMS, key="maybe-sent").status_code == 202


# ---- opt-outs --------------------------------------------------------------------------------


def test_an_opted_out_number_is_not_sent_to(send_stack):
    suppress(send_stack.store, GB_MOBILE, keyword="STOP")
    response = send_stack.http.post(SMS, key="promo-1")
    assert response.status_code == 422
    assert error_of(response)["code"] == "opted_out"
    assert_no_vonage_call(send_stack)
    # Opting in again (START) and retrying the same key sends: an opt-out does not hold the key.
    unsuppress(send_stack.store, GB_MOBILE)
    assert send_stack.http.post(SMS, key="promo-1").status_code == 202


# ---- Vonage errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["sms", "messages"])
def test_insufficient_balance_is_402(send_stack, api):
    send_stack.sandbox_config(balance="0")
    response = send_stack.http.post({**SMS, "api": api})
    assert response.status_code == 402
    assert error_of(response)["code"] == "insufficient_balance"
    assert "Top up" in error_of(response)["message"]


def test_a_trial_account_destination_is_422_saying_how_to_allow_it(send_stack):
    send_stack.sandbox_config(trial=True, allow_list=["447911000000"])
    response = send_stack.http.post(SMS)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "destination_not_allowed"
    assert error["details"]["vonage_code"] == "29"
    assert "test numbers" in error["message"] and "dashboard" in error["message"]


@pytest.mark.parametrize(
    ("api", "env"),
    [
        ("sms", {"VONAGE_API_SECRET": "wrong-secret"}),
        ("messages", {"VONAGE_APPLICATION_ID": "11111111-2222-4333-8444-555555555555"}),
    ],
)
def test_bad_vonage_credentials_are_a_5xx_saying_the_deployment_is_misconfigured(send_stack, api, env):
    send_stack.configure(**env)
    response = send_stack.http.post({**SMS, "api": api})
    assert response.status_code >= 500
    error = error_of(response)
    assert error["code"] == "misconfigured_vonage_credentials"
    assert "misconfigured" in error["message"]
    assert "wrong-secret" not in response.get_data(as_text=True)


def test_missing_credentials_are_misconfigured_before_anything_is_stored(send_stack):
    send_stack.configure(VONAGE_API_SECRET=None)
    response = send_stack.http.post({**SMS, "api": "sms"}, key="k")
    assert response.status_code == 500 and error_of(response)["code"] == "misconfigured"
    assert_no_vonage_call(send_stack)


@pytest.mark.parametrize(("fault", "api"), [("throttle", "sms"), ("throttle", "messages"), ("429", "sms"), ("429", "messages")])
def test_throttled_answers_are_retried(send_stack, fault, api):
    send_stack.sandbox.set_faults(f"{fault};count=2")
    response = send_stack.http.post({**SMS, "api": api})
    assert response.status_code == 202
    outcomes = [r["status"] for r in send_stack.vonage_requests(api=api)]
    assert len(outcomes) == 3  # two refused, the third accepted


@pytest.mark.parametrize("api", ["sms", "messages"])
def test_throttled_after_every_retry_is_503_with_retry_after(send_stack, api):
    send_stack.configure(VONAGE_MAX_RETRIES="1")
    send_stack.sandbox.set_faults("throttle")
    response = send_stack.http.post({**SMS, "api": api}, key="t-1")
    assert response.status_code == 503
    assert error_of(response)["code"] == "vonage_throttled"
    assert int(response.headers["Retry-After"]) >= 1
    assert len(send_stack.vonage_requests(api=api)) == 2
    # Nothing was sent: the key is free for the retry the Retry-After invites.
    send_stack.sandbox.set_faults()
    assert send_stack.http.post({**SMS, "api": api}, key="t-1").status_code == 202


@pytest.mark.parametrize("api", ["sms", "messages"])
def test_a_vonage_5xx_is_an_unknown_outcome_not_retried_and_the_key_is_held(send_stack, api):
    # Vonage takes no idempotency key: after a 5xx the message may have gone out (and been billed).
    send_stack.sandbox.set_faults("5xx=500;count=1")
    response = send_stack.http.post({**SMS, "api": api}, key="five-hundred")
    assert response.status_code == 503 and error_of(response)["code"] == "vonage_unavailable"
    assert error_of(response)["details"]["outcome"] == "unknown"
    assert len(send_stack.vonage_requests(api=api)) == 1
    record = send_stack.http.get(f"/{error_of(response)['details']['id']}").get_json()
    assert record["status"] == "pending" and record["error"]["outcome"] == "unknown"
    # The same key is held (not sent again) while the outcome is unknown.
    retry = send_stack.http.post({**SMS, "api": api}, key="five-hundred")
    assert retry.status_code == 409 and error_of(retry)["details"]["outcome"] == "unknown"
    assert len(send_stack.vonage_requests(api=api)) == 1


# ---- the deployed entry point ------------------------------------------------------------------


def test_smoke_through_functions_framework(send_stack):
    import functions_framework

    from tests.fixtures.send import SEND_TOKEN

    client = functions_framework.create_app(target="send", source="main.py").test_client()
    headers = {"Authorization": f"Bearer {SEND_TOKEN}"}
    sent = client.post("/", json=SMS, headers=headers)
    assert sent.status_code == 202 and sent.get_json()["status"] == "submitted"
    record = client.get(f"/{sent.get_json()['id']}", headers=headers)
    assert record.status_code == 200 and record.get_json()["vonage_ids"] == sent.get_json()["vonage_ids"]
