"""The inbound function over real HTTP: every format, every signing method, refusals, dedupe, outages.

Requests go through a real socket to the function served by the one-process app; the state
store is the ``store`` fixture (SQLite, and the Firestore emulator under ./test.sh). Replies
are captured by a stand-in of the send path here; tests/functions/test_inbound_sandbox.py
runs the real send path against the local Vonage sandbox.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from shared.log import JsonFormatter
from shared.messages.suppression import is_suppressed
from shared.webhooks import inbound as inbound_module
from shared.webhooks.inbound import INBOUND
from tests.fixtures.webhooks import (
    API_TOKEN,
    SIGNATURE_SECRET,
    WEBHOOK_TOKEN,
    FaultyStore,
    RecordingSender,
    messages_inbound,
    sms_inbound,
)
from tests.shared.webhooks import bots

USER = "+447700900123"
METHODS = ["md5hash", "md5", "sha1", "sha256", "sha512"]
FORMATS = ["GET", "POST", "POST-JSON"]


@pytest.fixture(autouse=True)
def _clean_bots():
    bots.CALLS.clear()
    yield
    bots.CALLS.clear()


@pytest.fixture
def sender(monkeypatch):
    """Replies captured instead of sent (the sandbox tests cover the real send path)."""
    recording = RecordingSender()
    monkeypatch.setattr(inbound_module, "service_sender", lambda settings, store, vonage: recording)
    return recording


def log_lines(caplog) -> str:
    """What the server side logged (the test's own HTTP client, playing Vonage, is left out)."""
    formatter = JsonFormatter()
    return "\n".join(formatter.format(r) for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))


# ---- formats and signatures -------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_sms_inbound_signed_with_every_method_in_every_format(webhook_env, webhook_client, store, fmt, method):
    webhook_env.set(VONAGE_SIGNATURE_METHOD=method)
    params = sms_inbound("Hi & welcome = yes", message_id=f"ID-{fmt}-{method}")
    response = webhook_client.sms("/inbound", params, fmt=fmt, method=method)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "stored", "id": f"ID-{fmt}-{method}", "action": "none"}
    record = store.get(INBOUND, f"ID-{fmt}-{method}")
    assert record["text"] == "Hi & welcome = yes" and record["from"] == USER
    assert "sig" not in json.loads(record["raw"])


def test_a_signed_sms_json_webhook_keeps_only_the_fields_its_signature_covers(webhook_client, store):
    # Regression (issue 15): nested fields are not part of the sig, yet they were stored.
    params = sms_inbound("hello", message_id="ID-NESTED")
    response = webhook_client.sms("/inbound", params, tamper=lambda f: f.update({"extra": {"evil": "<script>"}}))
    assert response.status_code == 200, response.text
    raw = json.loads(store.get(INBOUND, "ID-NESTED")["raw"])
    assert "extra" not in raw and raw["text"] == "hello"


@pytest.mark.parametrize(
    ("channel", "message_type", "extra"),
    [
        ("sms", "text", {"sms": {"num_messages": "1"}, "usage": {"price": "0.0057", "currency": "EUR"}}),
        ("mms", "image", {"image": {"url": "https://api.nexmo.com/v3/media/1", "caption": "pic"}}),
        ("whatsapp", "text", {"profile": {"name": "Ada"}}),
        ("whatsapp", "location", {"location": {"lat": 51.5, "long": -0.1}}),
        ("whatsapp", "reply", {"reply": {"id": "r1", "title": "Yes"}}),
        ("whatsapp", "button", {"button": {"payload": "p", "text": "Go"}}),
        ("messenger", "text", {}),
        ("viber_service", "video", {"video": {"url": "https://api.nexmo.com/v3/media/2"}}),
        ("rcs", "file", {"file": {"url": "https://api.nexmo.com/v3/media/3"}}),
    ],
)
def test_messages_api_inbound_on_every_channel(webhook_client, store, channel, message_type, extra):
    payload = messages_inbound(channel, message_type, **extra)
    response = webhook_client.json("/inbound", payload)
    assert response.status_code == 200, response.text
    record = store.get(INBOUND, payload["message_uuid"])
    assert record["api"] == "messages" and record["channel"] == channel.replace("viber_service", "viber")
    assert record["message_type"] == message_type
    assert json.loads(record["raw"]) == payload


