from __future__ import annotations

import io
import json
import logging

import pytest

from shared.log import bind_context, configure_logging, get_logger, register_secrets, reset_context


@pytest.fixture
def log_stream():
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream, force=True)
    yield stream
    configure_logging("INFO", force=True)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_one_json_object_per_line_with_cloud_logging_fields(log_stream):
    token = bind_context(function="send", trace="projects/p/traces/abc")
    try:
        get_logger("t").info("sent", extra={"message_id": "msg_1", "segments": 2})
    finally:
        reset_context(token)
    (entry,) = lines(log_stream)
    assert entry["severity"] == "INFO"
    assert entry["message"] == "sent"
    assert entry["function"] == "send"
    assert entry["logging.googleapis.com/trace"] == "projects/p/traces/abc"
    assert entry["message_id"] == "msg_1" and entry["segments"] == 2


def test_phone_fields_are_masked_and_forbidden_fields_dropped(log_stream):
    get_logger("t").info(
        "verify", extra={"to": "+447911123456", "number": "447911123456", "code": "123456", "otp": "9999"}
    )
    (entry,) = lines(log_stream)
    assert entry["to"] == "+44********56"
    assert entry["number"] == "+44********56"
    assert entry["code"] == "[redacted]" and entry["otp"] == "[redacted]"
    assert "123456" not in log_stream.getvalue().replace("+44********56", "")


def test_registered_secrets_never_reach_a_line(log_stream):
    pem = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----"
    register_secrets(["hunter2-api-secret", pem])
    log = get_logger("t")
    log.info("secret in message hunter2-api-secret")
    log.info("in args %s", "hunter2-api-secret")
    log.warning("fields", extra={"detail": {"nested": ["hunter2-api-secret"]}, "key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"})
    try:
        raise ValueError("boom hunter2-api-secret")
    except ValueError:
        log.exception("failed")
    text = log_stream.getvalue()
    assert "hunter2-api-secret" not in text
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in text
    assert text.count("[redacted]") >= 5


def test_a_short_secret_registered_after_long_ones_is_still_blanked(log_stream):
    # Texts shorter than the shortest secret skip the search: registering a shorter one lowers that bound.
    register_secrets(["a-rather-long-secret-value"])
    register_secrets(["k9x2"])
    get_logger("t").info("k9x2", extra={"field": "k9x2", "list": ["k9x2"], "count": 3, "none": None})
    (entry,) = lines(log_stream)
    assert entry == {**entry, "message": "[redacted]", "field": "[redacted]", "list": ["[redacted]"], "count": 3, "none": None}


def test_standard_library_loggers_go_through_the_same_filter(log_stream):
    register_secrets(["library-leaked-secret"])
    logging.getLogger("httpx").warning("GET https://x/?api_secret=library-leaked-secret")
    assert "library-leaked-secret" not in log_stream.getvalue()
