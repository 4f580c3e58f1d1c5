"""The verify flows against a scripted Vonage: bodies per API, reuse, every check outcome, cancel rules.

The same flows run against the sandbox's real Verify API in test_service_sandbox.py; the script
here pins the answers the sandbox does not give on demand (a 409 for a request finished here,
Vonage forgetting a request, the second-event cancel refusal).

The wire formats and auth are proven over real HTTP in tests/functions/test_verify_*.py;
here the point is our own rules (attempt cap, expiry, reuse, monotonic records).
"""

from __future__ import annotations

import pytest

from shared.config import RateLimit
from shared.errors import ServiceError, VonageUnavailableError
from shared.verify.records import VerificationStatus, load_record
from shared.verify.service import cancel_verification, check_code, start_verification
from tests.fixtures.verify import GB_MOBILE, GB_MOBILE_SAME_PREFIX, GB_PREMIUM, legacy_error, v2_error

V2_ID = "c11236f4-00bf-4b89-84ba-88b25df97315"
LEGACY_ID = "abcdef0123456789abcdef0123456789"


@pytest.fixture
def run(store, fake_vonage, verify_settings):
    """run(flow, arg, **settings_overrides): call a service flow with the test's store and fake."""

    def call(flow, arg, ip="198.51.100.1", **overrides):
        settings = verify_settings(**overrides)
        kwargs = dict(settings=settings, store=store, vonage=fake_vonage)
        if flow is start_verification:
            kwargs["ip"] = ip
        return flow(arg, **kwargs)

    return call


def fails(action):
    with pytest.raises(ServiceError) as info:
        action()
    return info.value


# ---- start ----------------------------------------------------------------------------


def test_v2_start_sends_the_workflow_and_stores_a_pending_record(run, store, fake_vonage):
    result = run(start_verification, {"number": GB_MOBILE, "brand": "Acme", "code_length": 6, "locale": "en-gb", "client_ref": "r1"})
    assert result["status"] == "pending" and result["channels"] == ["sms", "voice"] and result["reused"] is False
    (op, (body,)), = fake_vonage.calls
    assert op == "verify2_start"
    assert body == {
        "brand": "Acme",
        "workflow": [{"channel": "sms", "to": "447400123456"}, {"channel": "voice", "to": "447400123456"}],
        "code_length": 6,
        "locale": "en-gb",
        "client_ref": "r1",
    }
    record = load_record(store, result["request_id"])
    assert record.status is VerificationStatus.PENDING and record.api == "v2"
    assert record.masked_number == "+44********56" and record.client_ref == "r1"


def test_v2_whatsapp_and_email_steps(run, fake_vonage):
    run(start_verification, {"number": GB_MOBILE, "brand": "Acme", "channels": ["whatsapp", "email"], "email": "u@example.com"},
        brand_number="+447400000001")
    body = fake_vonage.calls[0][1][0]
    assert body["workflow"] == [
        {"channel": "whatsapp", "to": "447400123456", "from": "447400000001"},
        {"channel": "email", "to": "u@example.com"},
    ]


@pytest.mark.parametrize(("channels", "workflow_id"), [(None, "5"), (["sms"], "6"), (["voice"], "7")])
def test_legacy_start_params(run, fake_vonage, channels, workflow_id):
    body = {"number": GB_MOBILE, "brand": "Acme", "code_length": 6, "locale": "de-de"}
    if channels:
        body["channels"] = channels
    result = run(start_verification, body, verify_api="legacy")
    (op, (params,)), = fake_vonage.calls
    assert op == "verify_legacy_start"
    assert params == {"number": "447400123456", "brand": "Acme", "workflow_id": workflow_id, "code_length": "6", "lg": "de-de"}
    assert result["channels"] == (channels or ["sms", "voice"])


