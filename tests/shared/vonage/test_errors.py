"""The Vonage error table: every row reachable through the builders, and the required mappings."""

from __future__ import annotations

import pytest

from shared.errors import VonageAPIError
from shared.vonage import errors as ve

TRIAL_HINT = "test numbers in the Vonage dashboard"


def _build_from_row(api: str, code: str, operation: str | None) -> VonageAPIError:
    """Produce the error for one table row the way VonageClient would."""
    if api == ve.SMS:
        return ve.sms_error(code, error_text="x")
    if api == ve.VERIFY_LEGACY:
        return ve.verify_legacy_error(code, operation=operation, body={"status": code, "error_text": "x"})
    if api == ve.HTTP:
        status = 503 if code == "5xx" else int(code)
        return ve.problem_error(ve.SMS, status, None, operation=operation)
    if code.startswith("#"):
        return ve.problem_error(
            api, 422, {"type": f"https://developer.vonage.com/api-errors/messages{code}"}, operation=operation
        )
    return ve.problem_error(
        api, int(code), {"title": "x", "type": "https://developer.vonage.com/api-errors#x"}, operation=operation
    )


@pytest.mark.parametrize(
    ("api", "code", "operation"),
    sorted(ve.ERROR_TABLE, key=lambda k: (k[0], k[1], k[2] or "")),
    ids=lambda value: str(value),
)
def test_every_table_row_is_reached_by_its_builder(api, code, operation):
    rule = ve.ERROR_TABLE[(api, code, operation)]
    error = _build_from_row(api, code, operation)
    assert isinstance(error, VonageAPIError)
    assert (error.code, error.status, error.retryable) == (rule.code, rule.status, rule.retryable)
    assert error.message == rule.message
    # Plain English: a sentence, no placeholders or Python reprs.
    assert error.message[0].isupper() and error.message.endswith(".")
    assert "None" not in error.message and "{" not in error.message


def test_every_rule_code_is_snake_case_and_status_is_http():
    for rule in ve.ERROR_TABLE.values():
        assert rule.code.replace("_", "").isalpha() and rule.code == rule.code.lower()
        assert 400 <= rule.status <= 599


