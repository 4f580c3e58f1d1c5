"""verify-check over real HTTP to the local Vonage sandbox: every outcome on both APIs, the
attempt cap enforced by our own store, and no code in any log line or stored record."""

from __future__ import annotations

import logging
import pathlib

import pytest

from shared.verify.callbacks import apply_verify_callback
from shared.verify.records import VerificationStatus, load_record
from tests.fixtures.verify import GB_MOBILE

START = {"number": GB_MOBILE, "brand": "Acme"}
WRONG = ["582736", "693847", "704958", "815069"]  # 6 digits (legacy codes are 4-6): never a real 4-digit code


def error_of(response):
    return response.status_code, response.get_json()["error"]["code"]


@pytest.fixture(params=["v2", "legacy"])
def api(request, verify_stack):
    verify_stack.configure(VERIFY_API=request.param)
    return request.param


def start(stack, **extra):
    response = stack.http.start({**START, **extra})
    assert response.status_code == 202
    return response.get_json()["request_id"]


def checks_sent(stack, api):
    if api == "v2":
        return [r for r in stack.vonage_requests("verify") if r["path"].startswith("/v2/verify/")]
    return [r for r in stack.vonage_requests("verify_legacy") if r["path"] == "/verify/check/json"]


def test_right_code_verifies(verify_stack, api):
    request_id = start(verify_stack)
    response = verify_stack.http.check({"request_id": request_id, "code": verify_stack.code_for(GB_MOBILE)})
    assert response.status_code == 200
    assert response.get_json() == {"request_id": request_id, "status": "verified"}
    (sent,) = checks_sent(verify_stack, api)
    if api == "v2":
        assert (sent["method"], sent["path"], sent["auth"]) == ("POST", f"/v2/verify/{request_id}", "jwt")
        assert sent["fields"] == {"code": "[redacted]"}
    else:
        assert (sent["method"], sent["auth"]) == ("POST", "body")
        assert sent["fields"]["request_id"] == request_id and "code" in sent["fields"]
    assert load_record(verify_stack.store, request_id).status is VerificationStatus.VERIFIED
    # Once verified, the same code is refused here without asking Vonage again.
    again = verify_stack.http.check({"request_id": request_id, "code": verify_stack.code_for(GB_MOBILE)})
    assert error_of(again) == (409, "already_verified")
    assert len(checks_sent(verify_stack, api)) == 1


def test_wrong_code_with_attempts_left(verify_stack, api):
    request_id = start(verify_stack)
    response = verify_stack.http.check({"request_id": request_id, "code": WRONG[0]})
    assert error_of(response) == (400, "wrong_code")
    assert response.get_json()["error"]["details"]["attempts_remaining"] == 2
    # A wrong code does not end it: the right one still works.
    ok = verify_stack.http.check({"request_id": request_id, "code": verify_stack.code_for(GB_MOBILE)})
    assert ok.status_code == 200


def test_third_wrong_code_ends_the_request(verify_stack, api):
    request_id = start(verify_stack)
    outcomes = [error_of(verify_stack.http.check({"request_id": request_id, "code": c})) for c in WRONG[:3]]
    assert outcomes == [(400, "wrong_code"), (400, "wrong_code"), (410, "too_many_attempts")]
    # Vonage itself ended it on the third (v2 410 / legacy 17): both sides agree.
    assert checks_sent(verify_stack, api)[-1]["outcome"] == ("410" if api == "v2" else "17")
    right = verify_stack.http.check({"request_id": request_id, "code": verify_stack.code_for(GB_MOBILE)})
    assert error_of(right) == (410, "too_many_attempts")
    assert len(checks_sent(verify_stack, api)) == 3
    assert load_record(verify_stack.store, request_id).status is VerificationStatus.FAILED


def test_our_store_caps_attempts_before_vonage(verify_stack, api):
    # GIVEN a cap of 2, below Vonage's 3
    verify_stack.configure(VERIFY_API=api, VERIFY_MAX_ATTEMPTS="2")
    request_id = start(verify_stack)
    # WHEN someone guesses four times, then even tries the right code
    outcomes = [error_of(verify_stack.http.check({"request_id": request_id, "code": c})) for c in WRONG]
    right = verify_stack.http.check({"request_id": request_id, "code": verify_stack.code_for(GB_MOBILE)})
    # THEN Vonage saw only two checks: the second wrong one ended the verification here
    assert outcomes == [(400, "wrong_code")] + [(410, "too_many_attempts")] * 3
    assert error_of(right) == (410, "too_many_attempts")
    assert len(checks_sent(verify_stack, api)) == 2
    record = load_record(verify_stack.store, request_id)
    assert (record.status, record.attempts) == (VerificationStatus.FAILED, 2)


