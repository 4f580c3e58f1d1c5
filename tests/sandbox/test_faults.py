"""Faults on demand: each kind does what it says, per request or per run, reproducibly."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox.faults import FaultInjector, FaultRule, parse_fault_rules
from tests.sandbox._helpers import BASIC, client, post_json, send_sms, sms_message


def _fault(spec: str) -> dict[str, str]:
    return {"X-Sandbox-Fault": spec}


def test_5xx_answers_without_sending(sandbox, webhook_receiver) -> None:
    response = send_sms(sandbox.url, headers=_fault("5xx=503"))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert sandbox.messages() == []
    assert sandbox.requests()[0]["faults"] == ["5xx"]


def test_429_is_http_429_with_retry_after(sandbox) -> None:
    response = post_json(sandbox.url, "/v1/messages", sms_message(), headers=_fault("429"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert sandbox.messages() == []


def test_throttle_is_each_apis_own_answer(sandbox) -> None:
    assert send_sms(sandbox.url, headers=_fault("throttle")).json()["messages"][0]["status"] == "1"
    assert post_json(sandbox.url, "/v1/messages", sms_message(), headers=_fault("throttle")).status_code == 429


def test_timeout_holds_the_answer_but_the_send_happened(sandbox, webhook_receiver) -> None:
    with client(timeout=0.3) as http, pytest.raises(httpx.ReadTimeout):
        headers = {**_fault("timeout=1"), "Authorization": BASIC}
        http.post(f"{sandbox.url}/v1/messages", json=sms_message(), headers=headers)
    assert len(sandbox.messages()) == 1  # the client does not know, but the message went out
    assert webhook_receiver.wait_for(2)


def test_delay_slows_the_answer(sandbox) -> None:
    started = time.monotonic()
    assert send_sms(sandbox.url, headers=_fault("delay=0.3")).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_duplicate_sends_every_receipt_twice(sandbox, webhook_receiver) -> None:
    post_json(sandbox.url, "/v1/messages", sms_message(), headers=_fault("duplicate"))
    hooks = webhook_receiver.wait_for(4)
    assert [h.json["status"] for h in hooks] == ["submitted", "submitted", "delivered", "delivered"]
    assert sandbox.wait_idle()
    assert sum(1 for d in sandbox.deliveries() if d["duplicate_of"]) == 2


def test_reorder_delivers_delivered_before_submitted(sandbox, webhook_receiver) -> None:
    post_json(sandbox.url, "/v1/messages", sms_message(channel="whatsapp"), headers=_fault("reorder"))
    hooks = webhook_receiver.wait_for(3)
    assert [h.json["status"] for h in hooks] == ["read", "delivered", "submitted"]


def test_early_receipt_arrives_before_the_answer(sandbox, webhook_receiver) -> None:
    response = send_sms(sandbox.url, headers=_fault("early_receipt"))
    answered_at = time.time()
    # Already there the moment the answer is back: no waiting.
    assert len(webhook_receiver.requests) == 1
    receipt = webhook_receiver.requests[0]
    assert receipt.fields["messageId"] == response.json()["messages"][0]["message-id"]
    assert receipt.received_at <= answered_at


def test_webhook_delay_fault_holds_that_requests_webhooks(sandbox, webhook_receiver) -> None:
    started = time.monotonic()
    send_sms(sandbox.url, headers=_fault("webhook_delay=0.3"))
    webhook_receiver.wait_for(1)
    assert time.monotonic() - started >= 0.3


def test_configured_rate_is_reproducible_with_the_seed(sandbox_factory) -> None:
    outcomes = []
    for _ in range(2):
        box = sandbox_factory(faults=parse_fault_rules("5xx;rate=0.5;api=sms"), seed=42)
        outcomes.append([send_sms(box.url).status_code for _ in range(12)])
    assert outcomes[0] == outcomes[1]
    assert 200 in outcomes[0] and 500 in outcomes[0]


def test_rule_for_one_api_spares_the_others_and_count_limits_it(sandbox) -> None:
    sandbox.set_faults({"kind": "5xx", "api": "messages", "count": 1})
    assert send_sms(sandbox.url).status_code == 200
    assert post_json(sandbox.url, "/v1/messages", sms_message()).status_code == 500
    assert post_json(sandbox.url, "/v1/messages", sms_message()).status_code == 202


def test_faults_endpoint_sets_and_clears_rules(sandbox) -> None:
    with client() as http:
        set_ = http.post(f"{sandbox.url}/_sandbox/faults", json={"faults": ["throttle;api=sms"], "seed": 3})
        assert set_.json()["faults"][0]["kind"] == "throttle"
        assert send_sms(sandbox.url).json()["messages"][0]["status"] == "1"
        http.post(f"{sandbox.url}/_sandbox/faults", json={"faults": []})
    assert send_sms(sandbox.url).json()["messages"][0]["status"] == "0"


def test_duplicate_fault_applies_to_injected_inbound(sandbox, webhook_receiver) -> None:
    sandbox.set_faults("duplicate;api=inbound")
    sandbox.inject_inbound("447700900123", "447700900000", "hello")
    hooks = webhook_receiver.wait_for(2)
    assert hooks[0].fields["messageId"] == hooks[1].fields["messageId"]


def test_malformed_fault_header_is_400(sandbox) -> None:
    response = send_sms(sandbox.url, headers=_fault("explode"))
    assert response.status_code == 400
    assert "unknown fault kind" in response.json()["detail"]


def test_injector_rates_and_parsing() -> None:
    assert parse_fault_rules("timeout=2;api=sms, duplicate;rate=0.25") == (
        FaultRule("timeout", value=2.0, api="sms"),
        FaultRule("duplicate", rate=0.25),
    )
    injector = FaultInjector([FaultRule("5xx", rate=0.3)], seed=1)
    hits = sum(injector.draw("sms").has("5xx") for _ in range(1000))
    assert 250 < hits < 350
    with pytest.raises(ValueError):
        FaultRule("5xx", rate=1.5)
