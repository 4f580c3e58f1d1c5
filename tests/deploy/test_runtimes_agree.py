"""The same requests through every runtime get the same answers.

Runtimes: (a) each function alone under functions-framework, as Google deploys it
(``create_app(target=..., source="main.py")``); (b) the one-process app
(``app.create_app()``: Replit, local, any WSGI host) at ``/<path>``; (c) the AWS Lambda
handler behind API Gateway, with REST (payload 1.0) and HTTP API (payload 2.0) events,
the latter also on a named stage. Every runtime starts from its own empty store, so each
sees the same state; status codes, JSON bodies and the headers callers act on must match.
"""

from __future__ import annotations

import base64
import json
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.fixtures.webhooks import API_KEY, API_TOKEN, SIGNATURE_SECRET, messages_status, sms_inbound, webhook_jwt

REPO = pathlib.Path(__file__).resolve().parents[2]
COMPARED_HEADERS = ("content-type", "www-authenticate", "allow", "cache-control", "retry-after")
SOURCE_IP = "203.0.113.9"
BEARER = {"Authorization": f"Bearer {API_TOKEN}"}


@dataclass(frozen=True)
class Call:
    """One request: to a function (its path segment) or to the one-process root (None)."""

    name: str
    function: str | None
    method: str
    subpath: str = ""
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def full_path(self) -> str:
        return (f"/{self.function}" if self.function else "") + (self.subpath or ("" if self.function else "/"))


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def _json_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", **(extra or {})}


_STATUS_BODY = json.dumps(messages_status("b1c2d3e4-0000-4000-8000-00000000abcd", "delivered")).encode()

CALLS = [
    Call("send dry run with a bearer token", "send", "POST", headers=_json_headers(BEARER),
         body=json.dumps({"to": "+447911123456", "text": "Hello from every runtime", "dry_run": True}).encode()),
    Call("send without a token", "send", "POST", headers=_json_headers(),
         body=json.dumps({"to": "+447911123456", "text": "hi"}).encode()),
    Call("send with a wrong token", "send", "POST", headers=_json_headers({"Authorization": "Bearer nope"}),
         body=json.dumps({"to": "+447911123456", "text": "hi"}).encode()),
    Call("GET an unknown send id in the path", "send", "GET", subpath="/msg-does-not-exist", headers=dict(BEARER)),
    Call("GET an unknown send id in the query", "send", "GET", query="id=msg-nope-2", headers=dict(BEARER)),
    Call("verify-start with bad JSON", "verify-start", "POST", headers=_json_headers(BEARER), body=b'{"number": '),
    Call("verify-check with the wrong method", "verify-check", "PUT", headers=dict(BEARER)),
    Call("verify-cancel without a token", "verify-cancel", "POST", headers=_json_headers(), body=b"{}"),
    Call("inbound webhook, unsigned", "inbound", "POST", headers=_json_headers(),
         body=json.dumps(sms_inbound("hello")).encode()),
    Call("status webhook, signed", "status", "POST",
         headers=_json_headers({"Authorization": f"Bearer {webhook_jwt(_STATUS_BODY, secret=SIGNATURE_SECRET)}"}),
         body=_STATUS_BODY),
    # The same event again: each runtime keeps its state between requests (Vonage retries).
    Call("status webhook, signed, delivered twice", "status", "POST",
         headers=_json_headers({"Authorization": f"Bearer {webhook_jwt(_STATUS_BODY, secret=SIGNATURE_SECRET)}"}),
         body=_STATUS_BODY),
]
ROOT_CALLS = [
    Call("healthz", None, "GET", subpath="/healthz"),
    Call("readyz", None, "GET", subpath="/readyz"),
]