# ---- refusals ----------------------------------------------------------------------------


def test_a_tampered_sms_webhook_is_refused_with_the_reason_logged(webhook_client, store, caplog):
    caplog.set_level(logging.INFO)
    params = sms_inbound("top secret words", message_id="T-1")
    response = webhook_client.sms("/inbound", params, tamper=lambda fields: fields.update(text="changed"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert store.get(INBOUND, "T-1") is None
    logs = log_lines(caplog)
    assert '"reason": "bad_signature"' in logs
    assert SIGNATURE_SECRET not in logs and "top secret words" not in logs and "changed" not in logs


def test_a_stale_sms_webhook_is_refused(webhook_client, store, caplog):
    caplog.set_level(logging.INFO)
    response = webhook_client.sms("/inbound", sms_inbound(message_id="ST-1"), timestamp=time.time() - 3600)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_signature"
    assert "s old (limit 300 s)" in error["message"]  # stale, not a wrong secret
    assert '"reason": "stale"' in log_lines(caplog)
    assert store.get(INBOUND, "ST-1") is None


def test_an_unsigned_webhook_is_refused(webhook_client, store):
    response = webhook_client.sms("/inbound", sms_inbound(message_id="U-1"), sign=False)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_signature"
    assert store.get(INBOUND, "U-1") is None
    assert webhook_client.json("/inbound", messages_inbound(), sign=False).status_code == 401


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"signed_body": b'{"channel":"sms"}'}, "body_hash_mismatch"),
        ({"iat": time.time() - 3600}, "stale"),
        ({"iat": time.time() + 3600}, "stale"),
        ({"secret": "not-the-signature-secret-0123456789abcdef"}, "bad_signature"),
        ({"api_key": "otherkey"}, "wrong_key"),
    ],
    ids=["tampered-body", "stale", "future", "wrong-secret", "wrong-api-key"],
)
def test_bad_webhook_jwts_are_refused(webhook_client, store, caplog, kwargs, reason):
    caplog.set_level(logging.INFO)
    payload = messages_inbound()
    response = webhook_client.json("/inbound", payload, **kwargs)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert f'"reason": "{reason}"' in log_lines(caplog)
    assert store.get(INBOUND, payload["message_uuid"]) is None
    assert store.query(INBOUND, limit=5) == []


def test_a_signed_webhook_replayed_after_the_freshness_window_is_refused(webhook_env, webhook_client, store):
    # A request signed 200 s ago is fresh under the default 300 s window...
    issued = time.time() - 200
    payload = messages_inbound()
    assert webhook_client.json("/inbound", payload, iat=issued).status_code == 200
    # ...and the same bytes replayed once the window has passed (here: the window shrinks below its age) are not.
    webhook_env.set(SIGNATURE_MAX_SKEW_SECONDS="100")
    response = webhook_client.json("/inbound", payload, iat=issued)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_signature"
    assert "(limit 100 s)" in response.json()["error"]["message"]
    params = sms_inbound(message_id="RP-1")
    replayed = webhook_client.sms("/inbound", params, timestamp=issued)
    assert replayed.status_code == 401 and "(limit 100 s)" in replayed.json()["error"]["message"]
    assert store.get(INBOUND, "RP-1") is None


def test_url_token_mode(webhook_env, webhook_client, store):
    webhook_env.set(WEBHOOK_TOKEN=WEBHOOK_TOKEN, VONAGE_SIGNATURE_SECRET=None)
    for fmt in FORMATS:
        params = sms_inbound(message_id=f"TK-{fmt}")
        assert webhook_client.sms("/inbound", params, fmt=fmt, sign=False, token=WEBHOOK_TOKEN).status_code == 200
        assert "token" not in json.loads(store.get(INBOUND, f"TK-{fmt}")["raw"])
    wrong = webhook_client.sms("/inbound", sms_inbound(message_id="TK-wrong"), sign=False, token="guess")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_signature"
    missing = webhook_client.sms("/inbound", sms_inbound(message_id="TK-none"), sign=False)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_signature"
    assert store.get(INBOUND, "TK-wrong") is None and store.get(INBOUND, "TK-none") is None


