from __future__ import annotations

import pytest

from sandbox.encoding import is_gsm7, split_even, split_parts


def test_gsm_text_up_to_160_characters_is_one_part() -> None:
    assert split_parts("a" * 160, "text") == ["a" * 160]


def test_long_gsm_text_is_split_into_152_character_parts() -> None:
    parts = split_parts("a" * 161, "text")
    assert [len(p) for p in parts] == [152, 9]


def test_extension_characters_count_twice_and_are_never_split() -> None:
    # 151 plain characters + one extension character (2 septets) would be 153: it moves to part two.
    text = "a" * 151 + "€" + "b" * 20
    parts = split_parts(text, "text")
    assert parts[0] == "a" * 151
    assert parts[1].startswith("€")
    assert "".join(parts) == text


def test_unicode_splits_at_66_and_keeps_astral_characters_whole() -> None:
    text = "é" * 65 + "😀" + "x" * 10
    parts = split_parts(text, "unicode")
    assert parts[0] == "é" * 65  # the emoji (2 UTF-16 units) does not fit in the 66 left
    assert parts[1].startswith("😀")
    assert split_parts("é" * 70, "unicode") == ["é" * 70]


@pytest.mark.parametrize(("text", "expected"), [("Hello @£$", True), ("curly ’quote", False), ("emoji 😀", False)])
def test_is_gsm7(text: str, expected: bool) -> None:
    assert is_gsm7(text) is expected


def test_split_even_makes_near_equal_pieces() -> None:
    assert split_even("abcdefg", 3) == ["abc", "de", "fg"]
