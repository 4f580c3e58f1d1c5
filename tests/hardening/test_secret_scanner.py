"""The leak scanner that runs around every test of the suite (tests/fixtures/hardening.py)."""

from __future__ import annotations

import logging

import pytest

from tests.fixtures.hardening import HARDENING_API_TOKEN, _CAPTURE, _LeakHandler, find_leaks, secret_catalogue


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


# ---- nothing is skipped silently ---------------------------------------------------------------


def _take_unreadable() -> list[str]:
    with _CAPTURE.lock:
        found = list(_CAPTURE.unreadable)
        _CAPTURE.unreadable.clear()  # this test made them on purpose; its own teardown stays clean
    return found


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_a_log_record_that_cannot_be_formatted_is_still_scanned() -> None:
    # Handed straight to the scanner's handler: pytest's own log handlers refuse such records.
    _LeakHandler().emit(_record("tests.unformattable", "%d tokens: %s", "not-a-number", HARDENING_API_TOKEN))
    with _CAPTURE.lock:
        lines = [line for name, line in _CAPTURE.lines if name == "tests.unformattable"]
        _CAPTURE.lines.clear()  # the leak is made on purpose here
    assert len(lines) == 1 and _take_unreadable() == []
    leaks = find_leaks([("tests.unformattable", lines[0])], [], set(), secret_catalogue())
    assert leaks == ["an API token in a log line of logger 'tests.unformattable'"]


class _Unreadable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


def test_a_log_record_that_cannot_be_read_at_all_is_reported_so_the_test_fails() -> None:
    _LeakHandler().emit(_record("tests.unreadable", "value %s", _Unreadable()))
    assert _take_unreadable() == ["a log record of logger 'tests.unreadable' that could not be read (RuntimeError)"]


def test_a_response_body_that_cannot_be_read_fails_the_test() -> None:
    import flask

    app = flask.Flask(__name__)

    @app.get("/stream")
    def stream() -> flask.Response:
        return flask.Response(iter([b"a", b"b"]))

    assert app.test_client().get("/stream").data == b"ab"
    assert _take_unreadable() == ["the response body of '/stream' could not be read (a streamed response)"]


def test_large_response_bodies_are_scanned_too() -> None:
    import flask

    app = flask.Flask(__name__)
    body = "x" * (2 * 1024 * 1024) + HARDENING_API_TOKEN

    @app.get("/big")
    def big() -> str:
        return body

    app.test_client().get("/big")
    with _CAPTURE.lock:
        bodies = [text for path, text in _CAPTURE.bodies if path == "/big"]
        _CAPTURE.bodies.clear()
    assert bodies and find_leaks([], [("/big", bodies[0])], set(), secret_catalogue()) == [
        "an API token in the response body of '/big'"
    ]
