"""verify-cancel over real HTTP to the local Vonage sandbox: Vonage's cancel window (not in the
first 30 seconds, not after the second event) explained, both APIs' wire calls, idempotence."""

from __future__ import annotations

import pytest

from shared.verify.records import VerificationStatus, load_record
from tests.fixtures.verify import GB_MOBILE

START = {"number": GB_MOBILE, "brand": "Acme"}


def error_of(response):
    return response.status_code, response.get_json()["error"]["code"]


@pytest.fixture(params=["v2", "legacy"])
def api(request, verify_stack):
    verify_stack.configure(VERIFY_API=request.param)
    return request.param


def start(stack):
    response = stack.http.start(START)
    assert response.status_code == 202
    return response.get_json()["request_id"]


def cancels_sent(stack, api):
    if api == "v2":
        return [r for r in stack.vonage_requests("verify") if r["method"] == "DELETE"]
    return [r for r in stack.vonage_requests("verify_legacy") if r["path"] == "/verify/control/json"]


def test_cancel_in_the_first_30_seconds_is_explained_without_asking_vonage(verify_stack, api):
    request_id = start(verify_stack)
    verify_stack.clock.advance(12)
    response = verify_stack.http.cancel({"request_id": request_id})
    assert error_of(response) == (409, "cancel_not_allowed")
    assert response.headers["Retry-After"] == "18"
    message = response.get_json()["error"]["message"]
    assert "30 seconds" in message and "second message or call" in message
    assert cancels_sent(verify_stack, api) == []


def test_cancel_after_30_seconds(verify_stack, api):
    request_id = start(verify_stack)
    verify_stack.clock.advance(30)
    response = verify_stack.http.cancel({"request_id": request_id})
    assert response.status_code == 200
    assert response.get_json() == {"request_id": request_id, "status": "cancelled"}
    (sent,) = cancels_sent(verify_stack, api)
    if api == "v2":
        assert (sent["path"], sent["auth"], sent["status"]) == (f"/v2/verify/{request_id}", "jwt", 204)
    else:
        assert sent["method"] == "POST" and sent["auth"] == "body"
        assert {k: sent["fields"][k] for k in ("request_id", "cmd")} == {"request_id": request_id, "cmd": "cancel"}
    assert load_record(verify_stack.store, request_id).status is VerificationStatus.CANCELLED
    # The cancelled code no longer works, and cancelling again answers the same.
    check = verify_stack.http.check({"request_id": request_id, "code": verify_stack.code_for(GB_MOBILE)})
    assert error_of(check) == (410, "verification_cancelled")
    assert verify_stack.http.cancel({"request_id": request_id}).get_json()["status"] == "cancelled"
    assert len(cancels_sent(verify_stack, api)) == 1
    # And the number is free for a new verification.
    assert verify_stack.http.start(START).get_json()["reused"] is False


def test_cancel_after_the_second_event_is_refused_by_vonage_and_explained(verify_stack, api):
    request_id = start(verify_stack)
    # The first channel (SMS) times out and the second (a voice call) begins: v2 after
    # channel_timeout (180 s), legacy after next_event_wait (300 s).
    verify_stack.clock.advance(181 if api == "v2" else 301)
    verify_stack.sandbox.tick()
    response = verify_stack.http.cancel({"request_id": request_id})
    assert error_of(response) == (409, "cancel_not_allowed")
    body = response.get_json()["error"]
    assert "second message or call" in body["message"]
    assert body["details"]["vonage_code"] == ("409" if api == "v2" else "19")
    assert len(cancels_sent(verify_stack, api)) == 1
    assert load_record(verify_stack.store, request_id).status is VerificationStatus.PENDING
    # Still in flight: the code works.
    ok = verify_stack.http.check({"request_id": request_id, "code": verify_stack.code_for(GB_MOBILE)})
    assert ok.status_code == 200


def test_cancel_by_path_with_delete(verify_stack):
    request_id = start(verify_stack)
    verify_stack.clock.advance(31)
    response = verify_stack.http.cancel(method="DELETE", path=f"/{request_id}")
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"


def test_cancel_of_a_finished_verification(verify_stack, api):
    request_id = start(verify_stack)
    verify_stack.http.check({"request_id": request_id, "code": verify_stack.code_for(GB_MOBILE)})
    verify_stack.clock.advance(31)
    response = verify_stack.http.cancel({"request_id": request_id})
    assert error_of(response) == (409, "verification_finished")
    assert response.get_json()["error"]["details"]["status"] == "verified"
    assert cancels_sent(verify_stack, api) == []


def test_cancel_unknown_or_malformed(verify_stack):
    assert error_of(verify_stack.http.cancel({"request_id": "c11236f4-00bf-4b89-84ba-88b25df97315"})) == (404, "verification_not_found")
    assert error_of(verify_stack.http.cancel({"request_id": "not/an id"})) == (422, "invalid_field")
    assert error_of(verify_stack.http.cancel({})) == (422, "invalid_field")
    assert error_of(verify_stack.http.cancel(data="{", content_type="application/json")) == (400, "invalid_json")


def test_smoke_through_functions_framework(verify_stack):
    import functions_framework

    request_id = start(verify_stack)
    verify_stack.clock.advance(31)
    client = functions_framework.create_app(target="verify_cancel", source="main.py").test_client()
    response = client.delete(f"/{request_id}", headers={"Authorization": "Bearer verify-test-token-0123456789"})
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
