"""The leak scanner that runs around every test of the suite (tests/fixtures/hardening.py)."""

from __future__ import annotations

import logging

import pytest

from tests.fixtures.hardening import HARDENING_API_TOKEN, _CAPTURE, find_leaks, secret_catalogue


def test_scanner_names_the_kind_and_place_never_the_secret() -> None:
    catalogue = secret_catalogue()
    leaks = find_leaks([("shared.web", f'{{"message": "token {HARDENING_API_TOKEN}"}}')], [], set(), catalogue)
    assert leaks == ["an API token in a log line of logger 'shared.web'"]
    assert HARDENING_API_TOKEN not in leaks[0]


def test_scanner_finds_private_key_lines_in_response_bodies(rsa_private_pem: str) -> None:
    line = rsa_private_pem.splitlines()[3]
    leaks = find_leaks([], [("/send", f'{{"error": "{line}"}}')], set(), secret_catalogue([rsa_private_pem]))
    assert leaks == ["a line of the private key in the response body of '/send'"]


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ('{"message": "your code is 4821"}', True),
        ('{"code": "4821"}', True),
        ('{"time": "2026-01-30T12:48:21.482Z"}', False),  # digits inside a time are not the code
        ('{"request_id": "c11236f4-4821-4b89"}', False),  # nor a group of an id
        ('{"ms": 4821.5}', False),
        ('{"n": 148210}', False),
    ],
)
def test_otp_codes_are_matched_as_whole_tokens(text: str, leaked: bool) -> None:
    assert bool(find_leaks([("x", text)], [], {"4821"}, {})) is leaked


def test_log_lines_are_captured_after_the_projects_redaction() -> None:
    from shared.log import register_secrets

    register_secrets([HARDENING_API_TOKEN])
    logging.getLogger("tests.hardening").warning("a registered secret %s is blanked", HARDENING_API_TOKEN)
    with _CAPTURE.lock:
        lines = [line for name, line in _CAPTURE.lines if name == "tests.hardening"]
    assert lines and HARDENING_API_TOKEN not in lines[-1] and "[redacted]" in lines[-1]
