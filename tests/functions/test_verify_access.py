"""Who may call the verify functions: token mode (default) and public browser mode with CORS.

Vonage is a scripted fake here (access is decided before it is called); the sandbox-backed
acceptance tests are in test_verify_start/check/cancel.py.
"""

from __future__ import annotations

import pytest

from tests.fixtures.verify import GB_MOBILE, TOKEN

START = {"number": GB_MOBILE, "brand": "Acme"}
ORIGIN = "https://shop.example"


@pytest.fixture
def http(verify_env, verify_http, fake_vonage, monkeypatch):
    verify_env()
    for module in ("functions.verify_start", "functions.verify_check", "functions.verify_cancel"):
        monkeypatch.setattr(f"{module}.get_vonage", lambda: fake_vonage)
    return verify_http


def public(verify_env, **env):
    # Public mode refuses to start without the countries it serves and a server-side brand.
    env = {"VERIFY_ALLOWED_COUNTRIES": "GB", "VERIFY_BRAND": "Acme", **env}
    verify_env(VERIFY_PUBLIC="true", CORS_ORIGINS=ORIGIN, **env)


# ---- token mode ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["start", "check", "cancel"])
def test_token_mode_refuses_calls_without_a_token(http, fake_vonage, name):
    response = http.call(name, {"request_id": "abc", "code": "1234", **START}, token=None)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert fake_vonage.calls == []


@pytest.mark.parametrize("name", ["start", "check", "cancel"])
def test_token_mode_refuses_a_wrong_token(http, fake_vonage, name):
    response = http.call(name, START, token="nope")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    assert fake_vonage.calls == []


def test_token_mode_without_api_tokens_is_misconfigured_not_open(verify_env, http, fake_vonage):
    verify_env(API_TOKENS="")
    response = http.start(START, token=None)
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "misconfigured"
    assert fake_vonage.calls == []


def test_token_mode_starts_with_a_token(http, fake_vonage):
    response = http.start(START)
    assert response.status_code == 202
    assert response.get_json()["status"] == "pending"
    assert fake_vonage.count("verify2_start") == 1


def test_token_mode_sends_no_cors_headers_and_takes_no_preflight(http):
    response = http.start(START, headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert http.start(method="OPTIONS", token=None, headers={"Origin": ORIGIN}).status_code == 405


@pytest.mark.parametrize(("name", "allowed"), [("start", "POST"), ("check", "POST"), ("cancel", "DELETE, POST")])
def test_wrong_method_is_405(http, name, allowed):
    response = http.call(name, method="GET")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == set(allowed.split(", "))


@pytest.mark.parametrize("name", ["start", "check"])
def test_bad_json_is_400_not_500(http, name):
    response = http.call(name, data="{not json", content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_json"
    assert http.call(name, [1, 2]).status_code == 400


def test_trusted_caller_names_the_end_users_address(verify_env, http, fake_vonage):
    verify_env(VERIFY_LIMIT_PER_IP="1/3600")
    assert http.start({**START, "client_ip": "203.0.113.1"}).status_code == 202
    assert http.start({"number": "+447400124000", "brand": "Acme", "client_ip": "203.0.113.2"}).status_code == 202
    refused = http.start({"number": "+33612345678", "brand": "Acme", "client_ip": "203.0.113.1"})
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "ip_rate_limited"


# ---- public mode --------------------------------------------------------------------------


def test_public_mode_start_and_check_need_no_token(verify_env, http, fake_vonage):
    public(verify_env)
    started = http.start(START, token=None, headers={"Origin": ORIGIN})
    assert started.status_code == 202
    assert started.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert started.headers["Vary"] == "Origin"
    request_id = started.get_json()["request_id"]
    checked = http.check({"request_id": request_id, "code": "1234"}, token=None, headers={"Origin": ORIGIN})
    assert checked.status_code == 200 and checked.get_json()["status"] == "verified"
    assert checked.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_public_mode_answers_the_preflight(verify_env, http):
    public(verify_env)
    for name in ("start", "check"):
        response = http.call(
            name,
            method="OPTIONS",
            token=None,
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
        )
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]


def test_public_mode_refuses_other_origins(verify_env, http, fake_vonage):
    public(verify_env)
    preflight = http.start(method="OPTIONS", token=None, headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 403 and preflight.get_json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in preflight.headers
    # A page elsewhere cannot use its visitors' browsers to start verifications either.
    direct = http.start(START, token=None, headers={"Origin": "https://evil.example"})
    assert direct.status_code == 403 and direct.get_json()["error"]["code"] == "origin_not_allowed"
    assert fake_vonage.calls == []


def test_public_mode_errors_carry_cors_headers_so_the_page_can_read_them(verify_env, http):
    public(verify_env, VERIFY_LIMIT_PER_NUMBER="1/600")
    http.start(START, token=None, headers={"Origin": ORIGIN})
    refused = http.start(START, token=None, headers={"Origin": ORIGIN})
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "number_rate_limited"
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert int(refused.headers["Retry-After"]) > 0


def test_public_mode_ignores_client_ip_from_the_browser(verify_env, http):
    # Otherwise a script could name a new address on every call and never meet the per-IP limit.
    public(verify_env, VERIFY_LIMIT_PER_IP="1/3600")
    assert http.start({**START, "client_ip": "203.0.113.1"}, token=None).status_code == 202
    refused = http.start({"number": "+447400124000", "brand": "Acme", "client_ip": "203.0.113.2"}, token=None)
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "ip_rate_limited"


def test_public_mode_per_ip_limit_uses_the_proxy_appended_address(verify_env, http):
    public(verify_env, VERIFY_LIMIT_PER_IP="1/3600", TRUSTED_PROXY_HOPS="1")
    first = http.start(START, token=None, headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.9"})
    assert first.status_code == 202
    # A forged left-most entry does not make a new caller: the proxy's entry is the address.
    again = http.start({"number": "+447400124000", "brand": "Acme"}, token=None,
                       headers={"X-Forwarded-For": "9.9.9.9, 203.0.113.9"})
    assert again.status_code == 429
    other = http.start({"number": "+447400124000", "brand": "Acme"}, token=None,
                       headers={"X-Forwarded-For": "203.0.113.10"})
    assert other.status_code == 202


def test_public_mode_still_checks_a_presented_token(verify_env, http):
    public(verify_env)
    assert http.start(START, token="wrong").status_code == 401
    assert http.start(START, token=TOKEN).status_code == 202


def test_public_mode_cancel_still_needs_a_token(verify_env, http, fake_vonage):
    public(verify_env)
    response = http.cancel({"request_id": "abc"}, token=None, headers={"Origin": ORIGIN})
    assert response.status_code == 401
    assert http.cancel(method="OPTIONS", token=None, headers={"Origin": ORIGIN}).status_code == 405