def test_unknown_request_is_404(verify_stack, api):
    unknown = "c11236f4-00bf-4b89-84ba-88b25df97315" if api == "v2" else "abcdef0123456789abcdef0123456789"
    assert error_of(verify_stack.http.check({"request_id": unknown, "code": "1234"})) == (404, "verification_not_found")
    assert checks_sent(verify_stack, api) == []


def test_expired_here_is_410_without_asking_vonage(verify_stack, api):
    verify_stack.configure(VERIFY_API=api, VERIFY_TTL_SECONDS="60")
    request_id = start(verify_stack)
    code = verify_stack.code_for(GB_MOBILE)
    verify_stack.clock.advance(60)
    assert error_of(verify_stack.http.check({"request_id": request_id, "code": code})) == (410, "verification_expired")
    assert checks_sent(verify_stack, api) == []


def test_expired_at_vonage_first_is_410_and_ends_the_record(verify_stack):
    # Vonage's v2 request ends after both channels time out (180 s each); ours would last 600 s.
    request_id = start(verify_stack, channels=["sms"])
    code = verify_stack.code_for(GB_MOBILE)
    verify_stack.clock.advance(181)
    verify_stack.sandbox.tick()
    response = verify_stack.http.check({"request_id": request_id, "code": code})
    assert error_of(response) == (410, "verification_expired")
    assert response.get_json()["error"]["details"]["vonage_code"] == "404"
    assert load_record(verify_stack.store, request_id).status is VerificationStatus.EXPIRED


@pytest.mark.parametrize(
    ("body", "field"),
    [({"code": "1234"}, "request_id"), ({"request_id": "abc"}, "code"), ({"request_id": "abc", "code": 1234}, "code")],
)
def test_bad_input_is_422(verify_stack, body, field):
    response = verify_stack.http.check(body)
    assert response.status_code == 422 and response.get_json()["error"]["details"]["field"] == field


def test_sandbox_callbacks_update_the_record(verify_stack, webhook_receiver):
    """The Verify v2 callbacks Vonage (here the sandbox) sends are understood by the record."""
    request_id = start(verify_stack)
    verify_stack.http.check({"request_id": request_id, "code": verify_stack.code_for(GB_MOBILE)})
    verify_stack.sandbox.wait_idle()
    callbacks = [r.json for r in webhook_receiver.on("/verify")]
    assert {c["type"] for c in callbacks} >= {"summary"}
    for payload in callbacks:
        assert apply_verify_callback(verify_stack.store, payload) is True
    record = load_record(verify_stack.store, request_id)
    assert record.status is VerificationStatus.VERIFIED
    assert any(e["type"] == "summary" and e["status"] == "completed" for e in record.events)


def test_no_log_line_or_stored_record_contains_a_code(verify_stack, api, caplog, tmp_path):
    from shared.log import JsonFormatter

    caplog.set_level(logging.DEBUG)
    verify_stack.configure(VERIFY_API=api, VERIFY_MAX_ATTEMPTS="5")
    request_id = start(verify_stack, code_length=10 if api == "v2" else 6)
    code = verify_stack.code_for(GB_MOBILE)
    typed = [WRONG[0], WRONG[1], code]
    for attempt in typed:
        verify_stack.http.check({"request_id": request_id, "code": attempt})
    verify_stack.http.start(START)  # a reuse, for good measure
    verify_stack.sandbox.wait_idle()
    # Every log line as the JSON formatter writes it, every string in every stored document,
    # and the database file itself. (Strings only: a 6-digit code can legitimately appear
    # inside a float timestamp, which is not the code being stored.)
    formatter = JsonFormatter()
    ours = [r for r in caplog.records if not r.name.startswith("sandbox")]
    assert ours, "nothing was logged: the check below would prove nothing"
    lines = [formatter.format(r) for r in ours]
    strings = [s for c in ("verifications", "ratelimits") for doc in verify_stack.store.query(c, limit=1000) for s in _strings(doc)]
    assert any(request_id in s for s in strings)
    db_bytes = b"".join(p.read_bytes() for p in pathlib.Path(tmp_path).glob("verify-stack.sqlite3*"))
    for secret in typed:
        assert not any(secret in line for line in lines), "a code reached a log line"
        assert not any(secret in s for s in strings), "a code reached a stored record"
        assert f'"{secret}'.encode() not in db_bytes and f'{secret}"'.encode() not in db_bytes


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_smoke_through_functions_framework(verify_stack):
    import functions_framework

    request_id = start(verify_stack)
    client = functions_framework.create_app(target="verify_check", source="main.py").test_client()
    response = client.post(
        "/",
        json={"request_id": request_id, "code": verify_stack.code_for(GB_MOBILE)},
        headers={"Authorization": "Bearer verify-test-token-0123456789"},
    )
    assert response.status_code == 200 and response.get_json()["status"] == "verified"
