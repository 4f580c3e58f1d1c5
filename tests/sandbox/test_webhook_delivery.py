"""The delivery worker: Vonage's retry rule, the delivery log, delays, loopback only."""

from __future__ import annotations

import time

from tests.sandbox._helpers import send_sms


def test_5xx_and_429_are_retried_until_a_2xx(sandbox, webhook_receiver) -> None:
    webhook_receiver.respond(500)
    webhook_receiver.respond(429)
    send_sms(sandbox.url)
    hooks = webhook_receiver.wait_for(3)
    assert len({h.fields["messageId"] for h in hooks}) == 1
    assert sandbox.wait_idle()
    [delivery] = sandbox.deliveries()
    assert [a["status"] for a in delivery["attempts"]] == [500, 429, 200]
    assert delivery["state"] == "delivered"
    assert delivery["url"].endswith("/status")


def test_other_4xx_is_not_retried(sandbox, webhook_receiver) -> None:
    webhook_receiver.respond(404)
    send_sms(sandbox.url)
    assert sandbox.wait_idle()
    [delivery] = sandbox.deliveries()
    assert [a["status"] for a in delivery["attempts"]] == [404]
    assert delivery["state"] == "failed"
    assert len(webhook_receiver.requests) == 1


def test_gives_up_after_the_last_retry_delay(sandbox, webhook_receiver) -> None:
    webhook_receiver.respond(503, times=10)
    send_sms(sandbox.url)
    assert sandbox.wait_idle()
    [delivery] = sandbox.deliveries()
    assert len(delivery["attempts"]) == 4  # first try + one per retry delay (3 in the test timings)
    assert delivery["state"] == "failed"


def test_unreachable_webhook_is_retried_and_logged(sandbox_factory) -> None:
    box = sandbox_factory(status_webhook_url="http://127.0.0.1:9/closed", retry_delays=(0.01,))
    send_sms(box.url)
    assert box.wait_idle()
    [delivery] = box.deliveries()
    assert [a["status"] for a in delivery["attempts"]] == [None, None]
    assert delivery["attempts"][0]["error"].startswith("connection failed")


def test_slow_webhook_times_out_and_is_retried(sandbox_factory, webhook_receiver) -> None:
    box = sandbox_factory(status_webhook_url=f"{webhook_receiver.url}/s", webhook_timeout=0.2, retry_delays=(0.01,))
    webhook_receiver.respond(200, delay=0.5)
    send_sms(box.url)
    assert box.wait_idle()
    [delivery] = box.deliveries()
    assert delivery["attempts"][0]["error"] == "timeout"
    assert delivery["attempts"][1]["status"] == 200


def test_delivery_delay_holds_webhooks_back(sandbox_factory, webhook_receiver) -> None:
    box = sandbox_factory(status_webhook_url=f"{webhook_receiver.url}/s", delivery_delay=0.3)
    sent = time.monotonic()
    send_sms(box.url)
    webhook_receiver.wait_for(1)
    assert time.monotonic() - sent >= 0.3


def test_remote_webhook_urls_are_refused(sandbox_factory) -> None:
    box = sandbox_factory(status_webhook_url="http://example.com/status")
    send_sms(box.url)
    assert box.wait_idle()
    [delivery] = box.deliveries()
    assert delivery["state"] == "refused"


def test_secret_token_in_a_webhook_url_is_hidden_in_the_log(sandbox_factory, webhook_receiver) -> None:
    box = sandbox_factory(status_webhook_url=f"{webhook_receiver.url}/s?token=very-secret-token&x=1")
    send_sms(box.url)
    assert webhook_receiver.wait_for(1)[0].query["token"] == "very-secret-token"
    assert box.wait_idle()
    assert "very-secret-token" not in str(box.deliveries())


def test_wait_idle_reports_a_timeout(sandbox_factory, webhook_receiver) -> None:
    box = sandbox_factory(status_webhook_url=f"{webhook_receiver.url}/s", delivery_delay=1.0)
    send_sms(box.url)
    assert box.wait_idle(timeout=0.05) is False
    assert box.wait_idle(timeout=5) is True
