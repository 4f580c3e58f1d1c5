"""Security checks: webhook replay, constant-time comparisons, and the leak scanner itself.

- A genuine signed webhook (captured from the sandbox, SMS ``sig`` and Messages JWT alike) is
  accepted when fresh and refused as ``stale`` when replayed after the freshness window; a
  replay inside the window is recognised as a duplicate and processed once.
- Token and signature comparisons are constant-time: no ``==``/``!=``/``in`` between secret-like
  values anywhere in ``shared/`` or ``functions/`` (an AST scan with a reasoned allow-list), and
  the checks really go through ``hmac.compare_digest`` (counted).
- The suite-wide leak scanner (tests/fixtures/hardening.py) fails a test that logs a secret,
  and says which test and what kind of secret, never the secret.
"""

from __future__ import annotations

import ast
import hmac
import pathlib
import re
import subprocess
import sys
import time
import types
from typing import Any

import httpx
import pytest

from tests.fixtures.hardening import (
    HARDENING_API_TOKEN,
    HARDENING_SIGNATURE_SECRET,
    HARDENING_WEBHOOK_TOKEN,
)

REPO = pathlib.Path(__file__).resolve().parents[2]


# ---- webhook replay ---------------------------------------------------------------------------


def _capture(stack: Any, receiver: Any, api: str) -> Any:
    """A genuine signed inbound webhook, exactly as the sandbox (standing in for Vonage) sent it."""
    stack.sandbox.configure(inbound_webhook_url=f"{receiver.url}/inbound", sms_signing=True)
    stack.sandbox.inject_inbound("+447911123456", "447700900000", f"replay me {api}", api=api, format="POST")
    (captured,) = receiver.wait_for(1)
    return captured


def _replay(stack: Any, captured: Any) -> httpx.Response:
    headers = {name: value for name, value in captured.headers.items() if name in ("content-type", "authorization")}
    with httpx.Client(trust_env=False, timeout=30) as http:
        return http.request(captured.method, f"{stack.url}/inbound", params=captured.query, content=captured.body, headers=headers)


@pytest.mark.parametrize("api", ["sms", "messages"], ids=["sms-sig", "messages-jwt"])
def test_a_signed_webhook_replayed_after_the_freshness_window_is_refused(
    hardening_stack: Any, webhook_receiver: Any, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    from shared.vonage import signatures

    hardening_stack.configure(WEBHOOK_TOKEN=None)  # signatures are the only way in
    captured = _capture(hardening_stack, webhook_receiver, api)
    assert ("sig" in captured.fields) if api == "sms" else captured.headers["authorization"].startswith("Bearer ")

    # GIVEN the genuine webhook, delivered while fresh: accepted and stored
    first = _replay(hardening_stack, captured)
    assert first.status_code == 200 and first.json()["result"] == "stored", first.text
    # WHEN it is replayed inside the window: recognised, not processed again
    again = _replay(hardening_stack, captured)
    assert again.status_code == 200 and again.json()["result"] == "duplicate"
    # WHEN it is replayed after the window (SIGNATURE_MAX_SKEW_SECONDS, default 300 s)
    later = time.time() + 301
    monkeypatch.setattr(signatures, "time", types.SimpleNamespace(time=lambda: later))
    replayed = _replay(hardening_stack, captured)
    # THEN it is refused as stale, with the documented error and no hint of a secret
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "invalid_signature"
    assert "a replay or a slow clock" in replayed.json()["error"]["message"]  # reason: stale
    assert HARDENING_SIGNATURE_SECRET not in replayed.text
    assert len(hardening_stack.store.query("inbound", limit=10)) == 1


def test_a_replay_with_a_new_body_under_an_old_signature_is_refused(hardening_stack: Any, webhook_receiver: Any) -> None:
    hardening_stack.configure(WEBHOOK_TOKEN=None)
    captured = _capture(hardening_stack, webhook_receiver, "messages")
    captured.body = captured.body.replace(b"replay me", b"pay me now")
    response = _replay(hardening_stack, captured)
    assert response.status_code == 401 and "payload_hash" in response.json()["error"]["message"]


# ---- constant-time comparisons ---------------------------------------------------------------------

SECRET_LIKE = re.compile(r"(token|sig|signature|secret|hash|digest|mac|password|pin|otp|code|key)s?$", re.IGNORECASE)
# Comparisons of secret-looking names that are not secrets, each with the reason.
ALLOWED = {
    "shared/messages/records.py": {
        "entry.get('event_key') == event.event_key": "dedupe keys built from Vonage's public ids",
        "StatusEvent.from_dict(item).event_key == event.event_key": "dedupe keys built from Vonage's public ids",
    },
    "shared/vonage/errors.py": {"rule_code == vonage_code": "Vonage's public error codes"},
    "shared/vonage/_jws.py": {
        "b64url_encode(data) != text": "a received segment against its own re-encoding (canonical form): no secret on either side",
    },
    "shared/vonage/signatures.py": {
        "claims.get('api_key') != api_key": "the API key is a public identifier, checked after the signature",
        "claimed_key != api_key": "the API key is a public identifier (explains a wrong signature)",
    },
    "shared/log.py": {
        "secret in text": "redaction of log lines, not an authentication decision",
        "key not in _RESERVED": "log record attribute names",
    },
    "shared/vonage/client.py": {
        "secret.encode() in content": "redaction of Vonage's answers (is there anything to scrub?), not an authentication decision",
    },
    "shared/messages/service.py": {"exc.code in FATAL_CODES": "our error codes"},
    "shared/messages/batches.py": {
        "error.code in RETRY_CODES": "our error codes",
        "exc.code in RETRY_CODES": "our error codes",
    },
    "shared/webhooks/codes.py": {"code in MESSAGES_ERRORS": "Vonage's public error codes"},
    "shared/webhooks/inbound.py": {"code in RETRYABLE_REPLY_ERRORS": "our error codes"},
}


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, (ast.Call, ast.Subscript)):
        return _name(node.func if isinstance(node, ast.Call) else node.value)
    return None


