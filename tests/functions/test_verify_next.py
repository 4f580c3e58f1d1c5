"""verify-next over real HTTP to the local Vonage sandbox: moving a verification to its next
channel (v2 next_workflow, legacy trigger_next_event), the refusals explained, access like
verify-check; and the v2 workflows silent_auth and whatsapp_interactive end to end."""

from __future__ import annotations

import httpx
import pytest

from shared.verify.records import VerificationStatus, load_record, update_record
from tests.fixtures.verify import GB_MOBILE

START = {"number": GB_MOBILE, "brand": "Acme"}
WIRE = GB_MOBILE.removeprefix("+")


def error_of(response):
    return response.status_code, response.get_json()["error"]["code"]


@pytest.fixture(params=["v2", "legacy"])
def api(request, verify_stack):
    verify_stack.configure(VERIFY_API=request.param)
    return request.param


def start(stack, **extra):
    response = stack.http.start({**START, **extra})
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()


def moves_sent(stack, api):
    if api == "v2":
        return [r for r in stack.vonage_requests("verify") if r["path"].endswith("/next_workflow")]
    return [r for r in stack.vonage_requests("verify_legacy") if r["path"] == "/verify/control/json"]


def test_next_moves_on_to_the_next_channel_and_the_code_still_works(verify_stack, api):
    request_id = start(verify_stack)["request_id"]  # [sms, voice]
    response = verify_stack.http.next({"request_id": request_id})
    assert response.status_code == 200
    assert response.get_json() == {"request_id": request_id, "status": "pending", "moved_on": True}
    (sent,) = moves_sent(verify_stack, api)
    if api == "legacy":
        assert sent["fields"]["cmd"] == "trigger_next_event" and sent["fields"]["request_id"] == request_id
    else:
        assert sent["path"] == f"/v2/verify/{request_id}/next_workflow"
    assert verify_stack.sandbox.inbox(WIRE)[0]["channel"] == "voice"  # the call went out
    code = verify_stack.code_for(WIRE)
    assert verify_stack.http.check({"request_id": request_id, "code": code}).status_code == 200


def test_next_with_no_channel_left_is_409_explained(verify_stack, api):
    request_id = start(verify_stack)["request_id"]
    assert verify_stack.http.next({"request_id": request_id}).status_code == 200
    response = verify_stack.http.next({"request_id": request_id})
    assert error_of(response) == (409, "next_workflow_not_allowed")
    assert "no further channel" in response.get_json()["error"]["message"]
    assert load_record(verify_stack.store, request_id).status is VerificationStatus.PENDING


def test_next_on_a_finished_or_unknown_verification_never_reaches_vonage(verify_stack, api):
    request_id = start(verify_stack)["request_id"]
    update_record(verify_stack.store, request_id,
                  lambda r: r.finish(VerificationStatus.VERIFIED, now=r.created_at + 1, reason="test"))
    assert error_of(verify_stack.http.next({"request_id": request_id})) == (409, "verification_finished")
    unknown = "c11236f4-00bf-4b89-84ba-0123456789ab"
    assert error_of(verify_stack.http.next({"request_id": unknown})) == (404, "verification_not_found")
    assert error_of(verify_stack.http.next({"request_id": "not!an!id"}))[0] == 422
    assert moves_sent(verify_stack, api) == []


def test_next_takes_the_request_id_in_the_path(verify_stack):
    request_id = start(verify_stack)["request_id"]
    assert verify_stack.http.next(path=f"/{request_id}").status_code == 200


def test_next_needs_a_token_unless_public_like_verify_check(verify_stack):
    request_id = start(verify_stack)["request_id"]
    assert error_of(verify_stack.http.next({"request_id": request_id}, token=None))[0] == 401
    assert error_of(verify_stack.http.next({"request_id": request_id}, token="wrong-token-0123456789"))[0] == 401
    verify_stack.configure(VERIFY_PUBLIC="true", CORS_ORIGINS="https://shop.example", VERIFY_ALLOWED_COUNTRIES="GB", VERIFY_BRAND="Acme")
    refused = verify_stack.http.next({"request_id": request_id}, token=None, headers={"Origin": "https://evil.example"})
    assert error_of(refused) == (403, "origin_not_allowed")
    allowed = verify_stack.http.next({"request_id": request_id}, token=None, headers={"Origin": "https://shop.example"})
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert len(moves_sent(verify_stack, "v2")) == 1


# ---- Verify v2 workflows: silent_auth and whatsapp_interactive ----------------------------------


def test_silent_auth_first_then_sms_returns_the_check_url_whose_code_verifies(verify_stack):
    answer = start(verify_stack, channels=["silent_auth", "sms"])
    assert answer["channels"] == ["silent_auth", "sms"] and answer["check_url"].endswith("/silent-auth/redirect")
    (sent,) = [r for r in verify_stack.vonage_requests("verify") if r["path"] == "/v2/verify"]
    assert sent["fields"]["workflow"] == [{"channel": "silent_auth", "to": WIRE}, {"channel": "sms", "to": WIRE}]
    # the user's device opens the check_url over its mobile data and gets the code
    with httpx.Client(trust_env=False) as device:
        code = device.get(answer["check_url"]).json()["code"]
    checked = verify_stack.http.check({"request_id": answer["request_id"], "code": code})
    assert checked.status_code == 200 and checked.get_json()["status"] == "verified"


def test_silent_auth_falls_back_to_sms_on_next(verify_stack):
    answer = start(verify_stack, channels=["silent_auth", "sms"])
    assert verify_stack.http.next({"request_id": answer["request_id"]}).status_code == 200
    assert verify_stack.sandbox.inbox(WIRE)[0]["channel"] == "sms"


def test_silent_auth_without_coverage_is_a_clear_refusal(verify_stack):
    verify_stack.sandbox.configure(silent_auth_coverage=False)
    response = verify_stack.http.start({**START, "channels": ["silent_auth", "sms"]})
    assert error_of(response) == (422, "silent_auth_unavailable")
    assert verify_stack.store.query("verifications") == []


@pytest.mark.parametrize(
    ("api", "channels", "code"),
    [
        ("v2", ["sms", "silent_auth"], "invalid_field"),  # Vonage wants it first
        ("legacy", ["silent_auth"], "channel_not_supported"),
        ("legacy", ["whatsapp_interactive"], "channel_not_supported"),
    ],
)
def test_silent_auth_and_whatsapp_interactive_are_refused_where_vonage_cannot_run_them(verify_stack, api, channels, code):
    verify_stack.configure(VERIFY_API=api)
    assert error_of(verify_stack.http.start({**START, "channels": channels})) == (422, code)
    assert verify_stack.vonage_requests("verify") == [] and verify_stack.vonage_requests("verify_legacy") == []


def test_whatsapp_interactive_needs_no_brand_number(verify_stack):
    answer = start(verify_stack, channels=["whatsapp_interactive", "sms"])
    (sent,) = [r for r in verify_stack.vonage_requests("verify") if r["path"] == "/v2/verify"]
    assert sent["fields"]["workflow"][0] == {"channel": "whatsapp_interactive", "to": WIRE}
    assert verify_stack.sandbox.inbox(WIRE)[0]["channel"] == "whatsapp_interactive"
    code = verify_stack.code_for(WIRE)
    assert verify_stack.http.check({"request_id": answer["request_id"], "code": code}).status_code == 200
