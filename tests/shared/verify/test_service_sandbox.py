"""The verify flows against the sandbox's real Verify API (v2 and legacy) over HTTP (issue 19).

tests/shared/verify/test_service.py scripts Vonage's answers with a fake to pin our own rules
one by one; here the same flows run against the local Vonage sandbox with the real
``VonageClient``: the code is the one the sandbox "sent" to the phone, a wrong code is refused
by the sandbox, a concurrent start is refused by it, cancelling follows its 30-second rule, and
an outage is a 5xx it really answers. Store, sandbox and service share one fake clock.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.config import RateLimit, Settings
from shared.errors import ServiceError
from shared.store.sqlite import SQLiteStateStore
from shared.verify.records import VerificationStatus, load_record
from shared.verify.service import cancel_verification, check_code, start_verification
from shared.vonage.client import VonageClient
from tests.fixtures.sandbox import APPLICATION_ID, SANDBOX_API_KEY, SANDBOX_API_SECRET
from tests.fixtures.store import FakeClock
from tests.fixtures.verify import GB_MOBILE

APIS = ["v2", "legacy"]
VERIFY_API = {"v2": "verify", "legacy": "verify_legacy"}  # the sandbox's request log names


class _Flows:
    def __init__(self, sandbox: Any, store: SQLiteStateStore, clock: FakeClock, private_key: str) -> None:
        self.sandbox, self.store, self.clock, self._key = sandbox, store, clock, private_key
        self._clients: list[VonageClient] = []

    def settings(self, api: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "api_key": SANDBOX_API_KEY,
            "api_secret": SANDBOX_API_SECRET,
            "application_id": APPLICATION_ID,
            "private_key": self._key,
            "api_base_url": self.sandbox.url,
            "rest_base_url": self.sandbox.url,
            "vonage_max_retries": 0,
            "verify_api": api,
            "verify_limit_number": RateLimit(100, 600),
            "verify_limit_ip": RateLimit(100, 3600),
            "verify_limit_prefix": RateLimit(100, 3600),
            "verify_limit_country": RateLimit(100, 3600),
            **overrides,
        }
        return Settings(**values)

    def _call(self, flow: Any, arg: Any, api: str, **overrides: Any) -> dict[str, Any]:
        settings = self.settings(api, **overrides)
        client = VonageClient(settings)
        self._clients.append(client)
        kwargs: dict[str, Any] = {"settings": settings, "store": self.store, "vonage": client, "clock": self.clock}
        if flow is start_verification:
            kwargs["ip"] = "198.51.100.1"
        return flow(arg, **kwargs)

    def start(self, api: str, **overrides: Any) -> str:
        result = self._call(start_verification, {"number": GB_MOBILE, "brand": "Acme"}, api, **overrides)
        assert result["status"] == "pending"
        return result["request_id"]

    def check(self, api: str, request_id: str, code: str, **overrides: Any) -> dict[str, Any]:
        return self._call(check_code, {"request_id": request_id, "code": code}, api, **overrides)

    def cancel(self, api: str, request_id: str) -> dict[str, Any]:
        return self._call(cancel_verification, request_id, api)

    def requests(self, api: str, path_part: str = "") -> list[dict[str, Any]]:
        return [r for r in self.sandbox.requests(api=VERIFY_API[api]) if path_part in str(r.get("path", ""))]

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def flows(sandbox_factory, rsa_private_pem, tmp_path):
    # The clock starts now: the client signs application JWTs with the real clock.
    clock = FakeClock(time.time())
    sandbox = sandbox_factory(clock=clock, application_id=APPLICATION_ID, private_key=rsa_private_pem,
                              verify_cancel_after=30.0)
    store = SQLiteStateStore(str(tmp_path / "verify.sqlite3"), clock=clock)
    helper = _Flows(sandbox, store, clock, rsa_private_pem)
    yield helper
    helper.close()
    store.close()


def fails(action: Any) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        action()
    return info.value


def _wrong(code: str) -> str:
    return "0000" if code != "0000" else "1111"


@pytest.mark.parametrize("api", APIS)
def test_the_code_the_phone_received_verifies_once(flows, api):
    request_id = flows.start(api)
    code = flows.sandbox.last_code(GB_MOBILE)
    from shared.verify.inputs import DEFAULT_CODE_LENGTH

    assert code and len(code) == DEFAULT_CODE_LENGTH == 6  # 6 digits by default (money safety)
    assert flows.check(api, request_id, code) == {"request_id": request_id, "status": "verified"}
    record = load_record(flows.store, request_id)
    assert record.status is VerificationStatus.VERIFIED and record.attempts == 1 and record.api == api
    checks = len(flows.requests(api))
    # checking again is answered here, without reaching Vonage
    again = fails(lambda: flows.check(api, request_id, code))
    assert (again.status, again.code) == (409, "already_verified")
    assert len(flows.requests(api)) == checks


@pytest.mark.parametrize("api", APIS)
def test_a_wrong_code_is_refused_by_vonage_and_counted(flows, api):
    request_id = flows.start(api)
    code = flows.sandbox.last_code(GB_MOBILE)
    error = fails(lambda: flows.check(api, request_id, _wrong(code)))
    assert (error.status, error.code, error.details["attempts_remaining"]) == (400, "wrong_code", 2)
    assert load_record(flows.store, request_id).attempts == 1
    # the right code still works afterwards
    assert flows.check(api, request_id, code)["status"] == "verified"
    assert load_record(flows.store, request_id).attempts == 2


@pytest.mark.parametrize("api", APIS)
def test_our_cap_ends_a_brute_force_before_vonage_sees_more_guesses(flows, api):
    request_id = flows.start(api, verify_max_attempts=2)
    code = flows.sandbox.last_code(GB_MOBILE)
    before = len(flows.requests(api))
    errors = [fails(lambda: flows.check(api, request_id, _wrong(code), verify_max_attempts=2)) for _ in range(6)]
    assert [e.code for e in errors] == ["wrong_code"] + ["too_many_attempts"] * 5
    assert len(flows.requests(api)) - before == 2, "only the two allowed guesses reached Vonage"
    record = load_record(flows.store, request_id)
    assert record.status is VerificationStatus.FAILED and record.reason == "too_many_attempts"


@pytest.mark.parametrize("api", APIS)
def test_a_second_start_while_one_is_in_flight_reuses_it(flows, api):
    first = flows.start(api)
    again = flows._call(start_verification, {"number": GB_MOBILE, "brand": "Acme"}, api)
    assert again["request_id"] == first and again["reused"] is True
    # the sandbox took the first start and refused the second as concurrent (v2: 409, legacy: status 10)
    outcomes = [str(r["outcome"]) for r in flows.sandbox.requests(api=VERIFY_API[api])]
    assert outcomes == (["202", "409"] if api == "v2" else ["0", "10"])
    assert len(flows.store.query("verifications", limit=10)) == 1


@pytest.mark.parametrize("api", APIS)
def test_cancel_follows_vonages_30_second_rule_and_ends_the_request(flows, api):
    request_id = flows.start(api)
    flows.clock.advance(10)
    early = fails(lambda: flows.cancel(api, request_id))
    assert (early.status, early.code) == (409, "cancel_not_allowed")
    assert early.retry_after == pytest.approx(20)
    flows.clock.advance(21)
    assert flows.cancel(api, request_id) == {"request_id": request_id, "status": "cancelled"}
    assert load_record(flows.store, request_id).status is VerificationStatus.CANCELLED
    code = flows.sandbox.last_code(GB_MOBILE)
    after = fails(lambda: flows.check(api, request_id, code))
    assert (after.status, after.code) == (410, "verification_cancelled")


def test_an_outage_answered_by_vonage_keeps_the_attempt_counted(flows):
    request_id = flows.start("v2")
    flows.sandbox.set_faults("5xx;count=1;api=verify")
    error = fails(lambda: flows.check("v2", request_id, flows.sandbox.last_code(GB_MOBILE)))
    assert error.status in (502, 503) and error.code.startswith("vonage")
    assert load_record(flows.store, request_id).attempts == 1
    assert load_record(flows.store, request_id).status is VerificationStatus.PENDING
