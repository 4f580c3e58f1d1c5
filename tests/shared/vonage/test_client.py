"""VonageClient against httpx.MockTransport: exact outgoing requests, mapping, retries."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import jwt as pyjwt
import pytest

from shared.config import Settings
from shared.errors import (
    ConfigError,
    InvalidPhoneError,
    ValidationError,
    VonageAPIError,
    VonageThrottledError,
    VonageTimeoutError,
    VonageUnavailableError,
)
from shared.vonage.auth import ApplicationJWT
from shared.vonage.client import DEFAULT_TIMEOUT, MessageSubmission, SmsSubmission, VonageClient

API_KEY = "qwerasdf"
API_SECRET = "1234qwerasdfzxcv"
BASIC = "Basic cXdlcmFzZGY6MTIzNHF3ZXJhc2Rmenhjdg=="  # vonage-api.md section 12
APP_ID = "11111111-2222-4333-8444-555555555555"
TO = "447700900123"
REQUEST_ID = "c11236f4-00bf-4b89-84ba-88b25df97315"
LEGACY_ID = "abcdef0123456789abcdef0123456789"


class Recorder:
    """A MockTransport handler that answers from a script and keeps every request."""

    def __init__(self, *responses: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]) -> None:
        self.script = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise type(item)(str(item), request=request)
        if callable(item):
            return item(request)
        return item

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def form(self, index: int = -1) -> dict[str, str]:
        parsed = parse_qs(self.requests[index].content.decode(), keep_blank_values=True, strict_parsing=True)
        assert all(len(v) == 1 for v in parsed.values()), "a form field was sent twice"
        return {key: values[0] for key, values in parsed.items()}

    def json(self, index: int = -1):
        return json.loads(self.requests[index].content)


class Sleeps(list):
    """A no-op sleep that remembers each delay."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def key_settings() -> Settings:
    return Settings(api_key=API_KEY, api_secret=API_SECRET)


@pytest.fixture
def app_settings(rsa_private_pem) -> Settings:
    return Settings(api_key=API_KEY, api_secret=API_SECRET, application_id=APP_ID, private_key=rsa_private_pem)


def make(settings: Settings, recorder: Recorder, **kwargs) -> tuple[VonageClient, Sleeps]:
    sleeps = Sleeps()
    kwargs.setdefault("max_retries", 3)
    client = VonageClient(settings, transport=httpx.MockTransport(recorder), sleep=sleeps, **kwargs)
    return client, sleeps


def sms_ok(*parts: dict) -> httpx.Response:
    return httpx.Response(200, json={"message-count": str(len(parts)), "messages": list(parts)})


def part(status: str = "0", **extra) -> dict:
    base = {"to": TO, "status": status}
    if status == "0":
        base.update(
            {
                "message-id": f"id-{len(extra)}",
                "remaining-balance": "15.5",
                "message-price": "0.0333",
                "network": "23410",
            }
        )
    else:
        base["error-text"] = "Failure"
    base.update(extra)
    return base


# ---- SMS API ---------------------------------------------------------------------------------


def test_send_sms_sends_the_exact_form_with_basic_auth(key_settings):
    recorder = Recorder(sms_ok(part("0", **{"message-id": "m-1", "client-ref": "ref-1"})))
    client, _ = make(key_settings, recorder)

    result = client.send_sms(to="+" + TO, sender="Acme", text="Hello & welcome = yes")

    request = recorder.last
    assert request.method == "POST"
    assert str(request.url) == "https://rest.nexmo.com/sms/json"
    assert request.headers["Authorization"] == BASIC
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert recorder.form() == {
        "from": "Acme",
        "to": TO,
        "text": "Hello & welcome = yes",
        "status-report-req": "true",
    }
    assert isinstance(result, SmsSubmission)
    assert result.accepted and result.message_ids == ("m-1",)
    assert result.parts[0].price == "0.0333" and result.parts[0].network == "23410"
    assert result.remaining_balance == "15.5"


def test_send_sms_optional_fields(key_settings):
    recorder = Recorder(sms_ok(part("0")))
    client, _ = make(key_settings, recorder)
    client.send_sms(
        to=TO,
        sender="+447700900000",
        text="Ünïcödé ✓",
        unicode=True,
        client_ref="order-42",
        ttl_ms=3_600_000,
        callback="https://example.com/status",
        status_report=False,
    )
    assert recorder.form() == {
        "from": "447700900000",
        "to": TO,
        "text": "Ünïcödé ✓",
        "type": "unicode",
        "client-ref": "order-42",
        "ttl": "3600000",
        "callback": "https://example.com/status",
        "status-report-req": "false",
    }