@pytest.mark.parametrize(
    ("api", "op", "error"),
    [
        ("v2", "verify2_start", v2_error(409, {"title": "Conflict", "detail": "Concurrent verifications to the same number are not allowed.", "request_id": V2_ID}, operation="start")),
        ("legacy", "verify_legacy_start", legacy_error("10", operation="start", request_id=LEGACY_ID, error_text="Concurrent verifications to the same number are not allowed")),
    ],
)
def test_start_while_in_flight_reuses_the_request_and_its_attempts(run, store, fake_vonage, api, op, error):
    request_id = V2_ID if api == "v2" else LEGACY_ID
    fake_vonage.script(op, {"request_id": request_id, **({"status": "0"} if api == "legacy" else {})})
    first = run(start_verification, {"number": GB_MOBILE, "brand": "Acme"}, verify_api=api)
    check_op = "verify2_check" if api == "v2" else "verify_legacy_check"
    fake_vonage.script(check_op, v2_error(400, operation="check") if api == "v2" else legacy_error("16", operation="check"))
    assert fails(lambda: run(check_code, {"request_id": request_id, "code": "1111"}, verify_api=api)).code == "wrong_code"
    # WHEN the user asks again while the first request is in flight
    fake_vonage.script(op, error)
    again = run(start_verification, {"number": GB_MOBILE, "brand": "Acme"}, verify_api=api)
    # THEN the same request comes back, and the wrong attempt is still counted
    assert again["request_id"] == first["request_id"] == request_id
    assert again["reused"] is True and again["attempts_remaining"] == 2
    assert load_record(store, request_id).attempts == 1


def test_in_flight_request_unknown_here_is_tracked_from_now_on(run, store, fake_vonage):
    fake_vonage.script("verify2_start", v2_error(409, {"request_id": V2_ID}, operation="start"))
    result = run(start_verification, {"number": GB_MOBILE, "brand": "Acme"})
    assert result["request_id"] == V2_ID and result["reused"] is True
    assert load_record(store, V2_ID).status is VerificationStatus.PENDING


def test_in_flight_request_finished_here_is_409(run, store, fake_vonage):
    fake_vonage.script("verify2_start", {"request_id": V2_ID})
    run(start_verification, {"number": GB_MOBILE, "brand": "Acme"}, verify_max_attempts=1)
    fake_vonage.script("verify2_check", v2_error(400, operation="check"))
    assert fails(lambda: run(check_code, {"request_id": V2_ID, "code": "1111"}, verify_max_attempts=1)).code == "too_many_attempts"
    fake_vonage.script("verify2_start", v2_error(409, {"request_id": V2_ID}, operation="start"))
    error = fails(lambda: run(start_verification, {"number": GB_MOBILE, "brand": "Acme"}))
    assert (error.status, error.code) == (409, "verification_in_flight")
    assert error.details["status"] == "failed" and error.retry_after


def test_in_flight_request_past_our_expiry_is_extended_not_locked(run, store, store_clock, fake_vonage):
    fake_vonage.script("verify2_start", {"request_id": V2_ID})
    run(start_verification, {"number": GB_MOBILE, "brand": "Acme"})
    store_clock.advance(700)
    fake_vonage.script("verify2_start", v2_error(409, {"request_id": V2_ID}, operation="start"))
    result = run(start_verification, {"number": GB_MOBILE, "brand": "Acme"})
    assert result["reused"] is True
    assert load_record(store, V2_ID).status_at(store_clock()) is VerificationStatus.PENDING


def test_other_vonage_errors_propagate_and_store_nothing(run, store, fake_vonage):
    fake_vonage.script("verify2_start", v2_error(402, {"title": "Low balance"}, operation="start"))
    error = fails(lambda: run(start_verification, {"number": GB_MOBILE, "brand": "Acme"}))
    assert (error.status, error.code) == (402, "insufficient_balance")
    assert store.query("verifications") == []


def test_fraud_guard_runs_before_vonage(run, fake_vonage):
    error = fails(lambda: run(start_verification, {"number": GB_PREMIUM, "brand": "Acme"}))
    assert error.code == "number_type_not_allowed"
    run(start_verification, {"number": GB_MOBILE, "brand": "Acme"}, verify_limit_number=RateLimit(1, 60))
    error = fails(lambda: run(start_verification, {"number": GB_MOBILE, "brand": "Acme"}, verify_limit_number=RateLimit(1, 60)))
    assert error.code == "number_rate_limited"
    assert fake_vonage.count("verify2_start") == 1  # refused starts never reached Vonage


def test_only_a_trusted_caller_may_name_the_client_ip(store, fake_vonage, verify_settings):
    settings = verify_settings(verify_limit_ip=RateLimit(1, 3600))
    body = {"number": GB_MOBILE, "brand": "Acme", "client_ip": "203.0.113.5"}

    def start(trusted, number=GB_MOBILE):
        return start_verification({**body, "number": number}, settings=settings, store=store, vonage=fake_vonage,
                                  ip="198.51.100.1", trusted_caller=trusted)

    start(True)  # counted against 203.0.113.5
    start(False, "+447400124000")  # counted against the connection's address, 198.51.100.1
    assert fails(lambda: start(True, "+33612345678")).code == "ip_rate_limited"
    assert fails(lambda: start(False, "+33612345679")).code == "ip_rate_limited"