# ---- the runtimes -------------------------------------------------------------------


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """A clean environment; ``use_store(name)`` gives each runtime its own empty SQLite file."""
    import os

    from shared import deps

    for name in list(os.environ):
        if name.startswith(("VONAGE_", "STATE_", "API_TOKENS", "WEBHOOK_", "VERIFY_", "FIRESTORE_", "DEFAULT_REGION",
                            "INBOUND_HANDLER", "AWS_LAMBDA", "CORS_", "GOOGLE_CLOUD_PROJECT", "K_SERVICE")):
            monkeypatch.delenv(name, raising=False)
    env = {
        "API_TOKENS": API_TOKEN,
        "STATE_BACKEND": "sqlite",
        "VONAGE_API_KEY": API_KEY,
        "VONAGE_API_SECRET": "runtime-test-secret",
        "VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET,
        "VONAGE_BRAND_NUMBER": "447700900000",
        # Nothing here may reach Vonage: a port nobody listens on makes any attempt fail loudly.
        "VONAGE_API_BASE_URL": "http://127.0.0.1:9",
        "VONAGE_REST_BASE_URL": "http://127.0.0.1:9",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def use_store(runtime: str) -> None:
        monkeypatch.setenv("STATE_SQLITE_PATH", str(tmp_path / f"{runtime}.sqlite3"))
        deps.reset()

    yield use_store
    deps.reset()


@pytest.fixture(scope="module")
def function_clients() -> dict[str, Any]:
    """Each function alone, as functions-framework serves it on Google Cloud."""
    import functions_framework

    from app import FUNCTIONS

    return {
        path.lstrip("/"): functions_framework.create_app(target=entry, source=str(REPO / "main.py")).test_client()
        for path, (_, entry) in FUNCTIONS.items()
    }


@pytest.fixture(scope="module")
def one_process_client() -> Any:
    from app import create_app

    return create_app().test_client()


def _from_flask(response: Any) -> Answer:
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() in COMPARED_HEADERS}
    return Answer(response.status_code, _parse(response.get_data()), headers)


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return {"raw": data.decode("utf-8", "replace")}


def run_function(clients: dict[str, Any], call: Call) -> Answer:
    """functions-framework: every path reaches the one function, so the id is the path."""
    client = clients[call.function]
    response = client.open(call.subpath or "/", method=call.method, headers=call.headers, data=call.body,
                           query_string=call.query)
    return _from_flask(response)


def run_one_process(client: Any, call: Call) -> Answer:
    response = client.open(call.full_path, method=call.method, headers=call.headers, data=call.body,
                           query_string=call.query)
    return _from_flask(response)


def _lambda_answer(result: dict[str, Any]) -> Answer:
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    if "multiValueHeaders" in result:
        headers = {k.lower(): v[-1] for k, v in result["multiValueHeaders"].items()}
    else:
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    return Answer(result["statusCode"], _parse(raw), {k: v for k, v in headers.items() if k in COMPARED_HEADERS})


def rest_v1_event(call: Call) -> dict[str, Any]:
    """What API Gateway's REST API (Lambda proxy integration, payload 1.0) passes in."""
    query = dict(parse_qsl(call.query)) or None
    headers = {"Host": "abc123.execute-api.eu-west-1.amazonaws.com", "X-Forwarded-Proto": "https", **call.headers}
    return {
        "resource": "/{proxy+}",
        "path": call.full_path,
        "httpMethod": call.method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": call.full_path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}", "httpMethod": call.method, "path": "/prod" + call.full_path,
            "stage": "prod", "requestId": "req-1", "identity": {"sourceIp": SOURCE_IP},
        },
        # REST APIs pass text bodies as text.
        "body": call.body.decode() if call.body else None,
        "isBase64Encoded": False,
    }


def http_v2_event(call: Call, *, stage: str = "$default") -> dict[str, Any]:
    """What API Gateway's HTTP API (payload 2.0) passes in; a named stage prefixes rawPath."""
    raw_path = call.full_path if stage == "$default" else f"/{stage}{call.full_path}"
    headers = {k.lower(): v for k, v in call.headers.items()}
    headers.update({"host": "abc123.execute-api.eu-west-1.amazonaws.com", "x-forwarded-proto": "https"})
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": call.query,
        "cookies": [],
        "headers": headers,
        "queryStringParameters": dict(parse_qsl(call.query)) or None,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "http": {"method": call.method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": SOURCE_IP,
                     "userAgent": "test"},
            "requestId": "req-2", "routeKey": "$default", "stage": stage, "time": "30/Jan/2026:12:00:00 +0000",
            "timeEpoch": 1769774400000,
        },
        # HTTP APIs may pass any body base64-encoded: exercise that path.
        "body": base64.b64encode(call.body).decode() if call.body else None,
        "isBase64Encoded": bool(call.body),
    }