def test_send_sms_never_sets_type_text_or_credentials_in_the_body(key_settings):
    recorder = Recorder(sms_ok(part("0")))
    client, _ = make(key_settings, recorder)
    client.send_sms(to=TO, sender="Acme", text="plain")
    form = recorder.form()
    assert "type" not in form
    assert "api_key" not in form and "api_secret" not in form


def test_send_sms_multipart_result(key_settings):
    recorder = Recorder(
        sms_ok(
            part("0", **{"message-id": "a", "remaining-balance": "10.0"}),
            part("0", **{"message-id": "b", "remaining-balance": "9.9"}),
        )
    )
    client, _ = make(key_settings, recorder)
    result = client.send_sms(to=TO, sender="Acme", text="x" * 400)
    assert result.accepted and result.message_ids == ("a", "b")
    assert result.remaining_balance == "9.9"
    assert result.failed_parts == ()


def test_send_sms_partial_failure_is_returned_for_the_caller_to_decide(key_settings):
    recorder = Recorder(sms_ok(part("0", **{"message-id": "a"}), part("1")))
    client, sleeps = make(key_settings, recorder)
    result = client.send_sms(to=TO, sender="Acme", text="x" * 400)
    assert not result.accepted
    assert result.message_ids == ("a",)
    assert [p.status for p in result.failed_parts] == ["1"]
    assert len(recorder.requests) == 1 and sleeps == []