# The mappings the brief requires, as (builder call, expected code, expected status).
REQUIRED = [
    # invalid number
    ("sms 6", lambda: ve.sms_error("6"), "invalid_phone", 422),
    ("sms 3 to", lambda: ve.sms_error("3", error_text="Invalid to address"), "invalid_phone", 422),
    ("sms 33", lambda: ve.sms_error("33"), "invalid_phone", 422),
    (
        "messages #110",
        lambda: ve.problem_error("messages", 422, {"type": "https://developer.vonage.com/api-errors/messages#110"}),
        "invalid_phone",
        422,
    ),
    (
        "legacy 3 number",
        lambda: ve.verify_legacy_error("3", body={"status": "3", "error_text": "Invalid value for param: number"}),
        "invalid_phone",
        422,
    ),
    # trial destination
    ("sms 29", lambda: ve.sms_error("29"), "destination_not_allowed", 422),
    ("legacy 29", lambda: ve.verify_legacy_error("29", body={"status": "29"}), "destination_not_allowed", 422),
    (
        "messages #1160",
        lambda: ve.problem_error("messages", 422, {"type": "https://developer.vonage.com/api-errors/messages#1160"}),
        "destination_not_allowed",
        422,
    ),
    (
        "messages 403 #1160",
        lambda: ve.problem_error("messages", 403, {"type": "https://developer.vonage.com/api-errors/messages#1160"}),
        "destination_not_allowed",
        422,
    ),
    (
        "messages 403 text",
        lambda: ve.problem_error(
            "messages", 403, {"title": "Forbidden", "detail": "Non White-listed Destination - add it using Dashboard"}
        ),
        "destination_not_allowed",
        422,
    ),
    # balance
    ("sms 9", lambda: ve.sms_error("9"), "insufficient_balance", 402),
    ("legacy 9", lambda: ve.verify_legacy_error("9", body={}), "insufficient_balance", 402),
    (
        "messages 402",
        lambda: ve.problem_error(
            "messages", 402, {"type": "https://developer.nexmo.com/api-errors/#low-balance", "title": "Low balance"}
        ),
        "insufficient_balance",
        402,
    ),
    ("verify2 402", lambda: ve.problem_error("verify2", 402, {}), "insufficient_balance", 402),
    ("sms http 402", lambda: ve.problem_error("sms", 402, None), "insufficient_balance", 402),
    # credentials
    ("sms 4", lambda: ve.sms_error("4"), "misconfigured_vonage_credentials", 500),
    ("legacy 4", lambda: ve.verify_legacy_error("4", body={}), "misconfigured_vonage_credentials", 500),
    (
        "messages 401",
        lambda: ve.problem_error("messages", 401, {"type": "https://developer.nexmo.com/api-errors/#unathorized"}),
        "misconfigured_vonage_credentials",
        500,
    ),
    (
        "verify2 401",
        lambda: ve.problem_error("verify2", 401, {"Error": "Authentication Failed"}),
        "misconfigured_vonage_credentials",
        500,
    ),
    ("sms http 401", lambda: ve.problem_error("sms", 401, None), "misconfigured_vonage_credentials", 500),
    # content and sender
    ("sms 12", lambda: ve.sms_error("12"), "text_too_long", 422),
    ("sms 7", lambda: ve.sms_error("7", error_text="Number barred."), "number_barred", 422),
    ("sms 15", lambda: ve.sms_error("15"), "invalid_sender", 422),
    ("sms 3 from", lambda: ve.sms_error("3", error_text="Invalid from address"), "invalid_sender", 422),
    (
        "messages #1120",
        lambda: ve.problem_error("messages", 422, {"type": "https://developer.vonage.com/api-errors/messages#1120"}),
        "invalid_sender",
        422,
    ),
    (
        "verify2 422 sender",
        lambda: ve.problem_error(
            "verify2",
            422,
            {
                "title": "Invalid sender",
                "detail": "The `from` parameter is invalid.",
                "type": "https://developer.nexmo.com/api-errors#invalid-param",
            },
        ),
        "invalid_sender",
        422,
    ),
    # Verify
    (
        "verify2 400 check",
        lambda: ve.problem_error("verify2", 400, {"title": "Invalid Code"}, operation="check"),
        "wrong_code",
        400,
    ),
    ("legacy 16", lambda: ve.verify_legacy_error("16", operation="check", body={}), "wrong_code", 400),
    ("verify2 410", lambda: ve.problem_error("verify2", 410, {}, operation="check"), "too_many_attempts", 410),
    ("legacy 17", lambda: ve.verify_legacy_error("17", operation="check", body={}), "too_many_attempts", 410),
    ("verify2 404", lambda: ve.problem_error("verify2", 404, {}, operation="check"), "verification_not_found", 404),
    ("legacy 6", lambda: ve.verify_legacy_error("6", operation="cancel", body={}), "verification_not_found", 404),
    ("legacy 101", lambda: ve.verify_legacy_error("101", body={}), "verification_not_found", 404),
    (
        "verify2 409 start",
        lambda: ve.problem_error(
            "verify2",
            409,
            {"detail": "Concurrent verifications to the same number are not allowed."},
            operation="start",
        ),
        "verification_in_flight",
        409,
    ),
    ("legacy 10", lambda: ve.verify_legacy_error("10", operation="start", body={}), "verification_in_flight", 409),
    ("legacy 19 cancel", lambda: ve.verify_legacy_error("19", operation="cancel", body={}), "cancel_not_allowed", 409),
    ("verify2 409 cancel", lambda: ve.problem_error("verify2", 409, {}, operation="cancel"), "cancel_not_allowed", 409),
    (
        "legacy 19 next",
        lambda: ve.verify_legacy_error("19", operation="trigger_next_event", body={}),
        "next_workflow_not_allowed",
        409,
    ),
    (
        "verify2 409 next",
        lambda: ve.problem_error("verify2", 409, {}, operation="next_workflow"),
        "next_workflow_not_allowed",
        409,
    ),
    (
        "verify2 409 check",
        lambda: ve.problem_error(
            "verify2", 409, {"detail": "The current Verify workflow step does not support a code."}, operation="check"
        ),
        "code_not_supported",
        409,
    ),
    ("legacy 7", lambda: ve.verify_legacy_error("7", body={"network": "25503"}), "destination_blocked", 403),
    ("legacy 15", lambda: ve.verify_legacy_error("15", body={}), "destination_blocked", 403),
    (
        "verify2 422",
        lambda: ve.problem_error(
            "verify2", 422, {"title": "Invalid params", "invalid_parameters": [{"name": "brand", "reason": "too long"}]}
        ),
        "invalid_request",
        422,
    ),
    (
        "messages 422 #1150",
        lambda: ve.problem_error("messages", 422, {"type": "https://developer.vonage.com/api-errors/messages#1150"}),
        "invalid_request",
        422,
    ),
    # transient, when they reach the table (the client retries them first)
    ("sms 1", lambda: ve.sms_error("1"), "vonage_throttled", 503),
    ("legacy 1", lambda: ve.verify_legacy_error("1", body={}), "vonage_throttled", 503),
    ("verify2 429", lambda: ve.problem_error("verify2", 429, {"title": "Rate Limit Hit"}), "vonage_throttled", 503),
    ("messages 503", lambda: ve.problem_error("messages", 503, None), "vonage_unavailable", 503),
    ("sms 5", lambda: ve.sms_error("5"), "vonage_unavailable", 503),
    # unmapped
    ("sms 99", lambda: ve.sms_error("99"), "vonage_error", 502),
    ("legacy 42", lambda: ve.verify_legacy_error("42", body={}), "vonage_error", 502),
    ("messages 418", lambda: ve.problem_error("messages", 418, {"title": "teapot"}), "vonage_error", 502),
    ("verify2 413", lambda: ve.problem_error("verify2", 413, None), "vonage_error", 502),
]