def run_lambda(event_for: Callable[[Call], dict[str, Any]], call: Call) -> Answer:
    import lambda_handler

    return _lambda_answer(lambda_handler.handler(event_for(call), None))


def _runtimes(function_clients: Any, one_process_client: Any, *, with_per_function: bool) -> dict[str, Callable[[Call], Answer]]:
    runtimes: dict[str, Callable[[Call], Answer]] = {}
    if with_per_function:
        runtimes["functions-framework"] = lambda call: run_function(function_clients, call)
    runtimes["one-process app"] = lambda call: run_one_process(one_process_client, call)
    runtimes["lambda REST v1"] = lambda call: run_lambda(rest_v1_event, call)
    runtimes["lambda HTTP v2"] = lambda call: run_lambda(http_v2_event, call)
    runtimes["lambda HTTP v2 stage"] = lambda call: run_lambda(lambda c: http_v2_event(c, stage="prod"), call)
    return runtimes


def _answers(environment: Any, runtimes: dict[str, Callable[[Call], Answer]], calls: list[Call]) -> dict[str, list[Answer]]:
    answers = {}
    for index, (name, runner) in enumerate(runtimes.items()):
        environment(f"runtime{index}")
        answers[name] = [runner(call) for call in calls]
    return answers


# ---- the tests ----------------------------------------------------------------------


def test_every_function_call_gets_the_same_answer_in_every_runtime(environment, function_clients, one_process_client):
    answers = _answers(environment, _runtimes(function_clients, one_process_client, with_per_function=True), CALLS)
    reference_name, reference = next(iter(answers.items()))
    for name, got in answers.items():
        for call, expected, answer in zip(CALLS, reference, got):
            assert (answer.status, answer.body, answer.headers) == (expected.status, expected.body, expected.headers), (
                f"{call.name}: {name} differs from {reference_name}"
            )


def test_the_answers_are_the_ones_the_functions_promise(environment, one_process_client):
    # Equality alone would pass if every runtime failed the same way: pin what they should be.
    environment("expected")
    by_name = {call.name: run_one_process(one_process_client, call) for call in CALLS}

    dry = by_name["send dry run with a bearer token"]
    assert dry.status == 200 and dry.body["dry_run"] is True
    assert dry.headers["content-type"].startswith("application/json")
    assert dry.headers["cache-control"] == "no-store"
    for name in ("send without a token", "send with a wrong token", "verify-cancel without a token"):
        assert by_name[name].status == 401 and by_name[name].body["error"]["code"] == "unauthorized"
        assert by_name[name].headers["www-authenticate"] == "Bearer"
    for name in ("GET an unknown send id in the path", "GET an unknown send id in the query"):
        assert by_name[name].status == 404 and by_name[name].body["error"]["code"] == "not_found"
    bad_json = by_name["verify-start with bad JSON"]
    assert bad_json.status == 400 and bad_json.body["error"]["code"] == "invalid_json"
    wrong_method = by_name["verify-check with the wrong method"]
    assert wrong_method.status == 405 and wrong_method.headers["allow"] == "POST"
    unsigned = by_name["inbound webhook, unsigned"]
    assert unsigned.status == 401 and unsigned.body["error"]["code"] == "invalid_signature"
    signed = by_name["status webhook, signed"]
    assert signed.status == 200 and signed.body["result"] == "parked"
    again = by_name["status webhook, signed, delivered twice"]
    assert again.status == 200 and again.body["result"] == "duplicate"


def test_health_checks_agree_between_the_one_process_app_and_lambda(environment, function_clients, one_process_client):
    answers = _answers(environment, _runtimes(function_clients, one_process_client, with_per_function=False), ROOT_CALLS)
    reference = answers["one-process app"]
    assert reference[0].status == 200 and reference[0].body["status"] == "ok"
    assert reference[0].body["functions"] == ["/balance", "/deliver", "/inbound", "/send", "/status", "/verify-cancel", "/verify-check", "/verify-next",
                                   "/verify-start"]
    assert reference[1].status == 200 and reference[1].body == {"status": "ok", "store": "sqlite"}
    for name, got in answers.items():
        assert [(a.status, a.body) for a in got] == [(a.status, a.body) for a in reference], name