def test_send_sms_all_parts_failed_raises_mapped_first_failure(key_settings):
    recorder = Recorder(sms_ok({"status": "7", "error-text": "Number barred."}, {"status": "9", "error-text": "Quota"}))
    client, _ = make(key_settings, recorder)
    with pytest.raises(VonageAPIError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    error = info.value
    assert (error.code, error.status, error.api, error.vonage_code) == ("number_barred", 422, "sms", "7")
    assert error.body["messages"][0]["status"] == "7"
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("status", "code", "http"),
    [
        ("29", "destination_not_allowed", 422),
        ("9", "insufficient_balance", 402),
        ("4", "misconfigured_vonage_credentials", 500),
        ("12", "text_too_long", 422),
        ("15", "invalid_sender", 422),
        ("6", "invalid_phone", 422),
        ("99", "vonage_error", 502),
    ],
)
def test_send_sms_status_mapping_through_the_client(key_settings, status, code, http):
    client, _ = make(key_settings, Recorder(sms_ok({"status": status, "error-text": "x"})))
    with pytest.raises(VonageAPIError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    assert (info.value.code, info.value.status) == (code, http)


def test_send_sms_throttled_on_all_parts_is_retried(key_settings):
    recorder = Recorder(sms_ok(part("1"), part("1")), sms_ok(part("1"), part("1")), sms_ok(part("0"), part("0")))
    client, sleeps = make(key_settings, recorder)
    result = client.send_sms(to=TO, sender="Acme", text="x" * 400)
    assert result.accepted
    assert len(recorder.requests) == 3 and len(sleeps) == 2


def test_send_sms_throttled_forever_raises_throttled_after_max_retries(key_settings):
    recorder = Recorder(sms_ok(part("1")))
    client, sleeps = make(key_settings, recorder, max_retries=2)
    with pytest.raises(VonageThrottledError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    assert len(recorder.requests) == 3 and len(sleeps) == 2
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert info.value.status == 503


def test_send_sms_validates_arguments_before_calling(key_settings):
    recorder = Recorder(sms_ok(part("0")))
    client, _ = make(key_settings, recorder)
    with pytest.raises(InvalidPhoneError):
        client.send_sms(to="12ab", sender="Acme", text="hi")
    with pytest.raises(ValidationError):
        client.send_sms(to=TO, sender="Acme", text="")
    with pytest.raises(ValidationError):
        client.send_sms(to=TO, sender="Acme", text="hi", ttl_ms=1000)
    with pytest.raises(ValidationError):
        client.send_sms(to=TO, sender="Acme", text="hi", client_ref="r" * 101)
    assert recorder.requests == []


def test_send_sms_without_credentials_is_a_config_error():
    client, _ = make(Settings(), Recorder(sms_ok(part("0"))))
    with pytest.raises(ConfigError, match="VONAGE_API_KEY"):
        client.send_sms(to=TO, sender="Acme", text="hi")


def test_send_sms_error_body_is_scrubbed_of_credentials(key_settings):
    echo = {"status": "2", "error-text": f"Missing param, got api_secret={API_SECRET}"}
    client, _ = make(key_settings, Recorder(sms_ok(echo)))
    with pytest.raises(VonageAPIError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    dumped = json.dumps([info.value.message, info.value.details, info.value.body])
    assert API_SECRET not in dumped


@pytest.mark.parametrize("escaped", [False, True], ids=["plain", "json-escaped"])
def test_an_accepted_sms_answer_is_scrubbed_of_credentials_too(key_settings, escaped):
    # The scrub is skipped when the raw answer cannot hold the secret; an escaped copy of it
    # (\u0071 for its "q") is not in the raw bytes but is in the parsed text, so it is scrubbed.
    text = f"note: {API_SECRET}"
    raw = json.dumps({"messages": [part("0", **{"error-text": text}), part("9", **{"error-text": text})]})
    if escaped:
        raw = raw.replace(API_SECRET, API_SECRET.replace("q", "\\u0071"))
        assert API_SECRET.encode() not in raw.encode()
    client, _ = make(key_settings, Recorder(httpx.Response(200, content=raw.encode())))
    result = client.send_sms(to=TO, sender="Acme", text="hi")
    assert [p.error_text for p in result.parts] == ["note: ***", "note: ***"]


def test_send_sms_non_json_answer_is_vonage_error(key_settings):
    client, _ = make(key_settings, Recorder(httpx.Response(200, text="<html>proxy</html>")))
    with pytest.raises(VonageAPIError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    assert (info.value.code, info.value.status) == ("vonage_error", 502)


def test_send_sms_http_401_maps_to_auth_failed_without_retry(key_settings):
    recorder = Recorder(httpx.Response(401, json={"Error": "Authentication Failed"}))
    client, sleeps = make(key_settings, recorder)
    with pytest.raises(VonageAPIError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    assert info.value.code == "misconfigured_vonage_credentials" and info.value.status == 500
    assert len(recorder.requests) == 1 and sleeps == []


# ---- retries, timeouts and connection errors ------------------------------------------------------


def test_http_429_honours_retry_after_capped_at_backoff_max(key_settings):
    recorder = Recorder(
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(429, headers={"Retry-After": "100"}),
        sms_ok(part("0")),
    )
    client, sleeps = make(key_settings, recorder, backoff_max=8.0)
    client.send_sms(to=TO, sender="Acme", text="hi")
    assert sleeps == [2.0, 8.0]


def test_http_429_forever_raises_throttled_with_retry_after(key_settings):
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "30"}))
    client, sleeps = make(key_settings, recorder, max_retries=1)
    with pytest.raises(VonageThrottledError) as info:
        client.send_message({"channel": "sms"})
    assert info.value.retry_after == 30.0
    assert len(recorder.requests) == 2


SENDS_AND_STATE_CHANGES = [
    ("send_sms", lambda c: c.send_sms(to=TO, sender="Acme", text="hi")),
    ("send_message", lambda c: c.send_message({"channel": "sms"})),
    ("verify2_start", lambda c: c.verify2_start({"brand": "Acme"})),
    ("verify2_check", lambda c: c.verify2_check(REQUEST_ID, "1234")),
    ("verify2_cancel", lambda c: c.verify2_cancel(REQUEST_ID)),
    ("verify2_next_workflow", lambda c: c.verify2_next_workflow(REQUEST_ID)),
    ("verify_legacy_start", lambda c: c.verify_legacy_start({"number": TO, "brand": "Acme"})),
    ("verify_legacy_check", lambda c: c.verify_legacy_check(LEGACY_ID, "1234")),
    ("verify_legacy_control", lambda c: c.verify_legacy_control(LEGACY_ID, "cancel")),
]


@pytest.mark.parametrize("call", [c[1] for c in SENDS_AND_STATE_CHANGES], ids=[c[0] for c in SENDS_AND_STATE_CHANGES])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_http_5xx_is_an_unknown_outcome_never_retried(key_settings, call, status):
    # Vonage takes no idempotency key: a 5xx after the request was written may have sent (and
    # billed) the message or started the verification; a retry could do it twice.
    recorder = Recorder(httpx.Response(status, json={"title": "Internal Error"}), httpx.Response(202, json={}))
    client, sleeps = make(key_settings, recorder, max_retries=3)
    with pytest.raises(VonageUnavailableError) as info:
        call(client)
    assert len(recorder.requests) == 1 and sleeps == []
    assert info.value.details["http_status"] == status and info.value.details["outcome"] == "unknown"
    assert "may still have been carried out" in info.value.message


def test_replay_safe_calls_would_retry_5xx(key_settings):
    recorder = Recorder(httpx.Response(503), httpx.Response(200, json={"ok": True}))
    client, sleeps = make(key_settings, recorder)
    result = client._call(
        "verify2", "search", "GET", "https://api.nexmo.com/v2/verify/x",
        handle=lambda r: client._retry_for_http("verify2", r) or r.json(), headers=dict, replay_safe=True,
    )
    assert result == {"ok": True} and len(recorder.requests) == 2 and len(sleeps) == 1


def test_backoff_is_exponential_with_full_jitter(key_settings, monkeypatch):
    import shared.vonage.client as client_module

    monkeypatch.setattr(client_module.random, "uniform", lambda low, high: high)  # the ceiling of each draw
    recorder = Recorder(httpx.Response(429))
    client, sleeps = make(key_settings, recorder, max_retries=6, backoff_base=0.25, backoff_max=4.0)
    with pytest.raises(VonageThrottledError):
        client.send_message({"channel": "sms"})
    assert sleeps == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]


def test_jittered_delays_stay_within_their_ceiling(key_settings):
    recorder = Recorder(httpx.Response(429))
    client, sleeps = make(key_settings, recorder, max_retries=5, backoff_base=0.5, backoff_max=3.0)
    with pytest.raises(VonageThrottledError):
        client.send_message({"channel": "sms"})
    for attempt, delay in enumerate(sleeps):
        assert 0.0 <= delay <= min(3.0, 0.5 * 2**attempt)


def test_zero_retries_means_one_attempt(key_settings):
    recorder = Recorder(httpx.Response(429))
    client, sleeps = make(key_settings, recorder, max_retries=0)
    with pytest.raises(VonageThrottledError):
        client.send_message({"channel": "sms"})
    assert len(recorder.requests) == 1 and sleeps == []


def test_max_retries_defaults_to_settings():
    settings = Settings(api_key=API_KEY, api_secret=API_SECRET, vonage_max_retries=1)
    recorder = Recorder(httpx.Response(429))
    client = VonageClient(settings, transport=httpx.MockTransport(recorder), sleep=lambda s: None)
    with pytest.raises(VonageThrottledError):
        client.send_message({"channel": "sms"})
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("exc", "raised"),
    [
        (httpx.ConnectError("refused"), VonageUnavailableError),
        (httpx.ConnectTimeout("slow"), VonageTimeoutError),
        (httpx.PoolTimeout("busy"), VonageTimeoutError),
    ],
)
def test_errors_before_the_request_left_are_retried_even_for_sends(key_settings, exc, raised):
    recorder = Recorder(exc)
    client, sleeps = make(key_settings, recorder, max_retries=2)
    with pytest.raises(raised) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    assert len(recorder.requests) == 3 and len(sleeps) == 2
    assert isinstance(info.value.__cause__, type(exc))


