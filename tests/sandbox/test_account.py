"""The Account API as the sandbox serves it: the balance and outbound prices (Vonage's shapes)."""

from __future__ import annotations

from decimal import Decimal

from tests.fixtures.sandbox import SANDBOX_API_KEY, SANDBOX_API_SECRET
from tests.sandbox._helpers import BASIC, client, send_sms


def get(url: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
    with client() as http:
        return http.get(f"{url}{path}", **kwargs)


def test_the_balance_falls_with_every_part_sent(sandbox) -> None:
    before = get(sandbox.url, "/account/get-balance", headers={"Authorization": BASIC})
    assert before.status_code == 200
    assert before.json() == {"value": 10.0, "autoReload": False}
    send_sms(sandbox.url)
    after = get(sandbox.url, "/account/get-balance", headers={"Authorization": BASIC}).json()
    assert Decimal(str(after["value"])) == Decimal("10") - Decimal("0.0333")


def test_query_credentials_work_too_and_wrong_ones_are_401(sandbox) -> None:
    ok = get(sandbox.url, "/account/get-balance", params={"api_key": SANDBOX_API_KEY, "api_secret": SANDBOX_API_SECRET})
    assert ok.status_code == 200
    assert get(sandbox.url, "/account/get-balance", params={"api_key": SANDBOX_API_KEY, "api_secret": "nope"}).status_code == 401
    assert get(sandbox.url, "/account/get-balance").status_code == 401


def test_outbound_sms_pricing_per_country(sandbox) -> None:
    sandbox.configure(sms_price="0.05")
    response = get(sandbox.url, "/account/get-pricing/outbound/sms", params={"country": "gb"}, headers={"Authorization": BASIC})
    assert response.status_code == 200
    body = response.json()
    assert (body["countryCode"], body["currency"], body["defaultPrice"], body["dialingPrefix"]) == ("GB", "EUR", "0.05000000", "44")
    assert body["networks"][0]["price"] == "0.05000000"
    bad = get(sandbox.url, "/account/get-pricing/outbound/sms", params={"country": "United"}, headers={"Authorization": BASIC})
    assert bad.status_code == 400
    assert get(sandbox.url, "/account/get-pricing/outbound/fax", params={"country": "GB"},
               headers={"Authorization": BASIC}).status_code == 404