# ---- check ----------------------------------------------------------------------------


@pytest.fixture
def started(run, fake_vonage):
    def start(api="v2", **overrides):
        request_id = V2_ID if api == "v2" else LEGACY_ID
        op = "verify2_start" if api == "v2" else "verify_legacy_start"
        fake_vonage.script(op, {"request_id": request_id, "status": "0"})
        run(start_verification, {"number": GB_MOBILE, "brand": "Acme"}, verify_api=api, **overrides)
        return request_id

    return start


@pytest.mark.parametrize("api", ["v2", "legacy"])
def test_right_code_verifies(run, store, fake_vonage, started, api):
    request_id = started(api)
    result = run(check_code, {"request_id": request_id, "code": "0042"})
    assert result == {"request_id": request_id, "status": "verified"}
    op = "verify2_check" if api == "v2" else "verify_legacy_check"
    assert fake_vonage.calls[-1] == (op, (request_id, "0042"))
    record = load_record(store, request_id)
    assert record.status is VerificationStatus.VERIFIED and record.attempts == 1
    # Checking again does not reach Vonage and says it is done.
    error = fails(lambda: run(check_code, {"request_id": request_id, "code": "0042"}))
    assert (error.status, error.code) == (409, "already_verified")
    assert fake_vonage.count(op) == 1


@pytest.mark.parametrize(
    ("api", "wrong", "too_many"),
    [
        ("v2", lambda: v2_error(400, {"title": "Invalid Code"}, operation="check"), lambda: v2_error(410, operation="check")),
        ("legacy", lambda: legacy_error("16", operation="check"), lambda: legacy_error("17", operation="check")),
    ],
)
def test_wrong_codes_then_vonage_ends_the_request(run, store, fake_vonage, started, api, wrong, too_many):
    request_id = started(api)
    op = "verify2_check" if api == "v2" else "verify_legacy_check"
    fake_vonage.script(op, wrong(), wrong(), too_many())
    first = fails(lambda: run(check_code, {"request_id": request_id, "code": "1111"}))
    assert (first.status, first.code, first.details["attempts_remaining"]) == (400, "wrong_code", 2)
    second = fails(lambda: run(check_code, {"request_id": request_id, "code": "2222"}))
    assert second.details["attempts_remaining"] == 1
    third = fails(lambda: run(check_code, {"request_id": request_id, "code": "3333"}))
    assert (third.status, third.code) == (410, "too_many_attempts")
    assert load_record(store, request_id).status is VerificationStatus.FAILED
    fourth = fails(lambda: run(check_code, {"request_id": request_id, "code": "4444"}))
    assert fourth.code == "too_many_attempts"
    assert fake_vonage.count(op) == 3


@pytest.mark.parametrize("api", ["v2", "legacy"])
def test_our_attempt_cap_stops_a_brute_force_before_vonage(run, store, fake_vonage, started, api):
    # GIVEN a Vonage that would take any number of wrong codes, and our cap of 2
    request_id = started(api, verify_max_attempts=2)
    op = "verify2_check" if api == "v2" else "verify_legacy_check"
    wrong = (lambda: v2_error(400, operation="check")) if api == "v2" else (lambda: legacy_error("16", operation="check"))
    fake_vonage.script(op, *[wrong() for _ in range(10)])
    # WHEN a caller tries ten codes
    errors = [fails(lambda i=i: run(check_code, {"request_id": request_id, "code": f"{i:04d}"})) for i in range(10)]
    # THEN only two reached Vonage; the second already ended the request
    assert fake_vonage.count(op) == 2
    assert [e.code for e in errors] == ["wrong_code"] + ["too_many_attempts"] * 9
    assert all(e.status == 410 for e in errors[1:])
    record = load_record(store, request_id)
    assert record.status is VerificationStatus.FAILED and record.reason == "too_many_attempts"