def test_connect_error_then_success(key_settings):
    recorder = Recorder(httpx.ConnectError("refused"), sms_ok(part("0")))
    client, sleeps = make(key_settings, recorder)
    assert client.send_sms(to=TO, sender="Acme", text="hi").accepted
    assert len(recorder.requests) == 2




@pytest.mark.parametrize("call", [c[1] for c in SENDS_AND_STATE_CHANGES], ids=[c[0] for c in SENDS_AND_STATE_CHANGES])
def test_read_timeout_is_not_retried_because_vonage_may_have_acted(key_settings, call):
    recorder = Recorder(httpx.ReadTimeout("no answer"))
    client, sleeps = make(key_settings, recorder, max_retries=3)
    with pytest.raises(VonageTimeoutError) as info:
        call(client)
    assert len(recorder.requests) == 1 and sleeps == []
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert "may still have been" in info.value.message and info.value.details["outcome"] == "unknown"


def test_connection_dropped_mid_request_is_not_retried(key_settings):
    recorder = Recorder(httpx.RemoteProtocolError("Server disconnected without sending a response."))
    client, sleeps = make(key_settings, recorder)
    with pytest.raises(VonageUnavailableError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    assert len(recorder.requests) == 1 and info.value.details["outcome"] == "unknown"
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)


