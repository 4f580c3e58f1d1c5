"""The send service on every store backend, and ``send_text`` for other functions' replies.

Most tests talk real HTTP to the local Vonage sandbox with the real ``VonageClient``. A few
Vonage answers the sandbox cannot produce (an SMS refused for its number, a synchronous 1160,
a long SMS whose second part fails) are served by ``httpx.MockTransport`` under the same
real client: only the network is replaced, never our code.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from shared.config import Settings
from shared.errors import InvalidPhoneError, ServiceError
from shared.messages import idempotency as idem
from shared.messages.records import MESSAGES
from shared.messages.service import get_message, send_messages, send_text
from shared.messages.suppression import suppress
from shared.vonage.client import VonageClient
from tests.fixtures.sandbox import SANDBOX_API_KEY, SANDBOX_API_SECRET
from tests.fixtures.send import BRAND, GB_MOBILE

SMS = {"to": GB_MOBILE, "text": "Your code is ready", "api": "sms"}


def sandbox_settings(sandbox: Any, **overrides: Any) -> Settings:
    values = {
        "api_key": SANDBOX_API_KEY,
        "api_secret": SANDBOX_API_SECRET,
        "brand_number": BRAND,
        "api_base_url": sandbox.url,
        "rest_base_url": sandbox.url,
        "vonage_max_retries": 0,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def stack(sandbox_factory, store, store_clock):
    sandbox = sandbox_factory()
    settings = sandbox_settings(sandbox)
    client = VonageClient(settings)
    yield sandbox, settings, client
    client.close()


def test_twenty_concurrent_identical_sends_call_vonage_once_on_every_store(stack, store, store_clock):
    sandbox, settings, client = stack
    sandbox.set_faults("delay=0.3;count=1")
    barrier = threading.Barrier(20)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        try:
            outcome = send_messages(SMS, idempotency_key="same", settings=settings, store=store, vonage=client,
                                    clock=store_clock)
            result: Any = (outcome.status, outcome.body["id"])
        except ServiceError as exc:
            result = (exc.status, exc.code)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 20
    assert len(sandbox.requests(api="sms")) == 1
    sent = {o for o in outcomes if o[0] == 202}
    assert len(sent) == 1
    assert all(o == (409, "idempotency_in_progress") for o in outcomes if o[0] != 202)
    assert len(store.query(MESSAGES, limit=50)) == 1


def test_a_connection_that_never_opened_frees_the_key(stack, store, store_clock):
    sandbox, settings, client = stack
    closed = sandbox_settings(sandbox, rest_base_url="http://127.0.0.1:9")  # discard port: nothing listens
    with VonageClient(closed) as offline:
        with pytest.raises(ServiceError) as info:
            send_messages(SMS, idempotency_key="k", settings=closed, store=store, vonage=offline, clock=store_clock)
    assert info.value.code == "vonage_unavailable"
    # Nothing can have been sent: the same key works at once.
    outcome = send_messages(SMS, idempotency_key="k", settings=settings, store=store, vonage=client, clock=store_clock)
    assert outcome.status == 202


def test_the_record_is_written_before_vonage_is_called(stack, store, store_clock, monkeypatch):
    sandbox, settings, client = stack
    seen: list[Any] = []
    original = client.send_sms

    def spy(**kwargs: Any) -> Any:
        seen.append([doc["status"] for doc in store.query(MESSAGES)])
        return original(**kwargs)

    monkeypatch.setattr(client, "send_sms", spy)
    outcome = send_messages(SMS, idempotency_key="k", settings=settings, store=store, vonage=client, clock=store_clock)
    assert seen == [["pending"]]
    assert get_message(store, outcome.body["id"])["status"] == "submitted"


# ---- send_text: the path other functions reply through ------------------------------------------


def test_send_text_sends_once_per_key_and_returns_the_result(stack, store):
    sandbox, settings, client = stack
    first = send_text(to="447911123456", text="Thanks!", idempotency_key="reply:abc", settings=settings, store=store,
                      vonage=client)
    again = send_text(to="447911123456", text="Thanks!", idempotency_key="reply:abc", settings=settings, store=store,
                      vonage=client)
    assert first["status"] == "submitted" and first["to"] == GB_MOBILE and first["id"].startswith("msg_")
    assert again == {**first, "replayed": True}
    assert len(sandbox.requests(api="sms")) == 1
    assert get_message(store, first["id"])["idempotency_key"] == "reply:abc"


def test_send_text_respects_opt_outs_unless_told_to_bypass_them(stack, store):
    sandbox, settings, client = stack
    suppress(store, GB_MOBILE, keyword="STOP")
    skipped = send_text(to=GB_MOBILE, text="Hi", idempotency_key="promo", settings=settings, store=store, vonage=client)
    assert skipped["status"] == "opted_out" and skipped["error"]["code"] == "opted_out"
    assert sandbox.requests() == []
    # The confirmation of a STOP goes to the number that just opted out.
    confirmed = send_text(to=GB_MOBILE, text="You are unsubscribed.", sender="Acme", idempotency_key="stop:xyz",
                          settings=settings, store=store, vonage=client, bypass_suppression=True)
    assert confirmed["status"] == "submitted" and confirmed["from"] == "Acme"
    assert sandbox.requests(api="sms")[0]["fields"]["text"] == "You are unsubscribed."


def test_send_text_reports_vonage_refusals_in_the_result(stack, store):
    sandbox, settings, client = stack
    sandbox.configure(trial=True, allow_list=[])
    result = send_text(to=GB_MOBILE, text="Hi", idempotency_key="r1", settings=settings, store=store, vonage=client)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "destination_not_allowed" and result["error"]["http_status"] == 422


def test_send_text_refuses_bad_input(stack, store):
    _, settings, client = stack
    with pytest.raises(InvalidPhoneError):
        send_text(to="12", text="Hi", idempotency_key="x", settings=settings, store=store, vonage=client)
    with pytest.raises(ServiceError) as info:
        send_text(to=GB_MOBILE, text="Hi", idempotency_key="", settings=settings, store=store, vonage=client)
    assert info.value.code == "invalid_idempotency_key"


# ---- answers the sandbox cannot give: the real client over a scripted transport ------------------


def scripted(settings: Settings, answer: Any) -> tuple[VonageClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    return VonageClient(settings, transport=httpx.MockTransport(handler)), seen


def plain_settings(**overrides: Any) -> Settings:
    return Settings(**{"api_key": "key12345", "api_secret": "secret123456", "brand_number": BRAND,
                       "vonage_max_retries": 0, **overrides})


def test_vonage_refusing_the_number_is_422_invalid_phone(sqlite_store):
    settings = plain_settings()
    client, _ = scripted(settings, lambda r: httpx.Response(
        200, json={"message-count": "1", "messages": [{"status": "6", "error-text": "Unroutable message - rejected"}]}))
    with pytest.raises(ServiceError) as info:
        send_messages(SMS, idempotency_key=None, settings=settings, store=sqlite_store, vonage=client)
    assert (info.value.status, info.value.code) == (422, "invalid_phone")
    record = get_message(sqlite_store, info.value.details["id"])
    assert record["status"] == "failed" and record["error"]["vonage_code"] == "6"


def test_a_synchronous_messages_1160_is_422_destination_not_allowed(sqlite_store):
    settings = plain_settings()
    problem = {"type": "https://developer.vonage.com/api-errors/messages#1160", "title": "Non White-listed Destination",
               "detail": "Add the number to the allowed list in the Dashboard"}
    client, _ = scripted(settings, lambda r: httpx.Response(422, json=problem))
    with pytest.raises(ServiceError) as info:
        send_messages({**SMS, "api": "messages"}, idempotency_key=None, settings=settings, store=sqlite_store, vonage=client)
    assert (info.value.status, info.value.code) == (422, "destination_not_allowed")
    assert "test numbers" in info.value.message


def test_a_long_sms_whose_second_part_failed_is_reported_and_never_resent(sqlite_store):
    settings = plain_settings()
    answer = {"message-count": "2", "messages": [
        {"to": "447911123456", "message-id": "part-1-id", "status": "0", "message-price": "0.0333"},
        {"status": "9", "error-text": "Partner quota exceeded"},
    ]}
    client, seen = scripted(settings, lambda r: httpx.Response(200, json=answer))
    body = {**SMS, "text": "x" * 200}
    with pytest.raises(ServiceError) as info:
        send_messages(body, idempotency_key="long-1", settings=settings, store=sqlite_store, vonage=client)
    error = info.value
    assert (error.status, error.code) == (502, "partially_sent")
    assert error.details["failed_parts"] == [{"part": 2, "vonage_code": "9", "vonage_message": "Partner quota exceeded"}]
    record = get_message(sqlite_store, error.details["id"])
    assert record["vonage_ids"] == ["part-1-id"] and record["error"]["code"] == "partially_sent"
    # Part 1 went out: a retry must not send it again.
    with pytest.raises(ServiceError) as again:
        send_messages(body, idempotency_key="long-1", settings=settings, store=sqlite_store, vonage=client)
    assert again.value.code == "partially_sent" and again.value.details["replayed"] is True
    assert len(seen) == 1


def test_a_dropped_connection_after_sending_keeps_the_key(sqlite_store):
    settings = plain_settings()

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)

    client, seen = scripted(settings, drop)
    with pytest.raises(ServiceError) as info:
        send_messages(SMS, idempotency_key="k", settings=settings, store=sqlite_store, vonage=client)
    assert info.value.code == "vonage_unavailable"
    with pytest.raises(idem.IdempotencyInProgressError) as again:
        send_messages(SMS, idempotency_key="k", settings=settings, store=sqlite_store, vonage=client)
    assert again.value.details["outcome"] == "unknown"
    assert len(seen) == 1