def test_concurrent_checks_never_exceed_the_cap(store, fake_vonage, verify_settings, started):
    """Attempts are reserved in a transaction before Vonage is called: eight parallel
    guesses cannot all slip through while the first ones are still at Vonage."""
    import threading

    request_id = started(verify_max_attempts=3)
    settings = verify_settings(verify_max_attempts=3)
    # Vonage answers only once three checks are inside it at the same time: with the cap
    # working exactly three get there; without it the others would pile in as well.
    at_vonage = threading.Barrier(3, timeout=5)

    def slow_wrong_code(*_):
        try:
            at_vonage.wait()
        except threading.BrokenBarrierError:
            pass
        return v2_error(400, operation="check")

    fake_vonage.script("verify2_check", *[slow_wrong_code for _ in range(8)])
    start_line = threading.Barrier(8)
    outcomes = []

    def attempt(i):
        start_line.wait()
        try:
            check_code({"request_id": request_id, "code": f"{i:04d}"}, settings=settings, store=store, vonage=fake_vonage)
        except ServiceError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake_vonage.count("verify2_check") == 3
    assert sorted(outcomes).count("too_many_attempts") >= 5
    assert load_record(store, request_id).attempts == 3


def test_attempts_lost_to_vonage_outages_still_count_toward_the_cap(run, store, fake_vonage, started):
    request_id = started(verify_max_attempts=2)
    fake_vonage.script("verify2_check", VonageUnavailableError("down"), VonageUnavailableError("down"))
    for _ in range(2):
        assert fails(lambda: run(check_code, {"request_id": request_id, "code": "1234"})).status == 503
    error = fails(lambda: run(check_code, {"request_id": request_id, "code": "1234"}))
    assert (error.status, error.code) == (410, "too_many_attempts")
    assert fake_vonage.count("verify2_check") == 2


def test_unknown_request_is_404_without_calling_vonage(run, fake_vonage):
    error = fails(lambda: run(check_code, {"request_id": V2_ID, "code": "1234"}))
    assert (error.status, error.code) == (404, "verification_not_found")
    assert fake_vonage.calls == []


def test_expired_request_is_410_without_calling_vonage(run, store, store_clock, fake_vonage, started):
    request_id = started()
    store_clock.advance(600)
    error = fails(lambda: run(check_code, {"request_id": request_id, "code": "1234"}))
    assert (error.status, error.code) == (410, "verification_expired")
    assert fake_vonage.count("verify2_check") == 0
    assert load_record(store, request_id).status is VerificationStatus.EXPIRED  # written down


def test_request_vonage_no_longer_has_ends_here_too(run, store, fake_vonage, started):
    request_id = started()
    fake_vonage.script("verify2_check", v2_error(404, {"title": "Not Found"}, operation="check"))
    error = fails(lambda: run(check_code, {"request_id": request_id, "code": "1234"}))
    assert (error.status, error.code) == (410, "verification_expired")
    assert error.details["vonage_code"] == "404"
    assert load_record(store, request_id).status is VerificationStatus.EXPIRED


def test_vonage_not_found_after_a_concurrent_success_is_already_verified(run, store, store_clock, fake_vonage, started):
    from shared.verify.callbacks import apply_verify_callback

    request_id = started()

    def verified_meanwhile(*_):
        apply_verify_callback(store, {"request_id": request_id, "type": "summary", "status": "completed"})
        return v2_error(404, operation="check")

    fake_vonage.script("verify2_check", verified_meanwhile)
    error = fails(lambda: run(check_code, {"request_id": request_id, "code": "1234"}))
    assert (error.status, error.code) == (409, "already_verified")
    assert fake_vonage.count("verify2_check") == 1
    assert load_record(store, request_id).status is VerificationStatus.VERIFIED


def test_cancelled_request_check_is_410(run, store, store_clock, fake_vonage, started):
    request_id = started()
    store_clock.advance(31)
    run(cancel_verification, request_id)
    error = fails(lambda: run(check_code, {"request_id": request_id, "code": "1234"}))
    assert (error.status, error.code) == (410, "verification_cancelled")


def test_vonage_outage_keeps_the_attempt_counted(run, store, fake_vonage, started):
    # The outcome is unknown (Vonage may have counted it): counting it too is the safe side.
    request_id = started()
    fake_vonage.script("verify2_check", VonageUnavailableError("down"))
    assert fails(lambda: run(check_code, {"request_id": request_id, "code": "1234"})).status == 503
    assert load_record(store, request_id).attempts == 1


def test_no_record_holds_the_code(run, store, fake_vonage, started):
    request_id = started()
    fake_vonage.script("verify2_check", v2_error(400, operation="check"))
    fails(lambda: run(check_code, {"request_id": request_id, "code": "8642"}))
    run(check_code, {"request_id": request_id, "code": "9753"})
    docs = store.query("verifications") + store.query("ratelimits")
    assert docs and "8642" not in str(docs) and "9753" not in str(docs)