def test_replay_safe_calls_would_retry_read_timeouts(key_settings):
    # The flag exists for read-only calls; prove it works so the policy is a choice, not an accident.
    recorder = Recorder(httpx.ReadTimeout("slow"), httpx.Response(200, json={"ok": True}))
    client, sleeps = make(key_settings, recorder)
    result = client._call(
        "verify2",
        "search",
        "GET",
        "https://api.nexmo.com/v2/verify/x",
        handle=lambda r: r.json(),
        headers=dict,
        replay_safe=True,
    )
    assert result == {"ok": True} and len(recorder.requests) == 2


def test_each_retry_is_logged_with_fields_and_no_secrets(key_settings, caplog):
    recorder = Recorder(httpx.Response(429), sms_ok(part("0")))
    client, _ = make(key_settings, recorder)
    with caplog.at_level(logging.WARNING, logger="shared.vonage.client"):
        client.send_sms(to=TO, sender="Acme", text="secret message text")
    records = [r for r in caplog.records if r.name == "shared.vonage.client"]
    assert len(records) == 1
    record = records[0]
    assert (record.vonage_api, record.vonage_operation, record.attempt, record.retry_reason) == (
        "sms",
        "send",
        1,
        "http_429",
    )
    dumped = json.dumps({k: str(v) for k, v in record.__dict__.items()})
    for leaked in (API_SECRET, BASIC, TO, "secret message text"):
        assert leaked not in dumped


# ---- Messages API ---------------------------------------------------------------------------------


def test_send_message_with_application_uses_a_verifiable_jwt(app_settings, rsa_public_pem):
    recorder = Recorder(httpx.Response(202, json={"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"}))
    client, _ = make(app_settings, recorder)
    payload = {"channel": "sms", "message_type": "text", "to": TO, "from": "Acme", "text": "hi"}

    result = client.send_message(payload)

    request = recorder.last
    assert request.method == "POST"
    assert str(request.url) == "https://api.nexmo.com/v1/messages"
    assert request.headers["Content-Type"] == "application/json"
    assert recorder.json() == payload
    scheme, token = request.headers["Authorization"].split(" ")
    assert scheme == "Bearer"
    claims = pyjwt.decode(token, rsa_public_pem, algorithms=["RS256"])
    assert claims["application_id"] == APP_ID and claims["exp"] - claims["iat"] == 900 and claims["jti"]
    assert result == MessageSubmission(message_uuid="aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", workflow_id=None)


def test_jwt_is_signed_once_and_reused_across_requests(app_settings):
    recorder = Recorder(httpx.Response(202, json={"message_uuid": "u"}))
    client, _ = make(app_settings, recorder)
    for _ in range(3):
        client.send_message({"channel": "sms"})
    tokens = {r.headers["Authorization"] for r in recorder.requests}
    assert len(recorder.requests) == 3 and len(tokens) == 1


def test_jwt_is_refreshed_near_expiry(app_settings, rsa_private_pem):
    now = [1_700_000_000.0]
    app_jwt = ApplicationJWT(APP_ID, rsa_private_pem, ttl=900, refresh_margin=60, clock=lambda: now[0])
    recorder = Recorder(httpx.Response(202, json={"message_uuid": "u"}))
    client, _ = make(app_settings, recorder, jwt=app_jwt)
    client.send_message({"channel": "sms"})
    now[0] += 600
    client.send_message({"channel": "sms"})
    now[0] += 241  # 59 s before exp: inside the refresh margin
    client.send_message({"channel": "sms"})
    first, second, third = (r.headers["Authorization"] for r in recorder.requests)
    assert first == second != third
    assert pyjwt.decode(third.split()[1], options={"verify_signature": False})["iat"] == int(now[0])


def test_send_message_without_application_uses_basic(key_settings):
    recorder = Recorder(httpx.Response(202, json={"message_uuid": "u", "workflow_id": "w-1"}))
    client, _ = make(key_settings, recorder)
    result = client.send_message({"channel": "sms"})
    assert recorder.last.headers["Authorization"] == BASIC
    assert result.workflow_id == "w-1"


def test_send_message_without_any_credentials_is_a_config_error():
    client, _ = make(Settings(), Recorder(httpx.Response(202, json={"message_uuid": "u"})))
    with pytest.raises(ConfigError):
        client.send_message({"channel": "sms"})


