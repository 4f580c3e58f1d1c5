from __future__ import annotations

import pytest

from shared.errors import InvalidPhoneError
from shared.phone import mask_phone, parse_phone, to_e164, to_wire


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 (415) 555-0100", None, "+14155550100"),
        ("0044 7911 123456", None, "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
        ("447911123456", None, "+447911123456"),  # Vonage's wire form, as webhooks send it
        ("447911123456", "GB", "+447911123456"),
        ("(415) 555-0100", "US", "+14155550100"),
        ("+49 30 901820", None, "+4930901820"),
    ],
)
def test_what_people_type_becomes_e164(raw, region, e164):
    assert to_e164(raw, default_region=region) == e164


def test_wire_form_strips_the_plus():
    phone = parse_phone("+44 7911 123456")
    assert phone.wire == "447911123456"
    assert to_wire("+14155550100") == "14155550100"
    assert phone.country_code == 44


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", None, "non-empty"),
        (None, None, "non-empty"),
        (12345, None, "non-empty"),
        ("abc", None, "may only contain"),
        ("+1 555", None, "wrong length"),
        ("07911 123456", None, "country code"),
        # a US number typed nationally without DEFAULT_REGION: read as +41... it was "wrong length"
        ("(415) 555-0124", None, r"add a country code \(\+1 \.\.\.\): \+1 415-555-0124"),
        ("415.555.0124", None, r"add a country code \(\+1"),
        ("+44 7911 12345678901", None, "wrong length"),
        ("1" * 60, None, "may only contain"),
        ("+1 415 555 0100; DROP TABLE", None, "may only contain"),
    ],
)
def test_impossible_numbers_are_refused_with_a_reason(raw, region, reason):
    with pytest.raises(InvalidPhoneError, match=reason) as caught:
        parse_phone(raw, default_region=region, field="number")
    assert caught.value.status == 422
    assert caught.value.details["field"] == "number"


def test_number_type_and_country_for_fraud_checks():
    premium = parse_phone("+44 909 8790879")
    assert premium.number_type == "premium_rate"
    assert not premium.can_receive_codes
    mobile = parse_phone("+44 7911 123456")
    assert mobile.can_receive_codes and mobile.number_type == "mobile"
    assert parse_phone("+14155550100").region == "US"


def test_a_shared_country_code_keeps_its_region_and_type():
    # +44 is shared by GB, GG, IM and JE: the region comes from the validation's own lookup and
    # the number type is worked out later (on first use), both as libphonenumber says.
    manx = parse_phone("+44 7624 123456")
    assert (manx.e164, manx.region, manx.number_type) == ("+447624123456", "IM", "mobile")
    assert parse_phone("+1 416 555 0100").region == "CA"
    assert parse_phone(manx.e164) == manx  # equality ignores the cached parse


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+447911123456", "+44********56"),
        ("447911123456", "+44********56"),
        ("+14155550100", "+1********00"),
        ("123", "***"),
        ("", ""),
        (None, ""),
    ],
)
def test_masking_keeps_country_code_and_last_two_digits(raw, masked):
    assert mask_phone(raw) == masked
