"""Money safety over HTTP (issue 15): each finding of the attack run is a regression test here.

Send runs against the sandbox (real HTTP); verify-start against the scripted Verify fake
(every refusal here happens before Vonage, which is what is asserted), and the human check
against a stand-in siteverify server on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from shared.messages.idempotency import IDEMPOTENCY
from shared.messages.suppression import suppress
from tests.fixtures.send import GB_MOBILE
from tests.fixtures.verify import GB_MOBILE as GB_VERIFY_MOBILE

SMS = {"to": "+44 7911 123456", "text": "Your order has shipped", "api": "sms"}
START = {"number": GB_VERIFY_MOBILE}
ORIGIN = "https://shop.example"


def error_of(response):
    body = response.get_json()
    assert set(body) == {"error"}, body
    return body["error"]


# ---- send: spend caps -------------------------------------------------------------------------


def test_a_stolen_token_stops_at_its_budget_with_429_and_retry_after(send_stack):
    # Regression: a stolen token sent 2,000 messages; nothing capped the spend.
    send_stack.configure(SEND_BUDGET_PER_TOKEN="2/86400")
    assert [send_stack.http.post(SMS).status_code for _ in range(2)] == [202, 202]
    refused = send_stack.http.post(SMS)
    assert refused.status_code == 429
    error = error_of(refused)
    assert error["code"] == "budget_exhausted" and error["details"]["budget"] == "SEND_BUDGET_PER_TOKEN"
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(send_stack.vonage_requests("sms")) == 2


def test_the_global_parts_budget_counts_every_part_of_a_long_text(send_stack):
    send_stack.configure(SEND_PARTS_BUDGET_GLOBAL="3/86400")
    long_text = {**SMS, "text": "a" * 161}  # 2 GSM-7 parts
    assert send_stack.http.post(long_text).status_code == 202
    refused = send_stack.http.post(long_text)
    assert refused.status_code == 429 and error_of(refused)["details"]["budget"] == "SEND_PARTS_BUDGET_GLOBAL"
    assert send_stack.http.post(SMS).status_code == 202  # the one part left still fits
    assert len(send_stack.vonage_requests("sms")) == 2  # one request per message; Vonage splits the parts


def test_a_bulk_send_stops_at_the_budget_and_reports_the_rest_not_attempted(send_stack):
    send_stack.configure(SEND_BUDGET_GLOBAL="2/86400")
    to = ["+447911123456", "+447911123457", "+447911123458", "+447911123459"]
    response = send_stack.http.post({**SMS, "to": to})
    assert response.status_code == 202
    body = response.get_json()
    assert body["summary"]["sent"] == 2 and body["summary"]["failed"] == 2
    codes = sorted(r["error"]["code"] for r in body["results"] if r["status"] != "submitted")
    assert set(codes) <= {"budget_exhausted", "not_attempted"} and "budget_exhausted" in codes
    assert len(send_stack.vonage_requests("sms")) == 2


def test_max_segments_can_lower_the_ceiling_but_never_raise_it(send_stack):
    # Regression: callers could raise max_segments to 50 and send a 49-part UCS-2 text.
    refused = send_stack.http.post({**SMS, "text": "é" * 3000, "max_segments": 50})
    assert refused.status_code == 422
    assert error_of(refused)["code"] == "max_segments_too_high"
    lowered = send_stack.http.post({**SMS, "text": "a" * 161, "max_segments": 1})
    assert lowered.status_code == 422 and error_of(lowered)["code"] == "too_many_segments"
    assert send_stack.vonage_requests() == []


# ---- send: input hygiene and idempotency rows ----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"text": "Your code is 1234 \u202e5678"}, "text"),
        ({"text": "hello\x07"}, "text"),
        ({"client_ref": "order\x00 42"}, "client_ref"),
        ({"from": "\x1bAcme"}, "from"),
    ],
)
def test_control_and_bidi_override_characters_are_refused(send_stack, change, field):
    # Regression: control and bidirectional-override characters reached the SMS.
    response = send_stack.http.post({**SMS, **change})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "unsafe_characters" and error["details"]["field"] == field
    assert send_stack.vonage_requests() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "whatsapp", "image": {"url": "https://example.com/a.jpg", "caption": "Pay \u202eyaP"}},
         "image.caption"),
        ({"channel": "whatsapp", "template": {"name": "otp", "parameters": ["12\u202e34"]}}, "template.parameters[0]"),
        ({"channel": "whatsapp", "interactive": {"type": "button", "body": {"text": "Pay now\x07"},
                                                 "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]}}},
         "interactive.body.text"),
        ({"channel": "rcs", "from": "acme", "card": {"title": "Offer\u202e", "text": "x"}}, "card.title"),
        ({"channel": "sms", "text": "fine", "failover": [{"channel": "whatsapp", "text": "hidden\u2066"}]},
         "failover[0].text"),
    ],
)
def test_control_and_bidi_characters_are_refused_in_every_string_the_recipient_reads(send_stack, body, field):
    # Regression (review): only `text` was checked; captions, template parameters, buttons, cards
    # and failover items let U+202E and BEL through.
    send_stack.configure(SEND_WHATSAPP_WINDOW_CHECK="false")
    response = send_stack.http.post({"to": "+447911123456", **body})
    assert response.status_code == 422, response.get_json()
    error = error_of(response)
    assert error["code"] == "unsafe_characters" and error["details"]["field"] == field, error
    assert send_stack.vonage_requests() == []


def test_newlines_and_tabs_stay_allowed_in_texts_and_the_setting_allows_the_rest(send_stack):
    assert send_stack.http.post({**SMS, "text": "Line one\r\nLine two\tend"}).status_code == 202
    send_stack.configure(SEND_ALLOW_CONTROL_CHARACTERS="true")
    assert send_stack.http.post({**SMS, "text": "bell\x07"}).status_code == 202
    assert len(send_stack.vonage_requests("sms")) == 2


def test_a_refused_send_keeps_no_idempotency_row(send_stack):
    # Regression: refused sends left idempotency rows for 24 hours.
    suppress(send_stack.store, GB_MOBILE, keyword="STOP")
    refused = send_stack.http.post({**SMS, "to": GB_MOBILE}, key="refused-1")
    assert refused.status_code == 422 and error_of(refused)["code"] == "opted_out"
    assert send_stack.store.query(IDEMPOTENCY, limit=10) == []
    sent = send_stack.http.post({**SMS, "to": "+447911123457"}, key="sent-1")
    assert sent.status_code == 202
    assert send_stack.store.query(IDEMPOTENCY, limit=10) != []  # a send that went out keeps its key


# ---- verify: client IP, public mode, budgets ------------------------------------------------------


@pytest.fixture
def verify(verify_env, verify_http, fake_vonage, monkeypatch):
    for module in ("functions.verify_start", "functions.verify_check", "functions.verify_cancel", "functions.verify_next"):
        monkeypatch.setattr(f"{module}.get_vonage", lambda: fake_vonage)
    return verify_http


def public_env(verify_env, **env):
    verify_env(**{"VERIFY_PUBLIC": "true", "CORS_ORIGINS": ORIGIN, "VERIFY_ALLOWED_COUNTRIES": "GB",
                  "VERIFY_BRAND": "Acme", **env})


def test_a_rotated_x_forwarded_for_does_not_dodge_the_per_ip_limit_by_default(verify_env, verify, fake_vonage):
    # Regression: one trusted hop was the default, so a client rotating the last entry of
    # X-Forwarded-For got 1,254 verifications through.
    public_env(verify_env, VERIFY_LIMIT_PER_IP="3/3600")
    numbers = ["+447400123456", "+447400124456", "+447400125456", "+447400126456", "+447400127456"]
    statuses = [
        verify.start({"number": n}, token=None, headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
        for i, n in enumerate(numbers)
    ]
    assert statuses == [202, 202, 202, 429, 429]
    assert fake_vonage.count("verify2_start") == 3


def test_behind_one_configured_hop_the_proxy_appended_address_counts(verify_env, verify, fake_vonage):
    public_env(verify_env, VERIFY_LIMIT_PER_IP="1/3600", TRUSTED_PROXY_HOPS="1")
    first = verify.start({"number": "+447400123456"}, token=None, headers={"X-Forwarded-For": "1.1.1.1, 203.0.113.9"})
    again = verify.start({"number": "+447400124456"}, token=None, headers={"X-Forwarded-For": "2.2.2.2, 203.0.113.9"})
    assert (first.status_code, again.status_code) == (202, 429)
    assert error_of(again)["code"] == "ip_rate_limited"


@pytest.mark.parametrize("missing", ["VERIFY_ALLOWED_COUNTRIES", "VERIFY_BRAND"])
def test_public_mode_refuses_to_start_without_its_guards(verify_env, verify, fake_vonage, missing):
    public_env(verify_env, **{missing: ""})
    response = verify.start(START, token=None)
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "misconfigured" and missing in error["message"]
    assert fake_vonage.calls == []


def test_public_callers_cannot_choose_the_brand(verify_env, verify, fake_vonage):
    # Regression: a stranger could make your number text "Your PayPal Call 0800 ... code is".
    public_env(verify_env)
    response = verify.start({**START, "brand": "PayPal Call 0800"}, token=None)
    assert response.status_code == 202
    body = fake_vonage.calls[-1][1][0]
    assert body["brand"] == "Acme"
    assert body["code_length"] == 6  # regression: the default code had 4 digits


def test_a_token_caller_may_still_name_its_brand_but_not_with_control_characters(verify_env, verify, fake_vonage):
    verify_env(VERIFY_BRAND="Acme")
    assert verify.start({**START, "brand": "Shop"}).status_code == 202
    assert fake_vonage.calls[-1][1][0]["brand"] == "Shop"
    assert verify.start({"number": "+447400124456"}).status_code == 202
    assert fake_vonage.calls[-1][1][0]["brand"] == "Acme"
    refused = verify.start({"number": "+447400125456", "brand": "Acme\u202e"})
    assert refused.status_code == 422 and error_of(refused)["code"] == "unsafe_characters"
    assert fake_vonage.count("verify2_start") == 2


def test_the_global_verify_budget_bounds_starts_whatever_the_addresses(verify_env, verify, fake_vonage):
    public_env(verify_env, VERIFY_BUDGET_GLOBAL="2/86400", TRUSTED_PROXY_HOPS="1")
    numbers = ["+447400123456", "+447400124456", "+447400125456"]
    responses = [
        verify.start({"number": n}, token=None, headers={"X-Forwarded-For": f"198.51.100.{i}"})
        for i, n in enumerate(numbers)
    ]
    assert [r.status_code for r in responses] == [202, 202, 429]
    assert error_of(responses[2])["code"] == "budget_exhausted"
    assert int(responses[2].headers["Retry-After"]) >= 1
    assert fake_vonage.count("verify2_start") == 2


# ---- verify: the human check against a stand-in siteverify ---------------------------------------


class SiteverifyStandIn:
    """A local stand-in for Turnstile's siteverify: ``good-token`` passes, anything else fails."""

    def __init__(self) -> None:
        self.calls: list[dict[str, list[str]]] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                calls.append(form)
                ok = form.get("response") == ["good-token"] and form.get("secret") == ["captcha-secret"]
                body = json.dumps({"success": ok, "error-codes": [] if ok else ["invalid-input-response"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/turnstile/v0/siteverify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def siteverify():
    stand_in = SiteverifyStandIn()
    yield stand_in
    stand_in.close()


def captcha_env(verify_env, url):
    public_env(verify_env, VERIFY_CAPTCHA="turnstile", VERIFY_CAPTCHA_SECRET="captcha-secret",
               VERIFY_CAPTCHA_URL=url)


def test_a_public_start_needs_a_passed_human_check(verify_env, verify, fake_vonage, siteverify):
    captcha_env(verify_env, siteverify.url)
    missing = verify.start(START, token=None)
    assert missing.status_code == 403 and error_of(missing)["code"] == "captcha_required"
    failed = verify.start({**START, "captcha_token": "forged"}, token=None)
    assert failed.status_code == 403 and error_of(failed)["code"] == "captcha_failed"
    assert fake_vonage.calls == []
    passed = verify.start({**START, "captcha_token": "good-token"}, token=None, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert passed.status_code == 202
    assert fake_vonage.count("verify2_start") == 1
    assert siteverify.calls[-1]["remoteip"] == ["203.0.113.5"]


def test_an_unreachable_provider_refuses_the_start(verify_env, verify, fake_vonage, siteverify):
    url = siteverify.url
    siteverify.close()
    captcha_env(verify_env, url)
    response = verify.start({**START, "captcha_token": "good-token"}, token=None)
    assert response.status_code == 503 and error_of(response)["code"] == "captcha_unavailable"
    assert fake_vonage.calls == []


def test_token_callers_skip_the_human_check(verify_env, verify, fake_vonage, siteverify):
    captcha_env(verify_env, siteverify.url)
    assert verify.start(START).status_code == 202
    assert siteverify.calls == []


# ---- balance and prices -----------------------------------------------------------------------


@pytest.fixture
def balance_http(send_stack):
    from app import function_app
    from functions.balance import balance
    from shared.balance import forget_prices

    forget_prices()
    yield function_app("balance", balance).test_client()
    forget_prices()


def alerts(caplog):
    return [r for r in caplog.records if r.levelname == "ALERT"]


def test_the_balance_function_reads_the_balance_and_alerts_below_the_threshold(send_stack, balance_http, caplog):
    from tests.fixtures.send import SEND_TOKEN

    auth = {"Authorization": f"Bearer {SEND_TOKEN}"}
    assert balance_http.get("/").status_code == 401  # it reaches Vonage: authenticated like send
    send_stack.configure(BALANCE_ALERT_THRESHOLD="5")
    ok = balance_http.get("/", headers=auth)
    assert ok.status_code == 200
    assert ok.get_json() == {"balance": "10.0", "currency": "EUR", "auto_reload": False, "threshold": "5.0",
                             "below_threshold": False}
    assert alerts(caplog) == []
    send_stack.sandbox_config(balance="3.5")
    low = balance_http.post("/", headers=auth)
    assert low.status_code == 200 and low.get_json()["below_threshold"] is True
    [alert] = alerts(caplog)
    assert (alert.balance, alert.threshold, alert.source) == ("3.5", "5.0", "get-balance")
    # ... and the alert is an event too (com.vonage.account.balance_low.v1, recorded in the outbox).
    from shared.events.outbox import OUTBOX_COLLECTION, OUTBOX_FIELD

    [event] = [e for doc in send_stack.store.query(OUTBOX_COLLECTION, limit=50) for e in doc[OUTBOX_FIELD]
               if e["type"] == "com.vonage.account.balance_low.v1"]
    assert event["data"]["balance"] == "3.5"


def test_the_remaining_balance_of_sms_answers_is_kept_and_alerts(send_stack, balance_http, caplog):
    send_stack.configure(BALANCE_ALERT_THRESHOLD="9.99")
    sent = send_stack.http.post(SMS)
    assert sent.status_code == 202
    record = send_stack.http.get(f"/{sent.get_json()['id']}").get_json()
    assert record["remaining_balance"] == "9.96670000"
    [alert] = alerts(caplog)
    assert (alert.balance, alert.source) == ("9.96670000", "sms-answer")
    assert send_stack.http.post({**SMS, "to": "+447911123457"}).status_code == 202
    assert len(alerts(caplog)) == 1  # not once per message: once per ALERT_REPEAT_SECONDS


def test_a_dry_run_estimates_the_price_per_recipient_and_in_total(send_stack, balance_http):
    send_stack.sandbox_config(sms_price="0.05")
    to = ["+447911123456", "+33612345678", "not a number"]
    body = send_stack.http.post({**SMS, "to": to, "text": "a" * 161, "dry_run": True}).get_json()
    prices = [r.get("estimated_price") for r in body["results"]]
    assert prices == ["0.10000000", "0.10000000", None]  # 2 parts x 0.05; the bad number costs nothing
    assert (body["estimated_total"], body["estimated_currency"], body["estimate_complete"]) == ("0.20000000", "EUR", True)
    pricing = send_stack.vonage_requests("account")
    assert sorted(r["path"] for r in pricing) == ["/account/get-pricing/outbound/sms"] * 2  # GB and FR, once each
    send_stack.http.post({**SMS, "dry_run": True})
    assert len(send_stack.vonage_requests("account")) == 2  # cached
    assert send_stack.vonage_requests("sms") == []


# ---- tenants ------------------------------------------------------------------------------------

TENANT_TOKENS = "shop:tok-shop-0123456789:send+verify,crm:tok-crm-0123456789:send+verify,ops:tok-ops-0123456789:*"


def test_a_token_reads_only_its_tenants_messages_and_admin_reads_all(send_stack):
    # Regression: every token read every record (GET /send/<id>).
    send_stack.configure(API_TOKENS=TENANT_TOKENS)
    sent = send_stack.http.post(SMS, token="tok-shop-0123456789")
    assert sent.status_code == 202
    message_id = sent.get_json()["id"]
    own = send_stack.http.get(f"/{message_id}", token="tok-shop-0123456789")
    assert own.status_code == 200 and own.get_json()["tenant"] == "shop"
    other = send_stack.http.get(f"/{message_id}", token="tok-crm-0123456789")
    assert other.status_code == 404 and error_of(other)["code"] == "not_found"
    by_vonage_id = send_stack.http.get(f"/?id={own.get_json()['vonage_ids'][0]}", token="tok-crm-0123456789")
    assert by_vonage_id.status_code == 404
    assert send_stack.http.get(f"/{message_id}", token="tok-ops-0123456789").status_code == 200


def test_reading_inbound_messages_needs_the_inbound_scope(send_stack):
    from app import function_app
    from functions.inbound import inbound

    send_stack.configure(API_TOKENS=TENANT_TOKENS)
    client = function_app("inbound", inbound).test_client()
    refused = client.get("/?raw=true", headers={"Authorization": "Bearer tok-shop-0123456789"})
    assert refused.status_code == 403 and error_of(refused)["code"] == "scope_not_allowed"
    allowed = client.get("/?raw=true", headers={"Authorization": "Bearer tok-ops-0123456789"})
    assert allowed.status_code == 200 and allowed.get_json()["count"] == 0


def test_the_plain_token_list_is_still_one_tenant(send_stack):
    send_stack.configure(API_TOKENS="plain-one-0123456789,plain-two-0123456789")
    sent = send_stack.http.post(SMS, token="plain-one-0123456789")
    assert send_stack.http.get(f"/{sent.get_json()['id']}", token="plain-two-0123456789").status_code == 200


def test_verify_check_and_cancel_are_scoped_to_the_tenant(verify_env, verify, fake_vonage):
    verify_env(API_TOKENS=TENANT_TOKENS)
    started = verify.start({**START, "brand": "Shop"}, token="tok-shop-0123456789")
    assert started.status_code == 202
    request_id = started.get_json()["request_id"]
    foreign_check = verify.check({"request_id": request_id, "code": "123456"}, token="tok-crm-0123456789")
    assert foreign_check.status_code == 404 and error_of(foreign_check)["code"] == "verification_not_found"
    foreign_cancel = verify.cancel({"request_id": request_id}, token="tok-crm-0123456789")
    assert foreign_cancel.status_code == 404
    # verify-next too: the next channel (often a voice call) is billed to the account
    foreign_next = verify.next({"request_id": request_id}, token="tok-crm-0123456789")
    assert foreign_next.status_code == 404 and error_of(foreign_next)["code"] == "verification_not_found"
    assert [op for op, _ in fake_vonage.calls if "next" in op] == []
    assert fake_vonage.count("verify2_check") == 0 and fake_vonage.count("verify2_cancel") == 0
    # the foreign check counted no attempt: the owner still has all of them
    own = verify.check({"request_id": request_id, "code": "123456"}, token="tok-shop-0123456789")
    assert own.status_code == 200 and own.get_json()["status"] == "verified"


def test_a_token_without_the_verify_scope_cannot_start(verify_env, verify, fake_vonage):
    verify_env(API_TOKENS="mailer:tok-mail-0123456789:send")
    response = verify.start({**START, "brand": "Shop"}, token="tok-mail-0123456789")
    assert response.status_code == 403 and error_of(response)["code"] == "scope_not_allowed"
    assert fake_vonage.calls == []


def test_malformed_named_tokens_are_a_config_error_that_never_echoes_the_token(verify_env, verify):
    verify_env(API_TOKENS="shop:tok-secret-0123456789:sendx")
    response = verify.start({**START, "brand": "Shop"}, token="tok-secret-0123456789")
    assert response.status_code == 500 and error_of(response)["code"] == "misconfigured"
    assert "tok-secret" not in response.get_data(as_text=True)


def test_an_attacker_cannot_lock_a_country_out(verify_env, verify, fake_vonage):
    # Regression: 100 starts locked a whole country out for an hour (VERIFY_LIMIT_PER_COUNTRY).
    verify_env()  # the documented defaults
    attacker = [f"+4477001{r:02d}{n:03d}" for r in range(11) for n in range(10)]  # 110 numbers, 11 ranges
    answers = [
        verify.start({"number": number, "brand": "Acme", "client_ip": f"198.51.100.{i // 10}"}).status_code
        for i, number in enumerate(attacker)
    ]
    assert answers.count(202) == 110
    real_user = verify.start({"number": "+447400123456", "brand": "Acme", "client_ip": "203.0.113.50"})
    assert real_user.status_code == 202


def test_public_mode_without_a_trusted_ip_source_warns_at_start(verify_env, verify, caplog):
    public_env(verify_env)
    verify.start(START, token=None)
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "TRUSTED_PROXY_HOPS" in r.getMessage()]
    assert len(warned) == 1
    caplog.clear()
    public_env(verify_env, TRUSTED_PROXY_HOPS="1")
    verify.start({"number": "+447400124456"}, token=None)
    assert not [r for r in caplog.records if "TRUSTED_PROXY_HOPS" in r.getMessage()]