def test_bad_private_key_is_a_config_error_at_first_use(rsa_private_pem):
    settings = Settings(application_id=APP_ID, private_key="garbage-not-a-key")
    recorder = Recorder(httpx.Response(202, json={"message_uuid": "u"}))
    client, _ = make(settings, recorder)
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY"):
        client.send_message({"channel": "sms"})
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("status", "problem", "code", "http"),
    [
        (
            422,
            {
                "type": "https://developer.vonage.com/api-errors/messages#1150",
                "title": "Invalid params",
                "invalid_parameters": [{"name": "to", "reason": "invalid"}],
            },
            "invalid_request",
            422,
        ),
        (
            402,
            {"type": "https://developer.nexmo.com/api-errors/#low-balance", "title": "Low balance"},
            "insufficient_balance",
            402,
        ),
        (401, {"type": "https://developer.nexmo.com/api-errors/#unathorized"}, "misconfigured_vonage_credentials", 500),
        (
            422,
            {"type": "https://developer.vonage.com/api-errors/messages#1120", "title": "Invalid sender"},
            "invalid_sender",
            422,
        ),
    ],
)
def test_send_message_problem_json_is_mapped_without_retry(key_settings, status, problem, code, http):
    recorder = Recorder(httpx.Response(status, json=problem, headers={"Content-Type": "application/problem+json"}))
    client, sleeps = make(key_settings, recorder)
    with pytest.raises(VonageAPIError) as info:
        client.send_message({"channel": "sms"})
    assert (info.value.code, info.value.status, info.value.http_status) == (code, http, status)
    assert len(recorder.requests) == 1 and sleeps == []
    if "invalid_parameters" in problem:
        assert info.value.details["invalid_parameters"] == [{"name": "to", "reason": "invalid"}]


def test_send_message_without_uuid_is_vonage_error(key_settings):
    client, _ = make(key_settings, Recorder(httpx.Response(202, json={})))
    with pytest.raises(VonageAPIError) as info:
        client.send_message({"channel": "sms"})
    assert info.value.code == "vonage_error"


# ---- Verify v2 ---------------------------------------------------------------------------------------


def test_verify2_start_request_and_result(app_settings):
    body = {"brand": "Acme", "workflow": [{"channel": "sms", "to": TO}]}
    recorder = Recorder(httpx.Response(202, json={"request_id": REQUEST_ID}))
    client, _ = make(app_settings, recorder)
    assert client.verify2_start(body) == {"request_id": REQUEST_ID}
    assert recorder.last.method == "POST"
    assert str(recorder.last.url) == "https://api.nexmo.com/v2/verify"
    assert recorder.json() == body
    assert recorder.last.headers["Authorization"].startswith("Bearer ")


def test_verify2_uses_basic_without_an_application(key_settings):
    recorder = Recorder(httpx.Response(202, json={"request_id": REQUEST_ID, "check_url": "https://x"}))
    client, _ = make(key_settings, recorder)
    assert client.verify2_start({"brand": "Acme"})["check_url"] == "https://x"
    assert recorder.last.headers["Authorization"] == BASIC


def test_verify2_start_conflict_keeps_the_in_flight_request_id(app_settings):
    problem = {
        "title": "Conflict",
        "type": "https://www.developer.vonage.com/api-errors/verify#conflict",
        "detail": "Concurrent verifications to the same number are not allowed.",
        "request_id": REQUEST_ID,
    }
    client, _ = make(app_settings, Recorder(httpx.Response(409, json=problem)))
    with pytest.raises(VonageAPIError) as info:
        client.verify2_start({"brand": "Acme"})
    assert info.value.code == "verification_in_flight" and info.value.status == 409
    assert info.value.body["request_id"] == REQUEST_ID


def test_verify2_check_request(app_settings):
    recorder = Recorder(httpx.Response(200, json={"request_id": REQUEST_ID, "status": "completed"}))
    client, _ = make(app_settings, recorder)
    assert client.verify2_check(REQUEST_ID, "1234")["status"] == "completed"
    assert recorder.last.method == "POST"
    assert str(recorder.last.url) == f"https://api.nexmo.com/v2/verify/{REQUEST_ID}"
    assert recorder.json() == {"code": "1234"}


@pytest.mark.parametrize(
    ("status", "code", "http"),
    [
        (400, "wrong_code", 400),
        (410, "too_many_attempts", 410),
        (404, "verification_not_found", 404),
        (409, "code_not_supported", 409),
    ],
)
def test_verify2_check_errors(app_settings, status, code, http):
    client, _ = make(app_settings, Recorder(httpx.Response(status, json={"title": "x"})))
    with pytest.raises(VonageAPIError) as info:
        client.verify2_check(REQUEST_ID, "0000")
    assert (info.value.code, info.value.status) == (code, http)
    assert "0000" not in json.dumps([info.value.message, info.value.details])


