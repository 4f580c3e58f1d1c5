"""Webhook authentication edges that mutation testing found unguarded (issue 19): which
"missing" explanation a refused request gets, the once-per-process log of the active modes,
and the URL token compared with ``hmac.compare_digest`` (shown by behaviour)."""

from __future__ import annotations

import hmac
import logging
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from shared.config import Settings
from shared.errors import SignatureError
from shared.webhooks import auth as auth_module
from shared.webhooks.auth import authenticate_webhook, log_modes_once
from tests.fixtures.webhooks import API_KEY, SIGNATURE_SECRET, WEBHOOK_TOKEN, webhook_jwt

NOW = 1_800_000_000
REPO = pathlib.Path(__file__).resolve().parents[3]


def _refusal(settings: Settings, **request: Any) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        authenticate_webhook(body=b"{}", authorization=request.get("authorization"), params=request.get("params"),
                             token=request.get("token"), settings=settings, now=NOW)
    return info.value


TOKEN_ONLY = Settings(api_key=API_KEY, webhook_token=WEBHOOK_TOKEN)


def test_a_jwt_signed_request_without_a_secret_configured_says_the_secret_is_missing():
    error = _refusal(TOKEN_ONLY, authorization=f"Bearer {webhook_jwt(b'{}', iat=NOW)}")
    assert error.reason == "missing" and "signed but VONAGE_SIGNATURE_SECRET is not set" in error.message


def test_an_sms_signed_request_without_a_secret_configured_says_the_secret_is_missing():
    error = _refusal(TOKEN_ONLY, params={"msisdn": "447700900001", "sig": "ab" * 16, "timestamp": str(NOW)})
    assert error.reason == "missing" and "signed but VONAGE_SIGNATURE_SECRET is not set" in error.message


def test_a_request_with_no_credential_is_told_to_add_the_token():
    error = _refusal(TOKEN_ONLY, params={"msisdn": "447700900001"})
    assert error.reason == "missing"
    assert "carries no signature" in error.message and "add ?token=<WEBHOOK_TOKEN>" in error.message
    unsigned_only = Settings(api_key=API_KEY, signature_secret=SIGNATURE_SECRET)
    assert "is signing enabled?" in _refusal(unsigned_only, params={"msisdn": "447700900001"}).message


def test_a_wrong_token_is_bad_token():
    error = _refusal(TOKEN_ONLY, token="guess")
    assert error.reason == "bad_token"


def test_the_url_token_is_compared_with_compare_digest(monkeypatch):
    seen: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    result = authenticate_webhook(body=b"", authorization=None, params={}, token=WEBHOOK_TOKEN, settings=TOKEN_ONLY, now=NOW)
    assert result.mode == "token"
    assert seen == [(WEBHOOK_TOKEN.encode(), WEBHOOK_TOKEN.encode())]


# ---- the active modes, logged once per process ----------------------------------------------------


@pytest.fixture
def fresh_log_state(monkeypatch):
    monkeypatch.setattr(auth_module, "_logged", False)


def _auth_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "shared.webhooks.auth"]


def test_the_modes_are_logged_once_at_info(fresh_log_state, caplog):
    caplog.set_level(logging.INFO)
    settings = Settings(signature_secret=SIGNATURE_SECRET, webhook_token=WEBHOOK_TOKEN)
    log_modes_once(settings)
    log_modes_once(settings)
    (record,) = _auth_records(caplog)
    assert record.levelno == logging.INFO and record.getMessage() == "webhook authentication"
    assert len(record.modes) == 2


def test_unsigned_mode_is_logged_as_a_warning(fresh_log_state, caplog):
    caplog.set_level(logging.INFO)
    log_modes_once(Settings(webhook_allow_unsigned=True))
    (record,) = _auth_records(caplog)
    assert record.levelno == logging.WARNING and "never deploy this" in record.getMessage()


def test_no_mode_at_all_is_logged_as_an_error(fresh_log_state, caplog):
    caplog.set_level(logging.INFO)
    log_modes_once(Settings())
    (record,) = _auth_records(caplog)
    assert record.levelno == logging.ERROR and "every webhook is refused" in record.getMessage()


def test_a_fresh_process_logs_the_modes_on_its_first_webhook():
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(levelname)s %(message)s')\n"
        "from shared.config import Settings\n"
        "from shared.webhooks.auth import log_modes_once\n"
        "log_modes_once(Settings(signature_secret='s' * 32))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "INFO webhook authentication" in done.stdout
