from __future__ import annotations

import json

import flask
import pytest

from shared.errors import ConflictError, InvalidPhoneError, ServiceError
from shared.web import (
    apply_cors,
    client_ip,
    endpoint,
    json_response,
    path_id,
    read_json,
    read_params,
    require_method,
)

app = flask.Flask(__name__)


def call(handler, **kwargs):
    with app.test_request_context(**kwargs):
        return handler(flask.request)


@endpoint("demo")
def echo(request):
    require_method(request, "POST")
    return json_response(read_json(request, 1024))


def body(response) -> dict:
    return json.loads(response.get_data())


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"method": "GET"}, 405, "method_not_allowed"),
        ({"method": "POST", "data": b"{not json", "content_type": "application/json"}, 400, "invalid_json"),
        ({"method": "POST", "data": b"", "content_type": "application/json"}, 400, "invalid_json"),
        ({"method": "POST", "data": b"[1,2]", "content_type": "application/json"}, 400, "invalid_json"),
        ({"method": "POST", "data": b'{"a": NaN}', "content_type": "application/json"}, 400, "invalid_json"),
        ({"method": "POST", "data": b"\xff\xfe{}", "content_type": "application/json"}, 400, "invalid_json"),
        ({"method": "POST", "data": b"[" * 5000 + b"]" * 5000, "content_type": "application/json"}, 413, "payload_too_large"),
        ({"method": "POST", "data": b'{"x": "' + b"a" * 2000 + b'"}', "content_type": "application/json"}, 413, "payload_too_large"),
    ],
)
def test_bad_requests_get_the_one_error_shape(kwargs, status, code):
    response = call(echo, **kwargs)
    assert response.status_code == status
    payload = body(response)
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_deeply_nested_json_is_a_400_not_a_crash():
    handler = endpoint("deep")(lambda r: json_response(read_json(r, 1_000_000)))
    shallow = b'{"a":' + b"[" * 100 + b"]" * 100 + b"}"
    assert call(handler, method="POST", data=shallow).status_code == 200
    deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = call(handler, method="POST", data=deep)
    assert response.status_code == 400
    assert body(response)["error"]["code"] == "invalid_json"


def test_unexpected_exceptions_become_a_500_without_a_trace():
    @endpoint("boom")
    def boom(request):
        raise RuntimeError("secret internals")

    response = call(boom, method="POST")
    assert response.status_code == 500
    assert body(response)["error"]["code"] == "internal_error"
    assert "secret internals" not in response.get_data(as_text=True)


def test_service_errors_carry_status_retry_after_and_details():
    @endpoint("conflict")
    def conflict(request):
        raise ConflictError("in progress", code="idempotency_in_progress", retry_after=2.2)

    response = call(conflict, method="POST")
    assert response.status_code == 409
    assert response.headers["Retry-After"] == "3"
    assert body(response) == {"error": {"code": "idempotency_in_progress", "message": "in progress"}}

    @endpoint("phone")
    def phone(request):
        raise InvalidPhoneError("bad", field="to")

    assert body(call(phone, method="POST"))["error"]["details"] == {"field": "to"}


def test_bearer_tokens_are_checked_against_every_configured_token():
    from shared.config import Settings
    from shared.web import authorize_caller

    settings = Settings.from_env({"API_TOKENS": "first,second"})
    with app.test_request_context(headers={"Authorization": "Bearer second"}):
        assert authorize_caller(flask.request, settings).token == "second"
    for header in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        with app.test_request_context(headers=header), pytest.raises(ServiceError) as caught:
            authorize_caller(flask.request, settings)
        assert caught.value.status == 401


def test_webhook_params_from_query_form_and_json_are_the_same():
    expected = {"msisdn": "447700900001", "text": "Hi & bye=1"}
    with app.test_request_context("/?msisdn=447700900001&text=Hi+%26+bye%3D1", method="GET"):
        assert read_params(flask.request, 1024) == expected
    with app.test_request_context(method="POST", data=expected):
        assert read_params(flask.request, 1024) == expected
    with app.test_request_context(method="POST", json=expected):
        assert read_params(flask.request, 1024) == expected


def test_client_ip_trusts_only_the_configured_proxy_hops():
    headers = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    with app.test_request_context(headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.1"}):
        assert client_ip(flask.request, 1) == "203.0.113.7"
        assert client_ip(flask.request, 2) == "6.6.6.6"
        assert client_ip(flask.request, 0) == "10.0.0.1"


def test_client_ip_ignores_forwarded_for_by_default():
    # Regression (issue 15): one trusted hop was the default, so with nothing in front of the
    # app a caller wrote a new last entry per request and the per-IP limit never fired.
    with app.test_request_context(headers={"X-Forwarded-For": "198.51.100.9"}, environ_base={"REMOTE_ADDR": "10.0.0.1"}):
        assert client_ip(flask.request) == "10.0.0.1"


@pytest.mark.parametrize(
    ("forwarded", "peer", "expected"),
    [
        ("6.6.6.6, 203.0.113.7", "10.0.0.1", "203.0.113.7"),  # our proxy appended the caller
        ("6.6.6.6, 203.0.113.7, 10.0.0.2", "10.0.0.1", "203.0.113.7"),  # two of our proxies
        ("6.6.6.6, 203.0.113.7", "198.51.100.1", "198.51.100.1"),  # peer is not ours: header ignored
        ("10.0.0.3", "10.0.0.1", "10.0.0.3"),  # every hop ours: the left-most
        ("evil, 10.0.0.2", "10.0.0.1", "evil"),  # garbage is never a proxy of ours
        ("", "10.0.0.1", "10.0.0.1"),
    ],
)
def test_client_ip_walks_back_through_trusted_proxies_only(forwarded, peer, expected):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    with app.test_request_context(headers=headers, environ_base={"REMOTE_ADDR": peer}):
        assert client_ip(flask.request, 0, ("10.0.0.0/8",)) == expected


def test_path_id_reads_the_last_segment_or_the_query():
    with app.test_request_context("/msg_123"):
        assert path_id(flask.request) == "msg_123"
    with app.test_request_context("/?id=msg_9"):
        assert path_id(flask.request) == "msg_9"
    with app.test_request_context("/"):
        assert path_id(flask.request) is None


def test_cors_allows_only_listed_origins():
    with app.test_request_context(method="POST", headers={"Origin": "https://shop.example"}):
        response = apply_cors(flask.request, flask.Response(), ["https://shop.example"])
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    with app.test_request_context(method="POST", headers={"Origin": "https://evil.example"}):
        response = apply_cors(flask.request, flask.Response(), ["https://shop.example"])
        assert "Access-Control-Allow-Origin" not in response.headers
    with app.test_request_context(method="OPTIONS", headers={"Origin": "https://evil.example"}), pytest.raises(ServiceError):
        apply_cors(flask.request, flask.Response(), ["https://shop.example"])