def test_verify2_cancel_request_and_refusal(app_settings):
    recorder = Recorder(httpx.Response(204), httpx.Response(409, json={"title": "Conflict"}))
    client, _ = make(app_settings, recorder)
    assert client.verify2_cancel(REQUEST_ID) is None
    assert recorder.last.method == "DELETE"
    assert str(recorder.last.url) == f"https://api.nexmo.com/v2/verify/{REQUEST_ID}"
    with pytest.raises(VonageAPIError) as info:
        client.verify2_cancel(REQUEST_ID)
    assert info.value.code == "cancel_not_allowed"
    assert "30 seconds" in info.value.message


def test_verify2_next_workflow_request(app_settings):
    recorder = Recorder(httpx.Response(200))
    client, _ = make(app_settings, recorder)
    assert client.verify2_next_workflow(REQUEST_ID) is None
    assert recorder.last.method == "POST"
    assert str(recorder.last.url) == f"https://api.nexmo.com/v2/verify/{REQUEST_ID}/next_workflow"


@pytest.mark.parametrize("bad", ["", "../v1/messages", "a/b", "x" * 101, "id?x=1", "..", "ünï"])
def test_request_ids_that_could_change_the_url_are_refused_before_sending(app_settings, bad):
    recorder = Recorder(httpx.Response(200, json={}))
    client, _ = make(app_settings, recorder)
    with pytest.raises(ValidationError):
        client.verify2_check(bad, "1234")
    assert recorder.requests == []


def test_verify2_429_then_success(app_settings):
    recorder = Recorder(
        httpx.Response(429, json={"title": "Rate Limit Hit"}), httpx.Response(200, json={"status": "completed"})
    )
    client, sleeps = make(app_settings, recorder)
    assert client.verify2_check(REQUEST_ID, "1234")["status"] == "completed"
    assert len(recorder.requests) == 2 and len(sleeps) == 1


# ---- legacy Verify ---------------------------------------------------------------------------------------


def test_verify_legacy_start_sends_credentials_in_the_form(key_settings):
    recorder = Recorder(httpx.Response(200, json={"request_id": LEGACY_ID, "status": "0"}))
    client, _ = make(key_settings, recorder)
    assert client.verify_legacy_start({"number": TO, "brand": "Acme", "code_length": "6"})["request_id"] == LEGACY_ID
    assert str(recorder.last.url) == "https://api.nexmo.com/verify/json"
    assert "Authorization" not in recorder.last.headers
    assert recorder.form() == {
        "number": TO,
        "brand": "Acme",
        "code_length": "6",
        "api_key": API_KEY,
        "api_secret": API_SECRET,
    }


def test_verify_legacy_check_and_control_requests(key_settings):
    recorder = Recorder(httpx.Response(200, json={"request_id": LEGACY_ID, "status": "0", "event_id": "e"}))
    client, _ = make(key_settings, recorder)
    client.verify_legacy_check(LEGACY_ID, "1234")
    assert str(recorder.last.url) == "https://api.nexmo.com/verify/check/json"
    assert recorder.form() == {"request_id": LEGACY_ID, "code": "1234", "api_key": API_KEY, "api_secret": API_SECRET}
    client.verify_legacy_control(LEGACY_ID, "trigger_next_event")
    assert str(recorder.last.url) == "https://api.nexmo.com/verify/control/json"
    assert recorder.form() == {
        "request_id": LEGACY_ID,
        "cmd": "trigger_next_event",
        "api_key": API_KEY,
        "api_secret": API_SECRET,
    }
    with pytest.raises(ValueError):
        client.verify_legacy_control(LEGACY_ID, "delete")


