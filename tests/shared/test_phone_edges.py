"""Phone parsing and masking edges that mutation testing found unguarded (issue 19)."""

from __future__ import annotations

import pytest

from shared.errors import InvalidPhoneError
from shared.phone import mask_phone, parse_phone


def test_a_possible_but_unassigned_number_is_refused_not_read_as_region_zz():
    # +1 200 is not an area code in use: the right length for NANP, but not a valid number
    with pytest.raises(InvalidPhoneError) as info:
        parse_phone("+1 200 555 0100")
    assert info.value.code == "invalid_phone" and info.value.status == 422
    assert "not in use in its country's numbering plan" in info.value.message


def test_a_valid_number_gets_its_real_region_never_zz():
    phone = parse_phone("+1 415 555 0100")
    assert phone.region == "US" and phone.e164 == "+14155550100"


def test_input_of_exactly_40_characters_is_parsed_and_41_is_refused():
    exactly = "+44" + " " * 26 + "7911 123456"
    assert len(exactly) == 40
    assert parse_phone(exactly).e164 == "+447911123456"
    with pytest.raises(InvalidPhoneError) as info:
        parse_phone(exactly.replace("+44", "+44 "))
    assert "may only contain" in info.value.message


def test_the_wire_form_is_tried_from_eight_digits():
    # Falkland Islands: +500 51234 is valid with eight digits in all
    assert parse_phone("50051234").e164 == "+50051234"
    assert parse_phone("50051234").region == "FK"


def test_seven_digits_without_a_region_are_not_read_as_a_wire_form():
    # +290 8999 (Tristan da Cunha) is valid, but seven bare digits are too short to be taken as one
    assert parse_phone("+2908999").region == "TA"
    with pytest.raises(InvalidPhoneError) as info:
        parse_phone("2908999")
    assert "include the country code" in info.value.message


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("1234", "****"),  # below five digits nothing is shown
        ("12345", "+1**45"),  # from five digits: country code and the last two
        ("+44795", "+44*95"),
        ("+354 5551234", "+354*****34"),  # a three-digit country code stays whole
        ("+1 (415) 555-0100", "+1********00"),  # formatting is ignored
        ("+99912345678", "+9********78"),  # no country code matches: one digit is kept
    ],
)
def test_masking_thresholds(raw, masked):
    assert mask_phone(raw) == masked


def test_masking_never_shows_more_than_the_country_code_and_two_digits():
    masked = mask_phone("+447911123456")
    assert masked.count("*") == len("447911123456") - 2 - 2
    assert "7911" not in masked and "1234" not in masked
