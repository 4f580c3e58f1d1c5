"""Legacy Verify (v1) as the sandbox serves it: status codes and rules."""

from __future__ import annotations

import logging
import time
from typing import Any

from tests.fixtures.sandbox import SANDBOX_API_KEY, SANDBOX_API_SECRET
from tests.sandbox._helpers import BASIC, TO, client

CREDENTIALS = {"api_key": SANDBOX_API_KEY, "api_secret": SANDBOX_API_SECRET}


def _call(url: str, path: str, *, method: str = "POST", **params: str) -> dict[str, Any]:
    with client() as http:
        if method == "GET":
            response = http.get(f"{url}{path}", params={**CREDENTIALS, **params})
        else:
            response = http.post(f"{url}{path}", data={**CREDENTIALS, **params})
    assert response.status_code == 200
    return response.json()


def _start(url: str, **params: str) -> dict[str, Any]:
    return _call(url, "/verify/json", **{"number": TO, "brand": "ACME", **params})


def test_start_check_and_search(sandbox) -> None:
    started = _start(sandbox.url, code_length="6")
    assert started["status"] == "0" and len(started["request_id"]) == 32
    code = sandbox.last_code(TO)
    assert len(code) == 6
    checked = _call(sandbox.url, "/verify/check/json", request_id=started["request_id"], code=code)
    assert checked["status"] == "0"
    assert checked["price"] == "0.10000000" and checked["currency"] == "EUR"
    assert checked["event_id"]
    found = _call(sandbox.url, "/verify/search/json", method="GET", request_id=started["request_id"])
    assert found["status"] == "SUCCESS"
    assert found["number"] == TO
    assert [c["status"] for c in found["checks"]] == ["VALID"]
    assert code not in str(found)


def test_basic_auth_and_get_are_accepted_wrong_credentials_are_4(sandbox) -> None:
    with client() as http:
        response = http.get(
            f"{sandbox.url}/verify/json", params={"number": TO, "brand": "ACME"}, headers={"Authorization": BASIC}
        )
    assert response.json()["status"] == "0"
    assert _call(sandbox.url, "/verify/json", api_secret="nope", number=TO, brand="ACME")["status"] == "4"


def test_missing_and_invalid_parameters(sandbox) -> None:
    assert _call(sandbox.url, "/verify/json", brand="ACME")["status"] == "2"
    assert _start(sandbox.url, number="+447700")["status"] == "3"
    assert _start(sandbox.url, code_length="5")["status"] == "3"
    assert _start(sandbox.url, pin_code="1234")["status"] == "20"


def test_concurrent_request_is_status_10_with_the_existing_id(sandbox) -> None:
    first = _start(sandbox.url)["request_id"]
    second = _start(sandbox.url)
    assert second["status"] == "10"
    assert second["request_id"] == first


def test_wrong_codes_16_then_17_then_6(sandbox) -> None:
    request_id = _start(sandbox.url)["request_id"]
    wrong = "0000" if sandbox.last_code(TO) != "0000" else "1111"
    statuses = [_call(sandbox.url, "/verify/check/json", request_id=request_id, code=wrong)["status"] for _ in range(3)]
    assert statuses == ["16", "16", "17"]
    after = _call(sandbox.url, "/verify/check/json", request_id=request_id, code=sandbox.last_code(TO))
    assert after["status"] == "6"
    search = _call(sandbox.url, "/verify/search/json", request_id=request_id)
    assert search["status"] == "FAILED"


def test_cancel_rules_19_then_0(sandbox_factory) -> None:
    now = [time.time()]
    box = sandbox_factory(verify_cancel_after=30.0, clock=lambda: now[0])
    request_id = _start(box.url)["request_id"]
    early = _call(box.url, "/verify/control/json", request_id=request_id, cmd="cancel")
    assert early["status"] == "19"
    now[0] += 31
    assert _call(box.url, "/verify/control/json", request_id=request_id, cmd="cancel") == {
        "status": "0",
        "command": "cancel",
    }
    assert _call(box.url, "/verify/search/json", request_id=request_id)["status"] == "CANCELLED"


def test_trigger_next_event_then_cancel_is_19(sandbox) -> None:
    request_id = _start(sandbox.url, workflow_id="4")["request_id"]  # sms, sms
    assert _call(sandbox.url, "/verify/control/json", request_id=request_id, cmd="trigger_next_event")["status"] == "0"
    assert len([m for m in sandbox.inbox(TO) if m["request_id"] == request_id]) == 2
    assert _call(sandbox.url, "/verify/control/json", request_id=request_id, cmd="cancel")["status"] == "19"
    no_more = _call(sandbox.url, "/verify/control/json", request_id=request_id, cmd="trigger_next_event")
    assert no_more["status"] == "19"


def test_trial_account_is_status_29(sandbox_factory) -> None:
    box = sandbox_factory(trial=True, allow_list=("447700900002",))
    assert _start(box.url)["status"] == "29"
    assert _start(box.url, number="447700900002")["status"] == "0"


def test_search_unknown_is_101_and_several_ids_give_a_list(sandbox) -> None:
    assert _call(sandbox.url, "/verify/search/json", request_id="0" * 32)["status"] == "101"
    first = _start(sandbox.url)["request_id"]
    second = _start(sandbox.url, number="447700900002")["request_id"]
    with client() as http:
        response = http.get(
            f"{sandbox.url}/verify/search/json",
            params=[*CREDENTIALS.items(), ("request_ids", first), ("request_ids", second)],
        )
    assert [v["request_id"] for v in response.json()["verification_requests"]] == [first, second]


def test_throttled_is_status_1(sandbox_factory) -> None:
    frozen = time.time()
    box = sandbox_factory(rate_limit=1, clock=lambda: frozen)
    assert _start(box.url)["status"] == "0"
    assert _start(box.url, number="447700900002")["status"] == "1"


def test_secret_in_a_query_string_is_not_logged(sandbox, caplog) -> None:
    # This test's own client would log the URL it calls (httpx INFO): that is not the sandbox.
    # (set_level also sets caplog's handler level, so the DEBUG call must come last.)
    caplog.set_level(logging.WARNING, logger="httpx")
    caplog.set_level(logging.DEBUG)
    _call(sandbox.url, "/verify/json", method="GET", number=TO, brand="ACME")
    assert SANDBOX_API_SECRET not in str(sandbox.requests())
    ours = [vars(record) for record in caplog.records if record.name.startswith(("sandbox", "werkzeug"))]
    assert any(entry.get("path") == "/verify/json" for entry in ours)
    assert SANDBOX_API_SECRET not in str(ours)


def test_request_expires_after_its_last_event(sandbox_factory) -> None:
    now = [time.time()]
    box = sandbox_factory(clock=lambda: now[0])
    request_id = _start(box.url, workflow_id="6", next_event_wait="60")["request_id"]  # one SMS, 60 s
    code = box.last_code(TO)
    now[0] += 60
    assert _call(box.url, "/verify/check/json", request_id=request_id, code=code)["status"] == "6"
    assert _call(box.url, "/verify/search/json", request_id=request_id)["status"] == "EXPIRED"
    assert _start(box.url)["status"] == "0"  # the number is free again