def test_verify_legacy_in_flight_keeps_request_id_and_network_but_not_the_secret(key_settings):
    body = {
        "status": "10",
        "error_text": "Concurrent verifications to the same number are not allowed",
        "request_id": LEGACY_ID,
        "network": "23410",
        "echo": API_SECRET,
    }
    client, _ = make(key_settings, Recorder(httpx.Response(200, json=body)))
    with pytest.raises(VonageAPIError) as info:
        client.verify_legacy_start({"number": TO, "brand": "Acme"})
    error = info.value
    assert (error.code, error.status, error.vonage_code) == ("verification_in_flight", 409, "10")
    assert error.body["request_id"] == LEGACY_ID and error.body["network"] == "23410"
    assert API_SECRET not in json.dumps([error.message, error.details, error.body])


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        (lambda c: c.verify_legacy_check(LEGACY_ID, "0000"), "16", "wrong_code"),
        (lambda c: c.verify_legacy_check(LEGACY_ID, "0000"), "17", "too_many_attempts"),
        (lambda c: c.verify_legacy_control(LEGACY_ID, "cancel"), "19", "cancel_not_allowed"),
        (lambda c: c.verify_legacy_control(LEGACY_ID, "trigger_next_event"), "19", "next_workflow_not_allowed"),
        (lambda c: c.verify_legacy_control(LEGACY_ID, "cancel"), "6", "verification_not_found"),
        (lambda c: c.verify_legacy_start({"number": TO, "brand": "A"}), "7", "destination_blocked"),
        (lambda c: c.verify_legacy_start({"number": TO, "brand": "A"}), "29", "destination_not_allowed"),
    ],
)
def test_verify_legacy_status_mapping(key_settings, call, status, code):
    client, _ = make(key_settings, Recorder(httpx.Response(200, json={"status": status, "error_text": "x"})))
    with pytest.raises(VonageAPIError) as info:
        call(client)
    assert info.value.code == code


def test_verify_legacy_throttled_is_retried(key_settings):
    recorder = Recorder(
        httpx.Response(200, json={"status": "1", "error_text": "Throttled"}),
        httpx.Response(200, json={"status": "0", "request_id": LEGACY_ID}),
    )
    client, sleeps = make(key_settings, recorder)
    assert client.verify_legacy_start({"number": TO, "brand": "Acme"})["request_id"] == LEGACY_ID
    assert len(recorder.requests) == 2 and len(sleeps) == 1


def test_verify_legacy_throttled_forever(key_settings):
    recorder = Recorder(httpx.Response(200, json={"status": "1", "error_text": "Throttled"}))
    client, _ = make(key_settings, recorder, max_retries=2)
    with pytest.raises(VonageThrottledError):
        client.verify_legacy_check(LEGACY_ID, "1234")
    assert len(recorder.requests) == 3


# ---- lifecycle and configuration ----------------------------------------------------------------------


def test_one_http_client_per_vonage_client_built_lazily(key_settings):
    recorder = Recorder(sms_ok(part("0")))
    client, _ = make(key_settings, recorder)
    assert client._http is None  # nothing built until the first call
    client.send_sms(to=TO, sender="Acme", text="hi")
    first = client._http
    client.send_sms(to=TO, sender="Acme", text="hi")
    assert client._http is first and first is not None
    client.close()
    assert first.is_closed and client._http is None
    client.send_sms(to=TO, sender="Acme", text="hi")  # a closed client opens a new pool
    assert client._http is not None and client._http is not first


def test_timeouts_and_pool_are_explicit(key_settings):
    client = VonageClient(key_settings)
    assert client.timeout is DEFAULT_TIMEOUT
    assert DEFAULT_TIMEOUT.connect == 3.0 and DEFAULT_TIMEOUT.read == 10.0
    http = client._http_client()
    assert http.timeout.read == 10.0 and http.timeout.connect == 3.0
    pool = http._transport._pool
    assert pool._max_connections == 32
    client.close()


def test_vonage_timeout_setting_is_used_when_no_timeout_is_given():
    client = VonageClient(Settings(vonage_timeout=4.0))
    assert client.timeout.read == 4.0 and client.timeout.connect == 3.0
    explicit = httpx.Timeout(1.0)
    assert VonageClient(Settings(vonage_timeout=4.0), timeout=explicit).timeout is explicit


def test_base_urls_come_from_settings():
    settings = Settings(
        api_key=API_KEY,
        api_secret=API_SECRET,
        rest_base_url="http://127.0.0.1:9001",
        api_base_url="http://127.0.0.1:9002",
    )
    recorder = Recorder(sms_ok(part("0")))
    client, _ = make(settings, recorder)
    client.send_sms(to=TO, sender="Acme", text="hi")
    assert str(recorder.last.url) == "http://127.0.0.1:9001/sms/json"
    recorder.script = [httpx.Response(202, json={"message_uuid": "u"})]
    client.send_message({"channel": "sms"})
    assert str(recorder.last.url) == "http://127.0.0.1:9002/v1/messages"


def test_repr_has_no_credentials(app_settings):
    text = repr(VonageClient(app_settings))
    assert API_SECRET not in text and "PRIVATE" not in text
