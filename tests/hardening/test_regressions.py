"""Regression tests for the bugs the hardening runs (chaos, fuzzing) found, one per fix."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.messages.records import (
    MESSAGES,
    StatusEvent,
    attach_vonage_ids,
    new_message_record,
    record_status_event,
)
from shared.store.sqlite import SQLiteStateStore
from tests.fixtures.hardening import HARDENING_API_TOKEN


@pytest.fixture
def sqlite(tmp_path: Any) -> Any:
    store = SQLiteStateStore(str(tmp_path / "regressions.sqlite3"))
    yield store
    store.close()


def test_an_sms_receipt_retried_with_a_new_timestamp_enters_the_history_once(sqlite: Any) -> None:
    # GIVEN a sent SMS and its delivered receipt, applied once (the webhook then failed with a
    # 503 before it was marked done, so Vonage retries it)
    sqlite.create(MESSAGES, "msg_1", new_message_record("msg_1", channel="sms", api="sms", to="+447700900123", sender="Acme"))
    attach_vonage_ids(sqlite, "msg_1", [{"vonage_id": "part-1"}])
    first = StatusEvent("part-1", "delivered", timestamp="2026-01-30 12:00:05", error_code="0", source="sms")
    assert record_status_event(sqlite, first) == "applied"
    # WHEN the retry arrives rendered afresh: Vonage's message-timestamp is when it pushed this attempt
    retry = StatusEvent("part-1", "delivered", timestamp="2026-01-30 12:01:05", error_code="0", source="sms")
    # THEN it changes nothing
    assert record_status_event(sqlite, retry) == "duplicate"
    history = sqlite.get(MESSAGES, "msg_1")["history"]
    assert [entry["status"] for entry in history] == ["pending", "submitted", "delivered"]


def test_a_messages_api_status_keeps_its_own_time_in_the_key(sqlite: Any) -> None:
    # Messages API statuses carry the event's own time: two reads at two times are two events.
    sqlite.create(MESSAGES, "msg_2", new_message_record("msg_2", channel="whatsapp", api="messages", to="+447700900123", sender="447700900000"))
    attach_vonage_ids(sqlite, "msg_2", [{"vonage_id": "uuid-2"}])
    for at in ("2026-01-30T12:00:05Z", "2026-01-30T12:00:09Z"):
        assert record_status_event(sqlite, StatusEvent("uuid-2", "read", timestamp=at, source="messages")) == "applied"


def test_send_records_its_result_through_a_brief_store_failure(hardening_stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a store whose next write of a message record and next idempotency completion fail
    # (after Vonage accepted the message: the caller cannot retry without sending it twice)
    import functions.send
    from shared.messages.idempotency import IDEMPOTENCY
    from tests.fixtures.webhooks import FaultyStore

    store = FaultyStore(hardening_stack.store)
    monkeypatch.setattr(functions.send, "get_store", lambda: store)
    # after=1: the first update of each is the write before the call (this wrapper has no
    # multi-document transaction, so the claim and the record's create are one update each)
    store.fail("update", MESSAGES, times=1, after=1)
    store.fail("update", IDEMPOTENCY, times=1, after=1)
    # WHEN a message is sent with an Idempotency-Key
    with httpx.Client(base_url=hardening_stack.url, trust_env=False) as http:
        response = http.post(
            "/send",
            json={"to": "+447911123456", "text": "hello"},
            headers={"Authorization": f"Bearer {HARDENING_API_TOKEN}", "Idempotency-Key": "regress-1"},
        )
    # THEN the record has its Vonage id and the key holds the result (both writes were retried)
    assert response.status_code == 202, response.text
    record = store.inner.get(MESSAGES, response.json()["id"])
    assert record["vonage_ids"] == response.json()["vonage_ids"] and record["status"] in ("submitted", "delivered")
    keys = store.inner.query(IDEMPOTENCY, limit=10)
    assert sorted(doc["status"] for doc in keys) == ["completed", "released"]  # recipient key, request key
    assert "warning" not in response.json()


def test_a_reply_held_by_another_attempt_is_retried_not_dropped(sqlite: Any, tmp_path: Any) -> None:
    # GIVEN an earlier attempt that failed after claiming the reply's idempotency key and could
    # not release it (the store failed twice in a row): the send path answers "in_progress"
    from shared.config import Settings
    from shared.errors import ServiceError
    from shared.webhooks.inbound import INBOUND, receive_inbound
    from tests.fixtures.webhooks import sms_inbound

    answers = [{"status": "in_progress"}, {"status": "submitted", "id": "msg_reply"}]
    sent: list[dict[str, Any]] = []

    def send(**kwargs: Any) -> dict[str, Any]:
        sent.append(kwargs)
        return answers.pop(0)

    settings = Settings(inbound_handler="examples.echo_bot:handle", signature_secret="x" * 16)
    fields = sms_inbound("hello there", msisdn="447911123456")
    # WHEN the webhook is processed
    with pytest.raises(ServiceError) as refused:
        receive_inbound(fields, settings=settings, store=sqlite, send=send)
    # THEN Vonage is asked to retry (the hand-off is not finished without its reply) ...
    assert refused.value.status == 503 and refused.value.code == "handoff_in_progress"
    assert sqlite.get(INBOUND, fields["messageId"])["handoff"]["state"] == "pending"
    # ... and the retry sends the reply once the key is free
    assert receive_inbound(fields, settings=settings, store=sqlite, send=send)["result"] == "duplicate"
    handoff = sqlite.get(INBOUND, fields["messageId"])["handoff"]
    assert handoff["state"] == "done" and handoff["reply_result"]["sent"] is True
    assert [call["idempotency_key"] for call in sent] == [f"inbound-reply:{fields['messageId']}"] * 2


def test_a_reply_whose_request_key_is_held_is_retried_not_dropped(sqlite: Any) -> None:
    # The same when the send path refuses at the request-level key (409 idempotency_in_progress).
    from shared.config import Settings
    from shared.errors import ServiceError
    from shared.messages.idempotency import IdempotencyInProgressError
    from shared.webhooks.inbound import INBOUND, receive_inbound
    from tests.fixtures.webhooks import sms_inbound

    answers: list[Any] = [IdempotencyInProgressError("busy", retry_after=1.0), {"status": "submitted", "id": "msg_r"}]

    def send(**kwargs: Any) -> dict[str, Any]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    settings = Settings(inbound_handler="examples.echo_bot:handle", signature_secret="x" * 16)
    fields = sms_inbound("hello again", msisdn="447911123456")
    with pytest.raises(ServiceError) as refused:
        receive_inbound(fields, settings=settings, store=sqlite, send=send)
    assert refused.value.status == 503 and refused.value.code == "handoff_in_progress"
    receive_inbound(fields, settings=settings, store=sqlite, send=send)
    assert sqlite.get(INBOUND, fields["messageId"])["handoff"]["reply_result"]["sent"] is True


@pytest.mark.parametrize(("method", "path"), [("GET", "/send/%2B%0A"), ("PROPFIND", "/send/x"), ("TRACE", "/verify-start")])
def test_a_path_or_method_the_url_rule_cannot_match_still_reaches_the_function(
    hardening_stack: Any, method: str, path: str
) -> None:
    # Found by schemathesis: a newline in the path gave Flask's HTML 404 page, not our JSON.
    with httpx.Client(base_url=hardening_stack.url, trust_env=False) as http:
        response = http.request(method, path, headers={"Authorization": f"Bearer {HARDENING_API_TOKEN}"})
    assert response.status_code in (404, 405)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] in ("not_found", "method_not_allowed")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/send", b'{"\\ud800": 1}'),  # echoed in the unknown_field message: was Flask's HTML 500
        ("/inbound?token={token}", b'{"msisdn": "447911123456", "to": "447700900000", "messageId": "A\\ud800", "text": "x"}'),
        ("/status?token={token}", b'{"messageId": "\\udfff", "status": "delivered"}'),  # was a 500 at the store
    ],
)
def test_an_unpaired_surrogate_escape_is_a_400_not_a_500(hardening_stack: Any, path: str, body: bytes) -> None:
    from tests.fixtures.hardening import HARDENING_WEBHOOK_TOKEN

    with httpx.Client(base_url=hardening_stack.url, trust_env=False) as http:
        response = http.post(
            path.format(token=HARDENING_WEBHOOK_TOKEN),
            content=body,
            headers={"Authorization": f"Bearer {HARDENING_API_TOKEN}", "Content-Type": "application/json"}
            if path == "/send" else {"Content-Type": "application/json"},
        )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


def test_json_response_escapes_what_utf8_cannot_carry() -> None:
    import flask

    from shared.web import json_response

    with flask.Flask(__name__).app_context():
        response = json_response({"value": "a\ud800b"})
    assert response.get_data() == b'{"value":"a\\ud800b"}'


def test_an_inbound_message_with_an_array_inside_an_array_is_stored(hardening_stack: Any) -> None:
    # Found by the long fuzz profile: the store refuses nested arrays (as Firestore does): a 500.
    from tests.fixtures.hardening import HARDENING_WEBHOOK_TOKEN

    payload = {"channel": "whatsapp", "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-000000000001", "from": "447911123456",
               "to": "447700900000", "message_type": "text", "text": "hi", "context": {"d": [[1, 2], {"x": [[3]]}]}}
    with httpx.Client(base_url=hardening_stack.url, trust_env=False) as http:
        response = http.post("/inbound", params={"token": HARDENING_WEBHOOK_TOKEN}, json=payload)
    assert response.status_code == 200, response.text
    stored = hardening_stack.store.get("inbound", payload["message_uuid"])
    assert stored["details"]["context"] == {"d": ["[1, 2]", {"x": ["[3]"]}]}


def test_a_streamed_body_is_not_read_past_the_limit(hardening_stack: Any) -> None:
    # A chunked body declares no length: it used to be read whole, then measured.
    import io

    import app as one_process_app
    from shared.config import Settings

    class Endless(io.RawIOBase):
        consumed = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            buffer[:] = b"a" * len(buffer)
            Endless.consumed += len(buffer)
            return len(buffer)

    from werkzeug.test import EnvironBuilder, run_wsgi_app

    environ = EnvironBuilder(
        path="/send", method="POST",
        headers={"Authorization": f"Bearer {HARDENING_API_TOKEN}", "Content-Type": "application/json",
                 "Transfer-Encoding": "chunked"},
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BufferedReader(Endless())
    environ["wsgi.input_terminated"] = True  # what a server sets for a chunked request
    body, status, _headers = run_wsgi_app(one_process_app.create_app(), environ, buffered=True)
    assert status.startswith("413") and b"payload_too_large" in b"".join(body)
    assert Endless.consumed < 2 * Settings().max_body_bytes


def test_an_inbound_message_with_reserved_or_empty_field_names_is_stored(hardening_stack: Any) -> None:
    # Found by the long fuzz profile: "__x__" was renamed "___x___", still a reserved name: a 500.
    from tests.fixtures.hardening import HARDENING_WEBHOOK_TOKEN

    payload = {"channel": "whatsapp", "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-000000000002", "from": "447911123456",
               "to": "447700900000", "message_type": "button", "button": {"__name__": "x", "": 1, "__": 2, "text": "OK"}}
    with httpx.Client(base_url=hardening_stack.url, trust_env=False) as http:
        response = http.post("/inbound", params={"token": HARDENING_WEBHOOK_TOKEN}, json=payload)
    assert response.status_code == 200, response.text
    stored = hardening_stack.store.get("inbound", payload["message_uuid"])
    assert stored["details"]["button"] == {"~__name__": "x", "~": 1, "__": 2, "text": "OK"}


def test_a_verify_summary_with_odd_workflow_values_is_stored(hardening_stack: Any) -> None:
    # Workflow steps were stored as sent: a list inside a list there made the store refuse (a 500).
    from tests.fixtures.hardening import HARDENING_WEBHOOK_TOKEN

    with httpx.Client(base_url=hardening_stack.url, trust_env=False) as http:
        started = http.post("/verify-start", json={"number": "+447400123456", "brand": "Acme"},
                            headers={"Authorization": f"Bearer {HARDENING_API_TOKEN}"})
        request_id = started.json()["request_id"]
        summary = {"request_id": request_id, "type": "summary", "status": "completed", "submitted_at": "2026-01-30T12:00:00Z",
                   "workflow": [{"channel": [["sms"]], "status": {"a": [[1]]}}, {"channel": "sms", "status": "completed"}]}
        response = http.post("/status", params={"token": HARDENING_WEBHOOK_TOKEN}, json=summary)
    assert response.status_code == 200 and response.json()["result"] == "applied", response.text


def test_a_dry_run_refuses_a_malformed_idempotency_key_too(hardening_stack: Any) -> None:
    # Found by schemathesis: the header's documented pattern was not enforced on a dry run.
    with httpx.Client(base_url=hardening_stack.url, trust_env=False) as http:
        response = http.post("/send", json={"to": "+447911123456", "text": "hi", "dry_run": True},
                             headers={"Authorization": f"Bearer {HARDENING_API_TOKEN}", "Idempotency-Key": "tab\there"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_idempotency_key"


def test_a_reply_vonage_could_not_take_is_retried_not_dropped(sqlite: Any) -> None:
    # Found by the long chaos profile: a reply refused with a 5xx after the client's retries was
    # recorded as failed and the hand-off finished: the reply was never sent.
    from shared.config import Settings
    from shared.errors import ServiceError
    from shared.webhooks.inbound import INBOUND, receive_inbound
    from tests.fixtures.webhooks import sms_inbound

    answers = [{"status": "failed", "error": {"code": "vonage_unavailable", "http_status": 503}},
               {"status": "submitted", "id": "msg_reply"}]
    settings = Settings(inbound_handler="examples.echo_bot:handle", signature_secret="x" * 16)
    fields = sms_inbound("hello later", msisdn="447911123456")
    with pytest.raises(ServiceError) as refused:
        receive_inbound(fields, settings=settings, store=sqlite, send=lambda **kwargs: answers.pop(0))
    assert refused.value.status == 503 and refused.value.code == "vonage_unavailable"
    receive_inbound(fields, settings=settings, store=sqlite, send=lambda **kwargs: answers.pop(0))
    assert sqlite.get(INBOUND, fields["messageId"])["handoff"]["reply_result"]["sent"] is True


def test_a_reply_vonage_refused_for_good_is_recorded_not_retried(sqlite: Any) -> None:
    from shared.config import Settings
    from shared.webhooks.inbound import INBOUND, receive_inbound
    from tests.fixtures.webhooks import sms_inbound

    settings = Settings(inbound_handler="examples.echo_bot:handle", signature_secret="x" * 16)
    fields = sms_inbound("hello barred", msisdn="447911123456")
    refusal = {"status": "failed", "error": {"code": "number_barred", "http_status": 422}}
    receive_inbound(fields, settings=settings, store=sqlite, send=lambda **kwargs: refusal)
    handoff = sqlite.get(INBOUND, fields["messageId"])["handoff"]
    assert handoff["state"] == "done" and handoff["reply_result"] == {"sent": False, "status": "failed", "error": "number_barred"}
