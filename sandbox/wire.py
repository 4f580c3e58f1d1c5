"""Reading requests as Vonage reads them, and recording them exactly (minus secrets).

The SMS API and legacy Verify take flat string fields (a form body; legacy Verify also a
query string). Some clients send a JSON object instead, or a form with a JSON content
type (the official Python SDK reuses the ``Content-Type: application/json`` of an earlier
call on later form posts), so a body that is not a JSON object is read as a form whatever
its content type says. The content type received is recorded so a test can assert it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.wrappers import Request

__all__ = ["read_fields", "read_json", "redact_fields"]

_SECRET_FIELDS = frozenset({"api_secret"})


def read_fields(request: Request, *, include_query: bool = False) -> dict[str, str]:
    """Flat string fields from the body (a JSON object or a form), and the query when asked.

    The first occurrence of a repeated name wins (``request_ids`` is read separately).
    """
    fields: dict[str, str] = {}
    if include_query:
        for name, value in parse_qsl(request.query_string.decode("utf-8", "replace"), keep_blank_values=True):
            fields.setdefault(name, value)
    data = read_json(request) if request.mimetype == "application/json" else None
    if isinstance(data, dict):
        for name, value in data.items():
            fields.setdefault(str(name), _as_text(value))
        return fields
    raw = request.get_data(cache=True).decode("utf-8", "replace")
    for name, value in parse_qsl(raw, keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


def read_json(request: Request) -> Any:
    """The JSON body, or None when it is not valid JSON."""
    try:
        return json.loads(request.get_data(cache=True) or b"null")
    except ValueError:  # also UnicodeDecodeError
        return None


def redact_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy with secret values replaced (the field itself stays visible)."""
    return {name: "[redacted]" if name in _SECRET_FIELDS else value for name, value in fields.items()}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
