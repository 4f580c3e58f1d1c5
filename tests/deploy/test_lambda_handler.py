"""lambda_handler: stage prefixes, the caller's IP, Lambda-only defaults, binary bodies."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

import lambda_handler
from tests.deploy.test_runtimes_agree import Call, http_v2_event, rest_v1_event


def _echo_app(environ, start_response):
    """A WSGI app that answers with what it was given (path, caller IP, body)."""
    import flask

    from shared.web import client_ip

    request = flask.Request(environ)
    body = json.dumps(
        {"path": request.path, "ip": client_ip(request, 1), "body": request.get_data().decode("latin-1"),
         "query": request.query_string.decode()}
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def _png_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "image/png")])
    return [b"\x89PNG\r\n\x1a\n\x00\xff"]


def _echo(handler, event):
    result = handler(event, None)
    assert result["statusCode"] == 200
    return json.loads(result["body"])


@pytest.fixture
def echo():
    return lambda_handler.build_handler(_echo_app)


def test_the_module_level_handler_serves_the_one_process_app():
    result = lambda_handler.handler(http_v2_event(Call("h", None, "GET", subpath="/healthz")), None)
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["status"] == "ok"


@pytest.mark.parametrize("stage", ["prod", "v1"])
def test_a_named_http_api_stage_is_removed_from_the_path(echo, stage):
    event = http_v2_event(Call("x", "send", "GET", subpath="/abc"), stage=stage)
    assert event["rawPath"] == f"/{stage}/send/abc"
    assert _echo(echo, event)["path"] == "/send/abc"


def test_the_default_stage_path_is_left_alone(echo):
    assert _echo(echo, http_v2_event(Call("x", "send", "GET", subpath="/abc")))["path"] == "/send/abc"


def test_a_path_that_merely_starts_like_the_stage_is_left_alone(echo):
    event = http_v2_event(Call("x", "production", "GET"), stage="$default")
    event["requestContext"]["stage"] = "prod"
    assert _echo(echo, event)["path"] == "/production"


def test_rest_api_paths_carry_no_stage_and_query_strings_arrive(echo):
    answer = _echo(echo, rest_v1_event(Call("x", "send", "GET", query="id=m-1")))
    assert answer["path"] == "/send"
    assert answer["query"] == "id=m-1"


def test_a_spoofed_forwarded_for_cannot_choose_the_caller_ip_on_http_apis(echo):
    call = Call("x", "verify-start", "POST", headers={"X-Forwarded-For": "198.51.100.77"}, body=b"{}")
    assert _echo(echo, http_v2_event(call))["ip"] == "203.0.113.9"


def test_a_spoofed_forwarded_for_cannot_choose_the_caller_ip_on_rest_apis(echo):
    call = Call("x", "verify-start", "POST", headers={"X-Forwarded-For": "198.51.100.77"}, body=b"{}")
    assert _echo(echo, rest_v1_event(call))["ip"] == "203.0.113.9"


def test_a_rest_api_forwarded_for_that_already_ends_with_the_caller_is_not_doubled():
    event = rest_v1_event(Call("x", "send", "GET", headers={"X-Forwarded-For": "198.51.100.77, 203.0.113.9"}))
    normalised = lambda_handler.normalise_event(event)
    assert normalised["headers"]["X-Forwarded-For"] == "198.51.100.77, 203.0.113.9"
    assert normalised["multiValueHeaders"]["X-Forwarded-For"] == ["198.51.100.77, 203.0.113.9"]
    assert event["headers"]["X-Forwarded-For"] == "198.51.100.77, 203.0.113.9"  # the input is not mutated


def test_bodies_arrive_intact_base64_or_not(echo):
    payload = "héllo ✓ {\"a\": 1}".encode()
    call = Call("x", "send", "POST", headers={"Content-Type": "application/json"}, body=payload)
    assert _echo(echo, http_v2_event(call))["body"] == payload.decode("latin-1")
    assert _echo(echo, rest_v1_event(call))["body"] == payload.decode("latin-1")


def test_binary_responses_go_back_base64_encoded():
    handler = lambda_handler.build_handler(_png_app)
    for event in (http_v2_event(Call("x", None, "GET", subpath="/")), rest_v1_event(Call("x", None, "GET", subpath="/"))):
        result = handler(event, None)
        assert result["isBase64Encoded"] is True
        assert base64.b64decode(result["body"]) == b"\x89PNG\r\n\x1a\n\x00\xff"


def test_outside_lambda_the_environment_is_left_alone(tmp_path):
    env = {"GOOGLE_CREDENTIALS_JSON": "{}"}
    lambda_handler.prepare_environment(env, state_dir=str(tmp_path))
    assert env == {"GOOGLE_CREDENTIALS_JSON": "{}"}


def test_on_lambda_sqlite_moves_to_tmp_and_the_google_key_goes_to_a_private_file(tmp_path):
    key = json.dumps({"type": "service_account", "project_id": "p1", "private_key": "-----BEGIN PRIVATE KEY-----x"})
    env = {"AWS_LAMBDA_FUNCTION_NAME": "vonage", "GOOGLE_CREDENTIALS_JSON": key}
    lambda_handler.prepare_environment(env, state_dir=str(tmp_path / "state"))
    assert env["STATE_SQLITE_PATH"] == str(tmp_path / "state" / "state.sqlite3")
    path = env["GOOGLE_APPLICATION_CREDENTIALS"]
    with open(path, encoding="utf-8") as file:
        assert file.read() == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_on_lambda_explicit_settings_win(tmp_path):
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "vonage",
        "STATE_SQLITE_PATH": "/mnt/efs/state.sqlite3",
        "GOOGLE_APPLICATION_CREDENTIALS": "/opt/key.json",
        "GOOGLE_CREDENTIALS_JSON": "{}",
    }
    lambda_handler.prepare_environment(env, state_dir=str(tmp_path))
    assert env["STATE_SQLITE_PATH"] == "/mnt/efs/state.sqlite3"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/opt/key.json"
    assert not (tmp_path / "google-credentials.json").exists()
