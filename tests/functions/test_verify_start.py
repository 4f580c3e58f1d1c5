"""verify-start over real HTTP to the local Vonage sandbox: wire formats and auth per API,
reuse of an in-flight request, every fraud limit at its threshold and after its window,
the allow-list, and Vonage's refusals mapped to clear errors."""

from __future__ import annotations

import pytest

from shared.verify.records import load_record
from tests.fixtures.verify import FR_MOBILE, GB_MOBILE, GB_PREMIUM, US_NUMBER

START = {"number": GB_MOBILE, "brand": "Acme"}


def error_of(response):
    return response.status_code, response.get_json()["error"]["code"]


# ---- wire formats and auth --------------------------------------------------------------


def test_v2_start_posts_the_workflow_with_an_application_jwt(verify_stack):
    body = {**START, "channels": ["sms", "voice"], "code_length": 6, "locale": "en-gb", "client_ref": "order42"}
    response = verify_stack.http.start(body)
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["status"] == "pending" and answer["channels"] == ["sms", "voice"] and answer["reused"] is False
    (sent,) = verify_stack.vonage_requests("verify")
    assert (sent["method"], sent["path"], sent["content_type"]) == ("POST", "/v2/verify", "application/json")
    assert sent["auth"] == "jwt"
    assert sent["fields"] == {
        "brand": "Acme",
        "workflow": [{"channel": "sms", "to": "447400123456"}, {"channel": "voice", "to": "447400123456"}],
        "code_length": 6,
        "locale": "en-gb",
        "client_ref": "order42",
    }
    assert verify_stack.sandbox.inbox("447400123456")  # the phone got its code
    record = load_record(verify_stack.store, answer["request_id"])
    assert record.status.value == "pending" and record.api == "v2" and record.masked_number == "+44********56"


def test_v2_start_uses_basic_auth_without_an_application(verify_stack):
    verify_stack.configure(VONAGE_APPLICATION_ID="", VONAGE_PRIVATE_KEY="")
    assert verify_stack.http.start(START).status_code == 202
    assert verify_stack.vonage_requests("verify")[0]["auth"] == "basic"


def test_v2_whatsapp_and_email_channels(verify_stack):
    verify_stack.configure(VONAGE_BRAND_NUMBER="447400000001")
    body = {**START, "channels": ["whatsapp", "email"], "email": "user@example.com"}
    assert verify_stack.http.start(body).status_code == 202
    assert verify_stack.vonage_requests("verify")[0]["fields"]["workflow"] == [
        {"channel": "whatsapp", "to": "447400123456", "from": "447400000001"},
        {"channel": "email", "to": "user@example.com"},
    ]


def test_legacy_start_posts_a_form_with_key_and_secret(verify_stack):
    verify_stack.configure(VERIFY_API="legacy")
    response = verify_stack.http.start({**START, "channels": ["sms"], "code_length": 6, "locale": "de-de"})
    assert response.status_code == 202
    request_id = response.get_json()["request_id"]
    (sent,) = verify_stack.vonage_requests("verify_legacy")
    assert (sent["method"], sent["path"]) == ("POST", "/verify/json")
    assert sent["content_type"] == "application/x-www-form-urlencoded"
    assert sent["auth"] == "body"
    assert sent["fields"] == {
        "number": "447400123456",
        "brand": "Acme",
        "workflow_id": "6",
        "code_length": "6",
        "lg": "de-de",
        "api_key": "abcd1234",
        "api_secret": "[redacted]",  # sent (the sandbox hides it in its log)
    }
    assert len(request_id) == 32 and load_record(verify_stack.store, request_id).api == "legacy"
    assert verify_stack.vonage_requests("verify") == []


# ---- reuse of an in-flight request ------------------------------------------------------------


