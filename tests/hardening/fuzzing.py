"""What the fuzz tests throw, and the bar every answer must clear.

- :data:`INJECTIONS`, :func:`hostile_text`, :func:`hostile_json`: wrong types, injection
  strings, control characters, unpaired surrogates, huge and deeply nested values.
- :func:`odd_phones`: phone numbers as people (and attackers) type them.
- :func:`check_answer`: no 5xx, no stack trace, a documented status for the operation, JSON,
  and for every refusal exactly the documented error shape.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import strategies as st

from tests.hardening.openapi_doc import load, resolve

__all__ = ["INJECTIONS", "check_answer", "documented_statuses", "hostile_json", "hostile_text", "odd_phones"]

DOCUMENT = load()

INJECTIONS = (
    "' OR '1'='1",
    "1; DROP TABLE documents; --",
    '{"$gt": ""}',
    "$where",
    "__proto__",
    "constructor",
    "__name__",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "%2e%2e%2f%2e%2e%2f",
    "\r\nSet-Cookie: injected=1",
    "\r\n\r\nHTTP/1.1 200 OK",
    "{{7*7}}",
    "${jndi:ldap://127.0.0.1/a}",
    "<script>alert(1)</script>",
    "\x00",
    "a\x00b",
    "\u202e+447911123456",
    "\u200d\u200b\ufeff",
    "\ud800",
    "\udfff\ud800",
    "😀" * 40,
    "A" * 5000,
    "9" * 400,
    "-1",
    "1e309",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
    "%s%s%s%n",
    "\\",
    '"',
    "'",
    "`",
    "\t\n\x0b\x0c\r",
)

ODD_PHONES = (
    "+44 7911 123456",
    "+44 (0) 7911 123456",
    "0044 7911 123456",
    "07911 123456",
    "447911123456",
    "+44-7911-123-456",
    "+44.7911.123.456",
    "+44/7911/123456",
    "tel:+447911123456",
    "+447911123456;ext=12",
    "+447911123456 ext 12",
    "＋４４７９１１１２３４５６",  # fullwidth
    "٠٧٩١١١٢٣٤٥٦",  # Arabic-Indic digits
    "+४४७९११",  # Devanagari digits
    "+447911123456\x00",
    "\u202e+447911123456",
    "+",
    "++447911123456",
    "+0",
    "+999999999999999",
    "+1" + "5" * 30,
    "+44 7911 123456 +44 7911 123457",
    "(((((",
    "+1 (415) 555-0100",
    "1-800-FLOWERS",
    "+447911123456" * 3,
    "  +33 6 12 34 56 78  ",
    "+800 1234 5678",  # international freephone
    "+882 1234 5678",  # international networks
    "+979 123456789",  # premium rate (global)
)


def hostile_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Strings: arbitrary unicode (surrogates included), the injection list, long runs."""
    return st.one_of(
        st.text(max_size=max_size),
        st.text(st.characters(codec=None, categories=("Cs", "Cc", "Cf", "Zs", "Nd", "So")), max_size=max_size),
        st.sampled_from(INJECTIONS),
        st.builds(lambda ch, n: ch * n, st.sampled_from(["a", "é", "😀", "\x00", "9", "&", "="]), st.integers(1, 4000)),
    )


def hostile_scalars() -> st.SearchStrategy[Any]:
    """JSON scalars of every type, edge values included."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([0, -1, 2**63, -(2**63) - 1, 1e308, -0.0, 0.5]),
        hostile_text(),
    )


def hostile_json(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, nested, with hostile keys (reserved names, empty, injection strings)."""
    keys = st.one_of(st.text(max_size=12), st.sampled_from(["", "__name__", "$where", "__proto__", "_expires_at", "expire_at"]))
    return st.recursive(
        hostile_scalars(),
        lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
        max_leaves=max_leaves,
    )


def odd_phones() -> st.SearchStrategy[Any]:
    """Phone numbers in odd formats, plus numbers that are not strings at all."""
    return st.one_of(
        st.sampled_from(ODD_PHONES),
        st.from_regex(r"\+?[0-9 ()\-./]{0,30}", fullmatch=True),
        st.integers(min_value=0, max_value=10**16),
        st.lists(st.sampled_from(ODD_PHONES), max_size=3),
        hostile_text(30),
    )


# ---- the bar -----------------------------------------------------------------------------------

_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_TRACE_MARKERS = ("Traceback (most recent call last)", 'File "/', ".py\", line ")


def documented_statuses(method: str, path: str, *, bearer: bool = True) -> set[int]:
    """The statuses the document allows for this request (405 for a method it does not list)."""
    template, operation = _operation(method.lower(), path, bearer=bearer)
    if operation is None:
        return {405} | ({404} if template is None else set())
    return {int(code) for code in operation["responses"]}


def _operation(method: str, path: str, *, bearer: bool) -> tuple[str | None, dict[str, Any] | None]:
    """The documented operation a request reaches. Every path under a function's mount reaches
    that function (as under functions-framework), so ``POST /send/x`` is a send."""
    bare = path.split("?", 1)[0].rstrip("/") or "/"
    paths = DOCUMENT["paths"]
    base = "/" + bare.lstrip("/").split("/", 1)[0]
    if base not in paths:
        return None, None
    if base == "/inbound" and method == "get" and not bearer:
        return base, paths["/inbound"]["post"]  # the SMS API's GET webhook
    for template in (f"{base}/{{id}}", f"{base}/{{request_id}}"):
        if bare != base and template in paths and method in paths[template]:
            return template, paths[template][method]
    if base == "/send" and method == "get":
        return "/send/{id}", paths["/send/{id}"]["get"]  # GET /send?id=...
    return base, paths[base].get(method)


def check_answer(response: Any, method: str, path: str, *, bearer: bool = True) -> dict[str, Any] | None:
    """Assert the bar on a Flask test-client or httpx response; return the parsed body."""
    status = response.status_code
    text = response.get_data(as_text=True) if hasattr(response, "get_data") else response.text
    where = f"{method} {path} -> {status}: {text[:300]!r}"
    assert status < 500, f"a 5xx for hostile input: {where}"
    for marker in _TRACE_MARKERS:
        assert marker not in text, f"a stack trace in a response: {where}"
    allowed = documented_statuses(method, path, bearer=bearer)
    assert status in allowed, f"status {status} is not documented for this operation ({sorted(allowed)}): {where}"
    content_type = response.headers.get("Content-Type", "")
    if status == 204 or method.upper() == "HEAD":
        return None
    assert content_type.split(";")[0].strip() == "application/json", f"not JSON ({content_type}): {where}"
    body = json.loads(text)
    if status >= 400:
        assert_error_shape(body, where)
    return body


def assert_error_shape(body: Any, where: str = "") -> None:
    """Exactly the documented Error schema: {"error": {"code", "message", "details"?}}."""
    schema = resolve(DOCUMENT, DOCUMENT["components"]["schemas"]["Error"])
    assert isinstance(body, dict) and set(body) == set(schema["required"]), f"not the error shape: {where}"
    error = body["error"]
    allowed = set(schema["properties"]["error"]["properties"])
    assert isinstance(error, dict) and {"code", "message"} <= set(error) <= allowed, f"not the error shape: {where}"
    assert isinstance(error["code"], str) and _ERROR_CODE.match(error["code"]), f"error code not snake_case: {where}"
    assert isinstance(error["message"], str) and error["message"], f"empty error message: {where}"
    assert isinstance(error.get("details", {}), dict), f"details is not an object: {where}"