@pytest.mark.parametrize(("build", "code", "status"), [r[1:] for r in REQUIRED], ids=[r[0] for r in REQUIRED])
def test_required_mapping(build, code, status):
    error = build()
    assert (error.code, error.status) == (code, status)


def test_destination_not_allowed_says_how_to_allow_the_number():
    for error in (ve.sms_error("29"), ve.verify_legacy_error("29", body={})):
        assert TRIAL_HINT in error.message and "top up" in error.message


def test_cancel_not_allowed_explains_the_30_second_and_second_event_rule():
    message = ve.verify_legacy_error("19", operation="cancel", body={}).message
    assert "30 seconds" in message and "second" in message


def test_auth_failure_says_deployment_misconfigured():
    assert ve.sms_error("4").message.startswith("Deployment misconfigured")


def test_unmapped_error_names_the_api_and_code():
    error = ve.sms_error("99", error_text="Something new")
    assert "sms 99" in error.message
    assert error.details["vonage_message"] == "Something new"


def test_error_fields_carry_vonage_codes_and_body():
    body = {
        "status": "10",
        "error_text": "Concurrent verifications to the same number are not allowed",
        "request_id": "abc123",
        "network": "23410",
    }
    error = ve.verify_legacy_error("10", operation="start", body=body)
    assert error.api == "verify_legacy" and error.vonage_code == "10" and error.http_status == 200
    assert error.body["request_id"] == "abc123" and error.body["network"] == "23410"
    assert error.details["vonage_code"] == "10" and error.details["api"] == "verify_legacy"
    assert error.details["vonage_message"].startswith("Concurrent")
    assert error.to_dict()["error"]["code"] == "verification_in_flight"


def test_verify2_conflict_keeps_problem_json_with_request_id():
    problem = {
        "title": "Conflict",
        "detail": "Concurrent verifications to the same number are not allowed.",
        "request_id": "575a2054-aaaf-4405-994e-290be7b9a91f",
    }
    error = ve.problem_error("verify2", 409, problem, operation="start")
    assert error.body["request_id"] == "575a2054-aaaf-4405-994e-290be7b9a91f"
    assert error.http_status == 409 and error.vonage_code == "409"


def test_invalid_parameters_are_copied_into_details():
    problem = {
        "type": "https://developer.vonage.com/api-errors/messages#1150",
        "title": "Invalid params",
        "invalid_parameters": [{"name": "messenger.tag", "reason": "invalid value", "extra": "dropped"}, "junk"],
    }
    error = ve.problem_error("messages", 422, problem)
    assert error.details["invalid_parameters"] == [{"name": "messenger.tag", "reason": "invalid value"}]
    assert error.vonage_code == "1150"


def test_anchor_not_in_table_falls_back_to_http_status():
    error = ve.problem_error("messages", 401, {"type": "https://developer.nexmo.com/api-errors/#unathorized"})
    assert error.vonage_code == "401" and error.code == "misconfigured_vonage_credentials"


def test_vonage_text_has_phone_numbers_masked():
    error = ve.sms_error("3", error_text="Invalid to address 447700900123")
    assert "447700900123" not in str(error.details)
    assert "[number]" in error.details["vonage_message"]


def test_non_json_error_body_still_maps_by_status():
    error = ve.problem_error("messages", 402, "<html>Payment required</html>")
    assert error.code == "insufficient_balance"
    assert "vonage_message" not in error.details


def test_unexpected_response_error_is_vonage_error_502():
    error = ve.unexpected_response_error("sms", 200, "no messages array")
    assert (error.code, error.status) == ("vonage_error", 502)
    assert "no messages array" in error.message