def _secret_comparisons() -> dict[str, set[str]]:
    """``==``, ``!=``, ``in`` and ``not in`` between two non-literal operands, one of them secret-looking."""
    found: dict[str, set[str]] = {}
    for path in sorted([*REPO.joinpath("shared").rglob("*.py"), *REPO.joinpath("functions").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            if any(isinstance(o, (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.JoinedStr)) for o in operands):
                continue  # against a literal: not two secrets meeting
            if any((name := _name(o)) and SECRET_LIKE.search(name) for o in operands):
                found.setdefault(str(path.relative_to(REPO)), set()).add(ast.unparse(node))
    return found


def test_no_secret_is_compared_with_an_ordinary_operator() -> None:
    found = _secret_comparisons()
    unexplained = {path: sorted(c for c in comparisons if c not in ALLOWED.get(path, {})) for path, comparisons in found.items()}
    assert {path: c for path, c in unexplained.items() if c} == {}, "use hmac.compare_digest (or explain it in ALLOWED)"
    stale = {path: sorted(set(allowed) - found.get(path, set())) for path, allowed in ALLOWED.items()}
    assert {path: c for path, c in stale.items() if c} == {}, "ALLOWED lists comparisons that no longer exist"


@pytest.mark.parametrize(
    ("path", "function"),
    [
        ("shared/web.py", "authorize_caller"),
        ("shared/webhooks/auth.py", "authenticate_webhook"),
        ("shared/vonage/signatures.py", "verify_sms_signature"),
        ("shared/vonage/signatures.py", "verify_webhook_jwt"),
    ],
)
def test_every_secret_check_uses_compare_digest(path: str, function: str) -> None:
    tree = ast.parse(REPO.joinpath(path).read_text(encoding="utf-8"))
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function]
    calls = [ast.unparse(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)]
    assert "hmac.compare_digest" in calls


class _CountingCompare:
    """Stands in for hmac.compare_digest: same answer, records what it compared."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self._real = hmac.compare_digest

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls.append((a, b))
        return self._real(a, b)

    def compared(self, value: str | bytes) -> bool:
        needle = value.encode() if isinstance(value, str) else value
        return any(needle in (a if isinstance(a, bytes) else str(a).encode()) or
                   needle in (b if isinstance(b, bytes) else str(b).encode()) for a, b in self.calls)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> _CountingCompare:
    counter = _CountingCompare()
    monkeypatch.setattr(hmac, "compare_digest", counter)
    return counter


def test_bearer_tokens_are_compared_in_constant_time_against_every_token(counting: _CountingCompare) -> None:
    import flask

    from shared.config import Settings
    from shared.errors import UnauthorizedError
    from shared.web import authorize_caller

    tokens = ("first-token-aaaaaaaaaaaa", HARDENING_API_TOKEN, "third-token-cccccccccccc")
    settings = Settings.from_env({"API_TOKENS": ",".join(tokens)})
    with flask.Flask(__name__).test_request_context(headers={"Authorization": f"Bearer {HARDENING_API_TOKEN}"}):
        assert authorize_caller(flask.request, settings).token == HARDENING_API_TOKEN
    assert len(counting.calls) == 3, "every token is compared, so timing does not tell which one matched"
    assert counting.compared(HARDENING_API_TOKEN)
    with flask.Flask(__name__).test_request_context(headers={"Authorization": "Bearer wrong"}), pytest.raises(UnauthorizedError):
        authorize_caller(flask.request, settings)


def test_webhook_tokens_sms_signatures_and_jwts_are_compared_in_constant_time(counting: _CountingCompare) -> None:
    from shared.config import Settings
    from shared.vonage.signatures import sign_sms_params, sign_webhook_jwt, verify_sms_signature, verify_webhook_jwt
    from shared.webhooks.auth import authenticate_webhook

    settings = Settings(webhook_token=HARDENING_WEBHOOK_TOKEN)
    authenticate_webhook(body=b"", authorization=None, params={}, token=HARDENING_WEBHOOK_TOKEN, settings=settings)
    assert counting.compared(HARDENING_WEBHOOK_TOKEN)

    counting.calls.clear()
    signed = sign_sms_params({"msisdn": "447911123456", "text": "hi"}, secret=HARDENING_SIGNATURE_SECRET, method="sha256")
    verify_sms_signature(signed, secret=HARDENING_SIGNATURE_SECRET, method="sha256")
    assert counting.compared(signed["sig"])

    counting.calls.clear()
    body = b'{"message_uuid": "x"}'
    token = sign_webhook_jwt(body, secret=HARDENING_SIGNATURE_SECRET)
    verify_webhook_jwt(body, f"Bearer {token}", secret=HARDENING_SIGNATURE_SECRET)
    assert len(counting.calls) == 2, "the HMAC and the payload_hash are both compared in constant time"


# ---- the leak scanner fails a leaking test ------------------------------------------------------

_LEAKY = '''
import logging

from tests.fixtures.hardening import HARDENING_API_TOKEN


def test_leaks_a_token_in_a_log_line():
    logging.getLogger("demo").warning("the token is " + HARDENING_API_TOKEN)


def test_clean():
    logging.getLogger("demo").warning("nothing to see")


def test_streams_a_response_the_scanner_cannot_read():
    import flask

    app = flask.Flask("demo")
    app.add_url_rule("/stream", "stream", lambda: flask.Response(iter([b"a"])))
    assert app.test_client().get("/stream").data == b"a"
'''


def test_the_leak_scanner_fails_a_test_that_logs_a_secret(tmp_path: Any) -> None:
    demo = REPO / "tests" / "hardening" / f"leak_demo_{tmp_path.name}.py"  # inside the tree: the fixtures load
    demo.write_text(_LEAKY, encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", str(demo), "-q", "-p", "no:cacheprovider"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )
    finally:
        demo.unlink()
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "3 passed, 2 errors" in output  # the leaking and the unreadable test error at teardown
    assert "test_streams_a_response_the_scanner_cannot_read: the leak scanner could not read" in output
    assert "the response body of '/stream' could not be read (a streamed response)" in output
    assert "test_leaks_a_token_in_a_log_line leaked secrets" in output
    assert "an API token in a log line of logger 'demo'" in output
    lines = output[output.index("leaked secrets") :].splitlines()
    report = "\n".join([lines[0], *[line for line in lines[1:] if line.startswith("  ")][:5]])
    assert "an API token" in report
    assert HARDENING_API_TOKEN not in report, "the failure names the kind of secret, never the secret"