@pytest.mark.parametrize(("api", "log", "refusal"), [("v2", "verify", "409"), ("legacy", "verify_legacy", "10")])
def test_second_start_reuses_the_request_in_flight(verify_stack, api, log, refusal):
    verify_stack.configure(VERIFY_API=api)
    first = verify_stack.http.start(START).get_json()
    wrong = verify_stack.http.check({"request_id": first["request_id"], "code": "582736"})
    assert error_of(wrong) == (400, "wrong_code")
    again = verify_stack.http.start(START)
    assert again.status_code == 202
    answer = again.get_json()
    assert answer["request_id"] == first["request_id"]
    assert answer["reused"] is True and answer["attempts_remaining"] == 2  # the wrong code still counts
    assert [r["outcome"] for r in verify_stack.vonage_requests(log) if r["path"].endswith(("/verify", "/verify/json"))] == [
        "202" if api == "v2" else "0",
        refusal,
    ]
    # The user still has the code that was sent first, and it works.
    code = verify_stack.code_for(GB_MOBILE)
    assert verify_stack.http.check({"request_id": answer["request_id"], "code": code}).status_code == 200


# ---- fraud guard ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "code", "requests"),
    [
        # (number, X-Forwarded-For) per start: the first two share the limited scope, the third too.
        ("VERIFY_LIMIT_PER_NUMBER", "number_rate_limited",
         [(GB_MOBILE, "10.0.0.1"), (GB_MOBILE, "10.0.0.2"), (GB_MOBILE, "10.0.0.3")]),
        ("VERIFY_LIMIT_PER_IP", "ip_rate_limited",
         [(GB_MOBILE, "10.0.0.1"), (FR_MOBILE, "10.0.0.1"), (US_NUMBER, "10.0.0.1")]),
        ("VERIFY_LIMIT_PER_PREFIX", "prefix_rate_limited",
         [("+447400123456", "10.0.0.1"), ("+447400123999", "10.0.0.2"), ("+447400123000", "10.0.0.3")]),
        ("VERIFY_LIMIT_PER_COUNTRY", "country_rate_limited",
         [("+447400123456", "10.0.0.1"), ("+447400124000", "10.0.0.2"), ("+447500123456", "10.0.0.3")]),
    ],
)
def test_each_fraud_limit_trips_at_its_threshold_and_resets_after_its_window(verify_stack, setting, code, requests):
    verify_stack.configure(**{setting: "2/60"})

    def start(number, ip):
        return verify_stack.http.start({"number": number, "brand": "Acme"}, headers={"X-Forwarded-For": ip})

    assert [start(*r).status_code for r in requests[:2]] == [202, 202]
    refused = start(*requests[2])
    assert error_of(refused) == (429, code)
    assert refused.headers["Retry-After"] == "60"
    assert len(verify_stack.vonage_requests("verify")) == 2  # the refused start never reached Vonage
    verify_stack.clock.advance(59)
    assert error_of(start(*requests[2])) == (429, code)
    verify_stack.clock.advance(1)
    assert start(*requests[2]).status_code == 202


def test_allow_list(verify_stack):
    verify_stack.configure(VERIFY_ALLOWED_COUNTRIES="GB,IE")
    refused = verify_stack.http.start({"number": US_NUMBER, "brand": "Acme"})
    assert error_of(refused) == (403, "country_not_allowed")
    assert refused.get_json()["error"]["details"] == {"country": "US"}
    assert verify_stack.http.start(START).status_code == 202
    assert len(verify_stack.vonage_requests("verify")) == 1


def test_number_that_cannot_receive_a_code_is_refused_before_vonage(verify_stack):
    assert error_of(verify_stack.http.start({"number": GB_PREMIUM, "brand": "Acme"})) == (403, "number_type_not_allowed")
    assert error_of(verify_stack.http.start({"number": "+4412", "brand": "Acme"})) == (422, "invalid_phone")
    assert verify_stack.vonage_requests("verify") == []


def test_refusals_are_logged_with_their_reason(verify_stack, caplog):
    verify_stack.configure(VERIFY_ALLOWED_COUNTRIES="GB")
    verify_stack.http.start({"number": FR_MOBILE, "brand": "Acme"})
    refusals = [r for r in caplog.records if r.getMessage() == "verification start refused"]
    assert [r.reason for r in refusals] == ["country_not_allowed"]