def test_signature_or_token_either_is_enough(webhook_env, webhook_client):
    webhook_env.set(WEBHOOK_TOKEN=WEBHOOK_TOKEN)
    assert webhook_client.sms("/inbound", sms_inbound(), sign=False, token=WEBHOOK_TOKEN).status_code == 200
    assert webhook_client.sms("/inbound", sms_inbound()).status_code == 200


def test_unsigned_only_when_the_deployment_says_so(webhook_env, webhook_client):
    webhook_env.set(VONAGE_SIGNATURE_SECRET=None)
    response = webhook_client.sms("/inbound", sms_inbound(), sign=False)
    assert response.status_code == 500 and response.json()["error"]["code"] == "misconfigured"
    webhook_env.set(WEBHOOK_ALLOW_UNSIGNED="true")
    assert webhook_client.sms("/inbound", sms_inbound(), sign=False).status_code == 200


def test_malformed_payloads_are_400_and_logged_without_secrets(webhook_env, webhook_client, caplog):
    caplog.set_level(logging.INFO)
    webhook_env.set(WEBHOOK_TOKEN=WEBHOOK_TOKEN)
    garbage = webhook_client.http.post("/inbound", params={"token": WEBHOOK_TOKEN}, content=b'{"msisdn": ',
                                       headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_json"
    params = sms_inbound("private words")
    del params["messageId"]
    missing = webhook_client.sms("/inbound", params, token=WEBHOOK_TOKEN)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "invalid_webhook"
    bad_json = webhook_client.json("/inbound", {}, body=b"[1, 2")
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    logs = log_lines(caplog)
    assert WEBHOOK_TOKEN not in logs and SIGNATURE_SECRET not in logs and "private words" not in logs


def test_an_anonymous_malformed_request_gets_401_not_a_parser_hint(webhook_client, store):
    response = webhook_client.http.post("/inbound", content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert "json" not in response.json()["error"]["message"].lower()
    assert store.query(INBOUND, limit=5) == []


def test_methods_and_sizes(webhook_client, store):
    put = webhook_client.http.put("/inbound", content=b"{}")
    assert put.status_code == 405 and put.json()["error"]["code"] == "method_not_allowed"
    huge = webhook_client.json("/inbound", messages_inbound(text="x" * 300_000))
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
    assert store.query(INBOUND, limit=5) == []


# ---- once-only ---------------------------------------------------------------------------


def test_twenty_concurrent_copies_are_processed_once(webhook_env, webhook_client, store, sender):
    webhook_env.set(INBOUND_HANDLER="tests.shared.webhooks.bots:echo")
    payload = messages_inbound("whatsapp", text="race")
    statuses = []
    barrier = threading.Barrier(20)

    def deliver():
        barrier.wait()
        statuses.append(webhook_client.json("/inbound", payload).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 20
    assert [doc["id"] for doc in store.query(INBOUND)] == [payload["message_uuid"]]
    assert len(bots.CALLS) == 1 and len(sender.calls) == 1


def test_three_parts_arriving_3_1_1_2_in_mixed_formats_are_stored_once_complete(webhook_env, webhook_client, store, sender):
    webhook_env.set(INBOUND_HANDLER="tests.shared.webhooks.bots:echo")
    texts = {1: "Part one, ", 2: "part two, ", 3: "part three."}
    answers = []
    for n, fmt in zip((3, 1, 1, 2), ("GET", "POST", "POST-JSON", "POST"), strict=True):
        params = sms_inbound(texts[n], message_id=f"CP-{n}", concat=("42", 3, n))
        answers.append(webhook_client.sms("/inbound", params, fmt=fmt).json()["result"])
    assert answers == ["part_stored", "part_stored", "duplicate", "stored"]
    records = store.query(INBOUND)
    assert len(records) == 1 and records[0]["text"] == "Part one, part two, part three."
    assert records[0]["id"] == "CP-1" and records[0]["parts"] == 3
    assert [call["text"] for call in bots.CALLS] == ["Part one, part two, part three."]
    assert len(sender.calls) == 1


def test_the_reply_handler_runs_once_per_message_under_retries(webhook_env, webhook_client, sender):
    webhook_env.set(INBOUND_HANDLER="tests.shared.webhooks.bots:echo")
    params = sms_inbound("ping", message_id="RH-1")
    answers = [webhook_client.sms("/inbound", params).json()["result"] for _ in range(3)]
    assert answers == ["stored", "duplicate", "duplicate"]
    assert len(bots.CALLS) == 1
    assert [(c["text"], c["idempotency_key"]) for c in sender.calls] == [("echo: ping", "inbound-reply:RH-1")]


def test_stop_puts_the_sender_on_the_suppression_list_and_start_takes_them_off(webhook_client, store, sender):
    assert webhook_client.sms("/inbound", sms_inbound("STOP", message_id="OPT-1")).json()["action"] == "optout"
    assert is_suppressed(store, USER)
    assert webhook_client.sms("/inbound", sms_inbound("Start", message_id="OPT-2")).json()["action"] == "optin"
    assert not is_suppressed(store, USER)
    assert [c["bypass_suppression"] for c in sender.calls] == [True, False]


# ---- outages -----------------------------------------------------------------------------


def test_store_outage_answers_503_and_the_retry_stores_the_message(webhook_client, store, monkeypatch):
    import functions.inbound

    faulty = FaultyStore(store)
    faulty.down = True
    monkeypatch.setattr(functions.inbound, "get_store", lambda: faulty)
    params = sms_inbound("keep me", message_id="OUT-1")
    response = webhook_client.sms("/inbound", params)
    assert response.status_code == 503 and response.json()["error"]["code"] == "store_unavailable"
    faulty.down = False
    assert webhook_client.sms("/inbound", params).json()["result"] == "stored"
    assert store.get(INBOUND, "OUT-1")["text"] == "keep me"


def test_store_failing_mid_way_answers_503_and_nothing_is_lost(webhook_env, webhook_client, store, monkeypatch, sender):
    import functions.inbound

    webhook_env.set(INBOUND_HANDLER="tests.shared.webhooks.bots:echo")
    faulty = FaultyStore(store)
    faulty.fail("update", "webhook_events")  # everything is stored and handed on; marking the event done fails
    monkeypatch.setattr(functions.inbound, "get_store", lambda: faulty)
    payload = messages_inbound(text="mid-way")
    first = webhook_client.json("/inbound", payload)
    assert first.status_code == 503 and first.json()["error"]["code"] == "store_unavailable"
    assert store.get(INBOUND, payload["message_uuid"])["text"] == "mid-way"  # stored before the failure
    assert webhook_client.json("/inbound", payload).status_code == 200
    assert webhook_client.json("/inbound", payload).json()["result"] == "duplicate"
    assert len(bots.CALLS) == 1 and len(sender.calls) == 1


# ---- the conversation list -----------------------------------------------------------------


def test_listing_needs_an_api_token_and_filters_by_number(webhook_client):
    for n, sender_number in enumerate(["447700900001", "447700900002", "447700900001"]):
        webhook_client.sms("/inbound", sms_inbound(f"m{n}", msisdn=sender_number, message_id=f"LS-{n}"))
        time.sleep(0.005)  # distinct received_at
    listed = webhook_client.list_inbound(number="+447700900001")
    assert listed.status_code == 200
    body = listed.json()
    assert [m["id"] for m in body["messages"]] == ["LS-2", "LS-0"] and body["count"] == 2
    assert "raw" not in body["messages"][0]
    assert [m["id"] for m in webhook_client.list_inbound(limit=1).json()["messages"]] == ["LS-2"]
    wrong = webhook_client.list_inbound(token="wrong")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    assert "LS-" not in wrong.text
    lots = webhook_client.list_inbound(limit="lots")
    assert lots.status_code == 422 and lots.json()["error"]["code"] == "invalid_field"
    assert webhook_client.list_inbound(token=API_TOKEN, raw="true").json()["messages"][0]["raw"]


@pytest.mark.parametrize("params", [{}, {"number": "14155550123"}, {"limit": "5", "raw": "true"}])
def test_listing_without_a_token_is_an_auth_error_not_a_bad_signature(webhook_client, params):
    # A newcomer's `curl /inbound?number=...` without the header used to hear "invalid_signature".
    response = webhook_client.http.get("/inbound", params=params)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert "Authorization: Bearer" in error["message"] and "signature" not in error["message"]


def test_a_get_webhook_without_its_signature_is_still_a_signature_error(webhook_client, store):
    response = webhook_client.http.get("/inbound", params=sms_inbound(message_id="G-1"))
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_signature"
    assert store.get(INBOUND, "G-1") is None
