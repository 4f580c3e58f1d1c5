"""Verify v2 as the sandbox serves it: codes in the inbox, Vonage's rules, signed callbacks."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx

from shared.vonage.signatures import verify_webhook_jwt
from tests.fixtures.sandbox import APPLICATION_ID, SANDBOX_API_KEY, SANDBOX_SIGNATURE_SECRET
from tests.sandbox._helpers import BASIC, TO, app_token, client, post_json


def _start(url: str, **overrides) -> httpx.Response:  # type: ignore[no-untyped-def]
    body = {"brand": "ACME", "workflow": [{"channel": "sms", "to": TO}]}
    body.update(overrides)
    return post_json(url, "/v2/verify", body)


def _check(url: str, request_id: str, code: str) -> httpx.Response:
    return post_json(url, f"/v2/verify/{request_id}", {"code": code})


def _delete(url: str, request_id: str) -> httpx.Response:
    with client() as http:
        return http.delete(f"{url}/v2/verify/{request_id}", headers={"Authorization": BASIC})


def _wrong(code: str) -> str:
    return "0" * len(code) if code != "0" * len(code) else "1" * len(code)


def test_start_sends_a_code_to_the_inbox_and_check_completes(sandbox) -> None:
    response = _start(sandbox.url)
    assert response.status_code == 202
    request_id = response.json()["request_id"]
    entry = sandbox.inbox(TO)[0]
    assert entry["request_id"] == request_id and entry["channel"] == "sms"
    assert entry["code"] in entry["text"] and len(entry["code"]) == 4
    checked = _check(sandbox.url, request_id, entry["code"])
    assert checked.status_code == 200
    assert checked.json() == {"request_id": request_id, "status": "completed"}
    assert sandbox.balance == "9.90000000"


def test_code_length_is_honoured(sandbox) -> None:
    _start(sandbox.url, code_length=8)
    assert len(sandbox.last_code(TO)) == 8


def test_inbox_is_readable_over_http_latest_first(sandbox) -> None:
    first = _start(sandbox.url).json()["request_id"]
    _check(sandbox.url, first, sandbox.last_code(TO))
    second = _start(sandbox.url).json()["request_id"]
    with client() as http:
        messages = http.get(f"{sandbox.url}/_sandbox/inbox", params={"to": f"+{TO}"}).json()["messages"]
    assert [m["request_id"] for m in messages] == [second, first]


def test_completed_request_sends_signed_event_and_summary_callbacks(sandbox, webhook_receiver, rsa_private_pem) -> None:
    token = app_token(rsa_private_pem)
    request_id = post_json(
        sandbox.url, "/v2/verify", {"brand": "ACME", "workflow": [{"channel": "sms", "to": TO}], "client_ref": "r1"},
        authorization=token,
    ).json()["request_id"]
    post_json(sandbox.url, f"/v2/verify/{request_id}", {"code": sandbox.last_code(TO)}, authorization=token)
    hooks = webhook_receiver.wait_for(2, where=lambda r: r.path == "/verify")
    event, summary = (h.json for h in hooks)
    assert event["type"] == "event" and event["status"] == "completed" and event["channel"] == "sms"
    assert summary["type"] == "summary" and summary["status"] == "completed"
    assert summary["workflow"][0]["channel"] == "sms" and summary["workflow"][0]["status"] == "completed"
    assert event["client_ref"] == summary["client_ref"] == "r1"
    for hook in hooks:
        claims = verify_webhook_jwt(
            hook.body, hook.headers["authorization"], secret=SANDBOX_SIGNATURE_SECRET, api_key=SANDBOX_API_KEY
        )
        assert claims["application_id"] == APPLICATION_ID


def test_three_wrong_codes_end_the_request(sandbox, webhook_receiver) -> None:
    request_id = _start(sandbox.url).json()["request_id"]
    wrong = _wrong(sandbox.last_code(TO))
    assert [_check(sandbox.url, request_id, wrong).status_code for _ in range(2)] == [400, 400]
    third = _check(sandbox.url, request_id, wrong)
    assert third.status_code == 410
    assert third.json()["detail"] == "An incorrect code has been provided too many times. Workflow terminated."
    assert _check(sandbox.url, request_id, sandbox.last_code(TO)).status_code == 404
    summary = webhook_receiver.wait_for(1, where=lambda r: r.json.get("type") == "summary")[0].json
    assert summary["status"] == "failed"


def test_one_request_in_flight_per_number(sandbox) -> None:
    first = _start(sandbox.url).json()["request_id"]
    second = _start(sandbox.url)
    assert second.status_code == 409
    assert second.json()["request_id"] == first
    assert _start(sandbox.url, workflow=[{"channel": "sms", "to": "447700900002"}]).status_code == 202


def test_already_verified_is_404(sandbox) -> None:
    request_id = _start(sandbox.url).json()["request_id"]
    code = sandbox.last_code(TO)
    assert _check(sandbox.url, request_id, code).status_code == 200
    again = _check(sandbox.url, request_id, code)
    assert again.status_code == 404
    assert "verified already" in again.json()["detail"]
    assert _start(sandbox.url).status_code == 202  # the number is free again


def test_cancel_only_after_the_configured_delay(sandbox_factory) -> None:
    now = [time.time()]
    box = sandbox_factory(verify_cancel_after=30.0, clock=lambda: now[0])
    request_id = _start(box.url).json()["request_id"]
    early = _delete(box.url, request_id)
    assert early.status_code == 409
    now[0] += 30
    assert _delete(box.url, request_id).status_code == 204
    assert _check(box.url, request_id, box.last_code(TO)).status_code == 404
    assert _delete(box.url, request_id).status_code == 404


def test_cancel_not_allowed_after_the_second_event(sandbox) -> None:
    workflow = [{"channel": "sms", "to": TO}, {"channel": "voice", "to": TO}]
    request_id = _start(sandbox.url, workflow=workflow).json()["request_id"]
    assert post_json(sandbox.url, f"/v2/verify/{request_id}/next_workflow", None).status_code == 200
    assert sandbox.inbox(TO)[0]["channel"] == "voice"
    assert _delete(sandbox.url, request_id).status_code == 409


def test_next_workflow_without_a_next_channel_is_409(sandbox) -> None:
    request_id = _start(sandbox.url).json()["request_id"]
    response = post_json(sandbox.url, f"/v2/verify/{request_id}/next_workflow", None)
    assert response.status_code == 409


def test_timed_out_channel_hands_over_and_the_request_expires(sandbox_factory, webhook_receiver) -> None:
    now = [time.time()]
    box = sandbox_factory(verify_callback_url=f"{webhook_receiver.url}/verify", clock=lambda: now[0])
    workflow = [{"channel": "sms", "to": TO}, {"channel": "whatsapp", "to": TO, "from": "447700900000"}]
    request_id = _start(box.url, workflow=workflow, channel_timeout=60).json()["request_id"]
    now[0] += 61
    box.tick()
    assert box.inbox(TO)[0]["channel"] == "whatsapp"
    now[0] += 60
    box.tick()
    assert _check(box.url, request_id, box.last_code(TO)).status_code == 404
    summary = webhook_receiver.wait_for(1)[0].json
    assert summary["type"] == "summary" and summary["status"] == "expired"
    assert [step["status"] for step in summary["workflow"]] == ["expired", "expired"]


def test_invalid_start_is_422(sandbox) -> None:
    response = _start(sandbox.url, brand="A{B}", code_length=3, workflow=[{"channel": "sms", "to": "+4477"}])
    assert response.status_code == 422
    names = {p["name"] for p in response.json()["invalid_parameters"]}
    assert names == {"brand", "code_length", "workflow[0].to"}


def test_silent_auth_without_network_coverage_is_412(sandbox_factory) -> None:
    box = sandbox_factory(silent_auth_coverage=False)
    response = _start(box.url, workflow=[{"channel": "silent_auth", "to": TO}, {"channel": "sms", "to": TO}])
    assert response.status_code == 412


def test_silent_auth_gives_a_check_url_whose_code_completes_the_request(sandbox) -> None:
    response = _start(sandbox.url, workflow=[{"channel": "silent_auth", "to": TO}, {"channel": "sms", "to": TO}])
    assert response.status_code == 202
    request_id, check_url = response.json()["request_id"], response.json()["check_url"]
    assert check_url == f"{sandbox.url}/v2/verify/{request_id}/silent-auth/redirect"
    assert sandbox.inbox(TO) == []  # nothing is sent: the device fetches the code over mobile data
    with client() as http:
        redirect = http.get(check_url)
    assert redirect.status_code == 200 and redirect.json()["request_id"] == request_id
    checked = _check(sandbox.url, request_id, redirect.json()["code"])
    assert checked.status_code == 200 and checked.json()["status"] == "completed"


def test_silent_auth_must_come_first_and_its_check_url_ends_with_its_step(sandbox) -> None:
    late = _start(sandbox.url, workflow=[{"channel": "sms", "to": TO}, {"channel": "silent_auth", "to": TO}])
    assert late.status_code == 422
    assert {p["name"] for p in late.json()["invalid_parameters"]} == {"workflow[1].channel"}
    started = _start(sandbox.url, workflow=[{"channel": "silent_auth", "to": TO}, {"channel": "sms", "to": TO}]).json()
    assert post_json(sandbox.url, f"/v2/verify/{started['request_id']}/next_workflow", {}).status_code == 200
    assert [e["channel"] for e in sandbox.inbox(TO)] == ["sms"]  # only the fallback got a code
    with client() as http:
        assert http.get(started["check_url"]).status_code == 404


def test_whatsapp_interactive_sends_the_code_without_a_from(sandbox) -> None:
    response = _start(sandbox.url, workflow=[{"channel": "whatsapp_interactive", "to": TO}])
    assert response.status_code == 202
    entry = sandbox.inbox(TO)[0]
    assert entry["channel"] == "whatsapp_interactive" and entry["request_id"] == response.json()["request_id"]


def test_low_balance_is_402(sandbox_factory) -> None:
    box = sandbox_factory(balance=Decimal("0.05"))
    assert _start(box.url).status_code == 402


def test_unknown_request_is_404_and_credentials_are_checked(sandbox) -> None:
    assert _check(sandbox.url, "nope", "1234").status_code == 404
    with client() as http:
        assert http.post(f"{sandbox.url}/v2/verify", json={}).status_code == 401


def test_typed_codes_never_reach_the_request_log(sandbox) -> None:
    request_id = _start(sandbox.url).json()["request_id"]
    code = sandbox.last_code(TO)
    _check(sandbox.url, request_id, code)
    checks = [r for r in sandbox.requests(api="verify") if r["path"].endswith(request_id)]
    assert checks[0]["fields"] == {"code": "[redacted]"}


def test_rate_limit_is_429_with_headers(sandbox_factory) -> None:
    frozen = time.time()
    box = sandbox_factory(rate_limit=2, clock=lambda: frozen)
    assert _start(box.url).status_code == 202
    assert _start(box.url, workflow=[{"channel": "sms", "to": "447700900002"}]).status_code == 202
    throttled = _start(box.url, workflow=[{"channel": "sms", "to": "447700900003"}])
    assert throttled.status_code == 429
    assert throttled.headers["X-RateLimit-Limit"] == "2"
    assert throttled.headers["Retry-After"] == "1"
