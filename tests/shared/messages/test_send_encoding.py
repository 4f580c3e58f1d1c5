"""GSM-7 / UCS-2 detection and conservative part counting (vonage-api.md section 11)."""

from __future__ import annotations

import pytest

from shared.messages.encoding import (
    GSM7,
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_REPORTED,
    UCS2,
    analyze_text,
    is_gsm7,
)

EMOJI = "\U0001F600"  # outside the BMP: a surrogate pair in UTF-16


def test_the_basic_table_has_the_127_characters_of_3gpp_23_038():
    # 128 positions minus ESC (0x1B), which is not a character.
    assert len(GSM7_BASIC) == 127
    assert {"@", "£", "$", "¥", "è", "Ç", "Δ", "ß", "¤", "¡", "§", "¿", "à", "\n", "\r", " "} <= GSM7_BASIC
    assert GSM7_EXTENSION == frozenset("\f^{}\\[~]|€")


@pytest.mark.parametrize("char", ["ç", "á", "â", "’", "“", "–", "…", EMOJI, "中", "\t"])
def test_characters_outside_gsm7_need_ucs2(char):
    assert not is_gsm7(char)
    assert analyze_text(f"Hello {char}").encoding == UCS2


def test_pound_sign_is_basic_not_extended():
    # KB 204014833 wrongly lists £ as extended; it is in the basic table (one septet).
    analysis = analyze_text("£" * 160)
    assert (analysis.encoding, analysis.units, analysis.segments) == (GSM7, 160, 1)


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (304, 2), (305, 3), (456, 3), (457, 4)],
)
def test_gsm7_parts_are_160_alone_and_152_in_a_long_text(length, segments):
    analysis = analyze_text("a" * length)
    assert analysis.encoding == GSM7
    assert analysis.segments == segments
    assert analysis.units_per_segment == (160 if segments == 1 else 152)


def test_extension_characters_count_two_septets():
    analysis = analyze_text("€" * 80)
    assert (analysis.characters, analysis.units, analysis.segments) == (80, 160, 1)
    assert analyze_text("€" * 80 + "a").segments == 2


def test_an_extension_character_is_never_split_across_parts():
    # 151 septets then an ESC pair: 153 > 152, so the pair starts part 2.
    text = "a" * 151 + "€" + "a" * 10
    analysis = analyze_text(text)
    assert analysis.units == 151 + 2 + 10
    assert analysis.segments == 2
    # 304 septets exactly fill two parts of 152 when nothing straddles ...
    assert analyze_text("a" * 150 + "€" + "a" * 152).segments == 2
    # ... but one septet short in part 1 pushes the pair, and everything after it, over.
    assert analyze_text("a" * 151 + "€" + "a" * 151).segments == 3


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (132, 2), (133, 3), (198, 3), (199, 4)])
def test_ucs2_parts_are_70_alone_and_66_in_a_long_text(length, segments):
    analysis = analyze_text("ç" * length)
    assert analysis.encoding == UCS2
    assert analysis.segments == segments
    assert analysis.units_per_segment == (70 if segments == 1 else 66)


def test_emoji_count_two_utf16_units():
    assert analyze_text(EMOJI * 35).units == 70
    assert analyze_text(EMOJI * 35).segments == 1
    assert analyze_text(EMOJI * 36).segments == 2


def test_a_surrogate_pair_is_never_split_across_parts():
    # 65 units then an emoji: 67 > 66, so the emoji opens part 2.
    text = "ç" * 65 + EMOJI + "ç" * 5
    analysis = analyze_text(text)
    assert analysis.units == 72
    assert analysis.segments == 2
    # 66 + 66 units fit two parts exactly when aligned; misaligned by one, they need three.
    assert analyze_text("ç" * 64 + EMOJI + "ç" * 66).segments == 2
    assert analyze_text("ç" * 65 + EMOJI + "ç" * 65).segments == 3


def test_the_ucs2_report_names_each_character_that_forced_it_and_where():
    analysis = analyze_text("Hi “Bob” – café ok")
    report = analysis.to_dict()
    assert report["encoding"] == UCS2
    chars = report["unicode_characters"]
    assert [(c["char"], c["position"]) for c in chars] == [("“", 3), ("”", 7), ("–", 9)]
    assert chars[0]["codepoint"] == "U+201C"
    assert chars[0]["name"] == "LEFT DOUBLE QUOTATION MARK"
    assert chars[0]["replacement"] == '"' and chars[2]["replacement"] == "-"
    assert report["unicode_character_count"] == 3
    assert "é" not in [c["char"] for c in chars]  # é is GSM-7


def test_the_report_is_capped_but_the_count_is_not():
    analysis = analyze_text("ç" * (MAX_REPORTED + 5))
    assert len(analysis.unicode_characters) == MAX_REPORTED
    assert analysis.unicode_character_count == MAX_REPORTED + 5


def test_a_gsm7_report_has_no_unicode_section():
    report = analyze_text("plain {text}").to_dict()
    assert report == {"encoding": GSM7, "characters": 12, "units": 14, "segments": 1, "units_per_segment": 160}