# ---- bad input and Vonage's refusals: clear JSON errors, never a 500 ----------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"brand": "Acme"}, (422, "invalid_phone")),
        ({"number": GB_MOBILE}, (422, "invalid_field")),
        ({**START, "channels": ["fax"]}, (422, "invalid_field")),
        ({**START, "channels": ["whatsapp"]}, (422, "channel_not_available")),
        ({**START, "code_length": 99}, (422, "invalid_field")),
        ({**START, "brand": "An 18 char brand X"}, (422, "invalid_field")),  # v2: the official SDK caps it at 16
        ({**START, "client_ref": "a" * 40}, (422, "invalid_field")),  # v2: the official SDK caps it at 16
        ({**START, "locale": "xx-xx"}, (422, "invalid_field")),
        ({**START, "channel_timeout": 10}, (422, "invalid_field")),
    ],
)
def test_bad_input_is_422(verify_stack, body, expected):
    assert error_of(verify_stack.http.start(body)) == expected
    assert verify_stack.vonage_requests("verify") == []


def test_legacy_refuses_channels_it_cannot_send(verify_stack):
    verify_stack.configure(VERIFY_API="legacy")
    assert error_of(verify_stack.http.start({**START, "channels": ["email"], "email": "a@b.co"})) == (422, "channel_not_supported")


@pytest.mark.parametrize(
    ("api", "config", "expected"),
    [
        ("v2", {"balance": "0"}, (402, "insufficient_balance")),
        ("legacy", {"balance": "0"}, (402, "insufficient_balance")),
        ("legacy", {"trial": True, "allow_list": ()}, (422, "destination_not_allowed")),
        ("v2", {"api_secret": "another-secret-999"}, (500, "misconfigured_vonage_credentials")),
        ("legacy", {"api_secret": "another-secret-999"}, (500, "misconfigured_vonage_credentials")),
    ],
)
def test_vonage_refusals_map_to_clear_errors(verify_stack, api, config, expected):
    verify_stack.configure(VERIFY_API=api, **({"VONAGE_APPLICATION_ID": "", "VONAGE_PRIVATE_KEY": ""} if "api_secret" in config else {}))
    verify_stack.sandbox.configure(**config)
    response = verify_stack.http.start(START)
    assert error_of(response) == expected
    body = response.get_json()["error"]
    assert body["message"] and body["details"]["api"] == ("verify2" if api == "v2" else "verify_legacy")
    assert verify_stack.store.query("verifications") == []


def test_smoke_through_functions_framework(verify_stack):
    import functions_framework

    client = functions_framework.create_app(target="verify_start", source="main.py").test_client()
    response = client.post("/", json=START, headers={"Authorization": "Bearer verify-test-token-0123456789"})
    assert response.status_code == 202 and response.get_json()["status"] == "pending"


@pytest.mark.parametrize(("api", "log"), [("v2", "verify"), ("legacy", "verify_legacy")])
def test_a_vonage_5xx_on_start_is_not_retried_because_a_start_is_billed(verify_stack, api, log):
    # A start is a paid POST with no idempotency key: after a 5xx Vonage may have started it.
    verify_stack.configure(VERIFY_API=api, VONAGE_MAX_RETRIES="3")
    verify_stack.sandbox.set_faults("5xx=502;count=1")
    response = verify_stack.http.start(START)
    assert error_of(response) == (503, "vonage_unavailable")
    assert response.get_json()["error"]["details"]["outcome"] == "unknown"
    assert len(verify_stack.vonage_requests(log)) == 1


@pytest.mark.parametrize(("api", "log", "wire"), [("v2", "verify", "channel_timeout"), ("legacy", "verify_legacy", "next_event_wait")])
def test_channel_timeout_goes_on_the_wire_under_each_apis_name(verify_stack, api, log, wire):
    verify_stack.configure(VERIFY_API=api)
    assert verify_stack.http.start({**START, "channel_timeout": 120}).status_code == 202
    (sent,) = [r for r in verify_stack.vonage_requests(log) if r["path"].endswith(("/verify", "/verify/json"))]
    assert str(sent["fields"][wire]) == "120"
