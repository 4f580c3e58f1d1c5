"""The SMS API as the sandbox serves it: credentials, answers, money, limits, receipts."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from shared.errors import SignatureError
from shared.vonage.signatures import sign_sms_params, verify_sms_signature
from tests.fixtures.sandbox import SANDBOX_API_KEY, SANDBOX_API_SECRET, SANDBOX_SIGNATURE_SECRET
from tests.sandbox._helpers import TO, client, send_sms


def _entry(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200
    return response.json()["messages"][0]


# ---- credentials -------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["basic", "body", "signature"])
def test_each_vonage_credential_is_accepted(sandbox, auth: str) -> None:
    entry = _entry(send_sms(sandbox.url, auth=auth))
    assert entry["status"] == "0"
    assert sandbox.messages()[0]["auth"] == auth


def test_wrong_secret_is_status_4(sandbox) -> None:
    response = send_sms(sandbox.url, auth="none", api_key=SANDBOX_API_KEY, api_secret="wrong-secret")
    assert _entry(response) == {"status": "4", "error-text": "Bad Credentials"}


def test_missing_credentials_is_status_2(sandbox) -> None:
    assert _entry(send_sms(sandbox.url, auth="none"))["status"] == "2"


def test_signature_with_api_secret_is_status_32(sandbox) -> None:
    form = sign_sms_params(
        {"api_key": SANDBOX_API_KEY, "from": "ACME", "to": TO, "text": "x"},
        secret=SANDBOX_SIGNATURE_SECRET,
        method="md5hash",
    )
    form["api_secret"] = SANDBOX_API_SECRET
    with client() as http:
        entry = _entry(http.post(f"{sandbox.url}/sms/json", data=form))
    assert entry["status"] == "32"


def test_tampered_signed_request_is_status_14(sandbox) -> None:
    form = sign_sms_params(
        {"api_key": SANDBOX_API_KEY, "from": "ACME", "to": TO, "text": "original"},
        secret=SANDBOX_SIGNATURE_SECRET,
        method="md5hash",
    )
    form["text"] = "altered"
    with client() as http:
        assert _entry(http.post(f"{sandbox.url}/sms/json", data=form))["status"] == "14"


def test_required_signing_refuses_unsigned_sends(sandbox_factory) -> None:
    strict = sandbox_factory(require_signed_requests=True)
    assert _entry(send_sms(strict.url, auth="basic"))["status"] == "14"
    assert _entry(send_sms(strict.url, auth="signature"))["status"] == "0"


# ---- answers -----------------------------------------------------------------------


def test_answer_is_string_valued_with_price_balance_network_and_client_ref(sandbox) -> None:
    response = send_sms(sandbox.url, **{"client-ref": "order-42"})
    body = response.json()
    assert body["message-count"] == "1"
    entry = body["messages"][0]
    assert entry["to"] == TO
    assert entry["message-price"] == "0.03330000"
    assert entry["remaining-balance"] == "9.96670000"
    assert entry["network"] == "23410"
    assert entry["client-ref"] == "order-42"
    assert all(isinstance(value, str) for value in entry.values())


def test_long_text_is_one_entry_per_part_each_with_its_own_id(sandbox) -> None:
    body = send_sms(sandbox.url, text="x" * 305).json()  # 152 + 152 + 1
    assert body["message-count"] == "3"
    ids = [entry["message-id"] for entry in body["messages"]]
    assert len(set(ids)) == 3
    assert [e["remaining-balance"] for e in body["messages"]] == ["9.96670000", "9.93340000", "9.90010000"]


def test_unicode_text_splits_at_66_characters(sandbox) -> None:
    body = send_sms(sandbox.url, text="é" * 71, type="unicode").json()
    assert body["message-count"] == "2"


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"to": "+447700900001"}, "3"),
        ({"to": "12345"}, "3"),
        ({"to": None}, "2"),
        ({"text": "y" * 3201}, "12"),
        ({"type": "wappush"}, "3"),
        ({"callback": "ftp://example.test/dlr"}, "23"),
        ({"ttl": "100"}, "3"),
        ({"from": "A-VERY-LONG-SENDER-ID"}, "3"),
    ],
)
def test_invalid_sends_are_refused_with_vonage_status(sandbox, fields: dict[str, str], status: str) -> None:
    entry = _entry(send_sms(sandbox.url, **fields))
    assert entry["status"] == status
    assert entry["error-text"]
    assert sandbox.messages() == []


def test_exactly_3200_characters_is_accepted(sandbox) -> None:
    assert send_sms(sandbox.url, text="z" * 3200).json()["message-count"] == "22"


# ---- money, trial, throttling ------------------------------------------------------


def test_low_balance_is_status_9_and_a_long_text_can_fail_in_part(sandbox_factory) -> None:
    poor = sandbox_factory(balance=Decimal("0.05"))
    body = send_sms(poor.url, text="x" * 200).json()  # two parts, money for one
    assert [e["status"] for e in body["messages"]] == ["0", "9"]
    assert poor.balance == "0.01670000"
    assert _entry(send_sms(poor.url))["status"] == "9"


def test_trial_account_reaches_only_allow_listed_numbers(sandbox_factory) -> None:
    trial = sandbox_factory(trial=True, allow_list=(TO,))
    assert _entry(send_sms(trial.url, to=TO))["status"] == "0"
    assert _entry(send_sms(trial.url, to="447700900999")) == {
        "status": "29",
        "error-text": "Non White-listed Destination - rejected",
    }


def test_throttled_above_the_configured_rate(sandbox_factory) -> None:
    frozen = time.time()
    limited = sandbox_factory(rate_limit=2, clock=lambda: frozen)
    statuses = [_entry(send_sms(limited.url))["status"] for _ in range(4)]
    assert statuses == ["0", "0", "1", "1"]


def test_throttle_window_slides(sandbox_factory) -> None:
    now = [time.time()]
    limited = sandbox_factory(rate_limit=1, clock=lambda: now[0])
    assert _entry(send_sms(limited.url))["status"] == "0"
    assert _entry(send_sms(limited.url))["status"] == "1"
    now[0] += 1.01
    assert _entry(send_sms(limited.url))["status"] == "0"


# ---- receipts ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GET", "POST", "POST-JSON"])
def test_one_signed_receipt_per_part_in_the_configured_format(sandbox_factory, webhook_receiver, fmt: str) -> None:
    signed = sandbox_factory(
        status_webhook_url=f"{webhook_receiver.url}/dlr",
        webhook_format=fmt,
        sms_signing=True,
        signature_method="sha256",
    )
    body = send_sms(signed.url, text="x" * 200, **{"client-ref": "ref-1"}).json()
    receipts = webhook_receiver.wait_for(2)
    assert {r.method for r in receipts} == {"GET" if fmt == "GET" else "POST"}
    if fmt == "POST":
        assert receipts[0].headers["content-type"] == "application/x-www-form-urlencoded"
    by_id = {r.fields["messageId"]: r.fields for r in receipts}
    assert set(by_id) == {e["message-id"] for e in body["messages"]}
    for fields in by_id.values():
        assert all(isinstance(v, str) for v in fields.values())
        verify_sms_signature(fields, secret=SANDBOX_SIGNATURE_SECRET, method="sha256")
        assert fields["status"] == "delivered"
        assert fields["err-code"] == "0"
        assert fields["msisdn"] == TO and fields["to"] == "ACME"
        assert fields["client-ref"] == "ref-1"
        assert fields["price"] == "0.03330000"
        assert fields["api-key"] == SANDBOX_API_KEY
        assert len(fields["scts"]) == 10 and fields["nonce"]
        assert fields["message-timestamp"].count(":") == 2


def test_receipt_signature_fails_with_another_secret(sandbox_factory, webhook_receiver) -> None:
    signed = sandbox_factory(status_webhook_url=f"{webhook_receiver.url}/dlr", sms_signing=True)
    send_sms(signed.url)
    fields = webhook_receiver.wait_for(1)[0].fields
    with pytest.raises(SignatureError) as caught:
        verify_sms_signature(fields, secret="not-the-secret", method="md5hash")
    assert caught.value.reason == "bad_signature"


def test_unsigned_receipts_when_sms_signing_is_off(sandbox, webhook_receiver) -> None:
    send_sms(sandbox.url)
    fields = webhook_receiver.wait_for(1)[0].fields
    assert "sig" not in fields and "nonce" not in fields


def test_callback_field_overrides_the_status_webhook(sandbox, webhook_receiver) -> None:
    send_sms(sandbox.url, callback=f"{webhook_receiver.url}/per-message")
    assert webhook_receiver.wait_for(1)[0].path == "/per-message"


def test_no_receipt_when_status_report_req_is_false(sandbox, webhook_receiver) -> None:
    send_sms(sandbox.url, **{"status-report-req": "false"})
    assert sandbox.wait_idle()
    assert webhook_receiver.requests == []


def test_message_log_keeps_the_exact_fields_but_not_the_secret(sandbox) -> None:
    send_sms(sandbox.url, auth="body", type="unicode", text="Grüße 😀", **{"client-ref": "c1"})
    record = sandbox.messages()[0]
    assert record["fields"]["type"] == "unicode"
    assert record["fields"]["text"] == "Grüße 😀"
    assert record["fields"]["client-ref"] == "c1"
    assert record["fields"]["api_secret"] == "[redacted]"
    assert record["content_type"] == "application/x-www-form-urlencoded"
    assert SANDBOX_API_SECRET not in str(sandbox.requests())


def test_form_body_sent_with_a_json_content_type_is_still_read(sandbox) -> None:
    # The official SDK reuses the JSON Content-Type of an earlier call on later form posts.
    with client() as http:
        response = http.post(
            f"{sandbox.url}/sms/json",
            content=f"api_key={SANDBOX_API_KEY}&api_secret={SANDBOX_API_SECRET}&from=ACME&to={TO}&text=hi",
            headers={"Content-Type": "application/json"},
        )
    assert _entry(response)["status"] == "0"
    assert sandbox.messages()[0]["content_type"] == "application/json"