# ---- cancel ---------------------------------------------------------------------------


def test_cancel_in_the_first_30_seconds_is_refused_without_calling_vonage(run, store_clock, fake_vonage, started):
    request_id = started()
    store_clock.advance(10)
    error = fails(lambda: run(cancel_verification, request_id))
    assert (error.status, error.code) == (409, "cancel_not_allowed")
    assert error.retry_after == pytest.approx(20)
    assert "30 seconds" in error.message and "second" in error.message
    assert fake_vonage.count("verify2_cancel") == 0


@pytest.mark.parametrize("api", ["v2", "legacy"])
def test_cancel_after_30_seconds(run, store, store_clock, fake_vonage, started, api):
    request_id = started(api)
    store_clock.advance(30)
    assert run(cancel_verification, request_id) == {"request_id": request_id, "status": "cancelled"}
    expected = ("verify2_cancel", (request_id,)) if api == "v2" else ("verify_legacy_control", (request_id, "cancel"))
    assert fake_vonage.calls[-1] == expected
    assert load_record(store, request_id).status is VerificationStatus.CANCELLED
    # Idempotent: a second cancel answers the same without calling Vonage.
    assert run(cancel_verification, request_id)["status"] == "cancelled"
    assert len([c for c in fake_vonage.calls if c[0] == expected[0]]) == 1


@pytest.mark.parametrize(
    ("api", "error"),
    [("v2", lambda: v2_error(409, {"title": "Conflict"}, operation="cancel")), ("legacy", lambda: legacy_error("19", operation="cancel"))],
)
def test_cancel_after_the_second_event_explains_vonages_rule(run, store, store_clock, fake_vonage, started, api, error):
    request_id = started(api)
    store_clock.advance(200)
    fake_vonage.script("verify2_cancel" if api == "v2" else "verify_legacy_control", error())
    refused = fails(lambda: run(cancel_verification, request_id))
    assert (refused.status, refused.code) == (409, "cancel_not_allowed")
    assert "30 seconds" in refused.message and "second message or call" in refused.message
    assert load_record(store, request_id).status is VerificationStatus.PENDING


def test_cancel_unknown_or_finished(run, store_clock, fake_vonage, started):
    assert fails(lambda: run(cancel_verification, V2_ID)).code == "verification_not_found"
    request_id = started()
    run(check_code, {"request_id": request_id, "code": "1234"})
    store_clock.advance(60)
    error = fails(lambda: run(cancel_verification, request_id))
    assert (error.status, error.code, error.details["status"]) == (409, "verification_finished", "verified")
    assert fails(lambda: run(cancel_verification, "bad id!")).status == 422


def test_cancel_of_a_request_vonage_no_longer_has(run, store, store_clock, fake_vonage, started):
    request_id = started("legacy")
    store_clock.advance(60)
    fake_vonage.script("verify_legacy_control", legacy_error("6", operation="cancel"))
    error = fails(lambda: run(cancel_verification, request_id))
    assert error.code == "verification_finished"
    assert load_record(store, request_id).status is VerificationStatus.EXPIRED


def test_a_start_refused_by_a_spend_budget_charges_no_budget_and_calls_no_vonage(run, store, fake_vonage):
    # The budgets ride in the fraud counters' one transaction (StateStore.hit_many then=...): the
    # global one refuses the second start, so its range is not counted in the country budget.
    budgets = dict(verify_budget_global=RateLimit(1, 86400), verify_budget_per_country=RateLimit(5, 3600))
    run(start_verification, {"number": GB_MOBILE, "brand": "Acme"}, **budgets)
    error = fails(lambda: run(start_verification, {"number": GB_MOBILE_SAME_PREFIX, "brand": "Acme"}, **budgets))
    assert (error.status, error.code, error.details["budget"]) == (429, "budget_exhausted", "VERIFY_BUDGET_GLOBAL")
    assert fake_vonage.count("verify2_start") == 1
    docs = store.query("budgets")
    assert sorted(d.get("starts", 0) for d in docs) == [0, 1]
    assert sum(len(d.get("members", [])) for d in docs) == 1  # only the first start's range
    # The fraud counters counted the refused start (as when the budgets were charged after them).
    assert len(store.query("ratelimits")) == 5  # two numbers, the IP, their one range, the country
