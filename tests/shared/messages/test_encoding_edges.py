"""Encoding edges that mutation testing found unguarded (issue 19)."""

from __future__ import annotations

from shared.messages.encoding import UCS2, analyze_text


def test_the_last_character_of_the_basic_plane_is_one_utf16_unit_and_the_next_is_two():
    last_bmp = analyze_text("\uffff")
    assert (last_bmp.encoding, last_bmp.characters, last_bmp.units) == (UCS2, 1, 1)
    beyond = analyze_text("\U00010000")
    assert (beyond.characters, beyond.units) == (1, 2)
    assert analyze_text("\ufffe").units == 1


def test_the_ucs2_report_lists_at_most_twenty_characters_but_counts_all():
    analysis = analyze_text("ç" * 21)
    assert len(analysis.unicode_characters) == 20
    assert analysis.unicode_character_count == 21
    assert [c["position"] for c in analysis.unicode_characters] == list(range(20))


def test_a_gsm7_text_reports_no_unicode_character():
    analysis = analyze_text("Hello {world}")
    assert analysis.encoding == "GSM-7" and not analysis.is_unicode
    assert analysis.unicode_character_count == 0 and analysis.unicode_characters == ()
    assert "unicode_characters" not in analysis.to_dict()


def test_an_empty_text_needs_no_part():
    assert analyze_text("").segments == 0
    assert analyze_text("a").segments == 1
