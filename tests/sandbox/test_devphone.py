"""The dev phone page without a browser: forms post and redirect, state comes from the sandbox itself."""

from __future__ import annotations

import re

from tests.sandbox._helpers import BASIC, TO, client, send_sms

PHONE = "447700900001"  # tests.sandbox._helpers.TO
APP_NUMBER = "447700900000"


def _secret(page: str) -> str:
    match = re.search(r'name="form_secret" value="([^"]+)"', page)
    assert match, "every form carries the form secret"
    return match.group(1)


def test_drop_receipts_fault_accepts_the_send_and_withholds_only_its_receipts(sandbox, webhook_receiver) -> None:
    dropped = send_sms(sandbox.url, headers={"X-Sandbox-Fault": "drop_receipts"}, text="no receipt")
    kept = send_sms(sandbox.url, text="with receipt")
    assert dropped.json()["messages"][0]["status"] == "0"
    assert kept.json()["messages"][0]["status"] == "0"
    assert sandbox.wait_idle(30)
    receipts = sandbox.deliveries(kind="sms-dlr")
    kept_id = kept.json()["messages"][0]["message-id"]
    assert [d["ref"]["message_id"] for d in receipts] == [kept_id]
    assert [m["text"] for m in sandbox.messages()] == ["no receipt", "with receipt"]
    assert sandbox.requests()[0]["faults"] == ["drop_receipts"]


def test_page_shows_the_conversation_with_receipt_states(sandbox, webhook_receiver) -> None:
    send_sms(sandbox.url, text="Your order has shipped")
    assert sandbox.wait_idle(30)
    with client() as http:
        page = http.get(f"{sandbox.url}/phone/+{PHONE}")
        live = http.get(f"{sandbox.url}/phone/{PHONE}/live").json()
        index = http.get(f"{sandbox.url}/phone")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Your order has shipped" in page.text
    assert '<meta name="viewport"' in page.text
    assert 'data-status="delivered">delivered ✓' in live["thread"]
    assert f'href="/phone/{PHONE}"' in index.text


def test_every_visible_field_has_a_label(sandbox) -> None:
    sandbox.link_app("http://127.0.0.1:9", "s3cr3t-app-token", APP_NUMBER)  # nothing is called by a GET
    with client() as http:
        page = http.get(f"{sandbox.url}/phone/{PHONE}").text
    ids = re.findall(r'<(?:input|textarea)(?![^>]*type="(?:hidden|radio|checkbox)")[^>]*\bid="([^"]+)"', page)
    assert {"text", "to", "app-text", "brand", "code", "request-id"} <= set(ids)
    for ident in ids:
        assert f'for="{ident}"' in page, f"#{ident} has no <label for>"
    assert "s3cr3t-app-token" not in page  # the page calls the app server-side: the token stays there


def test_texting_the_app_without_javascript_posts_and_redirects_back(sandbox, webhook_receiver) -> None:
    with client() as http:
        secret = _secret(http.get(f"{sandbox.url}/phone/{PHONE}").text)
        answer = http.post(
            f"{sandbox.url}/phone/{PHONE}/send",
            data={"form_secret": secret, "text": "hours", "channel": "sms", "to": f"+{APP_NUMBER}"},
        )
        assert answer.status_code == 303
        assert answer.headers["Location"].startswith(f"/phone/{PHONE}?notice=")
        webhook_receiver.wait_for(1)
        inbound = webhook_receiver.on("/inbound")
        assert [(r.fields["msisdn"], r.fields["to"], r.fields["text"]) for r in inbound] == [(PHONE, APP_NUMBER, "hours")]
        assert sandbox.wait_idle(30)
        thread = http.get(f"{sandbox.url}/phone/{PHONE}/live").json()["thread"]
    assert 'data-direction="from_phone"><p class="text">hours</p>' in thread
    assert "sent to app ✓" in thread


def test_whatsapp_text_goes_as_a_messages_api_inbound(sandbox, webhook_receiver) -> None:
    with client() as http:
        secret = _secret(http.get(f"{sandbox.url}/phone/{PHONE}").text)
        answer = http.post(
            f"{sandbox.url}/phone/{PHONE}/send",
            data={"form_secret": secret, "text": "hello", "channel": "whatsapp", "to": APP_NUMBER},
            headers={"Accept": "application/json"},
        )
    assert answer.status_code == 200 and answer.json()["ok"] is True
    webhook_receiver.wait_for(1)
    body = webhook_receiver.on("/inbound")[0].json
    assert (body["channel"], body["from"], body["to"], body["text"]) == ("whatsapp", PHONE, APP_NUMBER, "hello")


def test_a_post_without_the_form_secret_is_refused_and_does_nothing(sandbox, webhook_receiver) -> None:
    with client() as http:
        answer = http.post(
            f"{sandbox.url}/phone/{PHONE}/send",
            data={"text": "forged", "channel": "sms", "to": APP_NUMBER},
            headers={"Accept": "application/json"},
        )
    assert answer.status_code == 403
    assert answer.json()["ok"] is False
    assert sandbox.ctx.state.inbound() == []


def test_bad_input_answers_a_readable_error(sandbox) -> None:
    with client() as http:
        secret = _secret(http.get(f"{sandbox.url}/phone/{PHONE}").text)
        empty = http.post(
            f"{sandbox.url}/phone/{PHONE}/send",
            data={"form_secret": secret, "text": " ", "to": APP_NUMBER},
            headers={"Accept": "application/json"},
        )
        unlinked = http.post(
            f"{sandbox.url}/phone/{PHONE}/app/verify-start",
            data={"form_secret": secret},
            headers={"Accept": "application/json"},
        )
    assert (empty.status_code, empty.json()["notice"]) == (400, "type a message to send")
    assert unlinked.status_code == 400
    assert "no app is linked" in unlinked.json()["notice"]
    assert sandbox.ctx.state.inbound() == []


def test_fault_switches_set_rules_for_every_api_and_keep_other_rules(sandbox) -> None:
    sandbox.set_faults("duplicate;api=sms")
    with client() as http:
        secret = _secret(http.get(f"{sandbox.url}/phone/{PHONE}").text)
        on = http.post(
            f"{sandbox.url}/phone/{PHONE}/faults",
            data={"form_secret": secret, "fault": ["throttle", "drop_receipts"]},
        )
        assert on.status_code == 303
        kinds = [(rule.kind, rule.api) for rule in sandbox.config.faults]
        assert kinds == [("duplicate", "sms"), ("throttle", None), ("drop_receipts", None)]
        throttled = send_sms(sandbox.url)
        assert throttled.json()["messages"][0]["status"] == "1"
        page = http.get(f"{sandbox.url}/phone/{PHONE}").text
        assert 'value="throttle" checked' in page and 'value="5xx" aria' in page
        off = http.post(f"{sandbox.url}/phone/{PHONE}/faults", data={"form_secret": secret})
    assert off.status_code == 303
    assert [(rule.kind, rule.api) for rule in sandbox.config.faults] == [("duplicate", "sms")]
    assert send_sms(sandbox.url).json()["messages"][0]["status"] == "0"


def test_request_log_on_the_page_hides_credentials(sandbox) -> None:
    send_sms(sandbox.url, auth="body")
    with client() as http:
        log = http.get(f"{sandbox.url}/phone/{PHONE}/live").json()["log"]
    assert "/sms/json" in log
    assert "sandbox-secret" not in log
    assert "[redacted]" in log
