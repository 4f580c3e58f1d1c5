"""Structured JSON log lines that Google Cloud Logging understands.

One JSON object per line on stdout with ``severity``, ``message`` and the fields passed
with ``extra=``. Values are passed as fields, never formatted into the message. A
last-line-of-defence filter replaces any registered secret value (API secret, private
key, tokens) wherever it would appear, and masks fields that hold phone numbers.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from shared.phone import mask_phone

__all__ = ["bind_context", "configure_logging", "get_logger", "register_secrets", "reset_context"]

# Fields whose value is a phone number: masked wherever they appear.
PHONE_FIELDS = frozenset({"to", "from", "phone", "number", "msisdn", "raw_phone", "sender", "recipient"})
# Fields that must never be written at all.
FORBIDDEN_FIELDS = frozenset({"code", "pin", "otp", "secret", "api_secret", "token", "private_key", "authorization", "password"})
_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("log_context", default={})
_secrets: set[str] = set()
_shortest_secret = 0  # no text shorter than this can hold a secret
_configured = False
_SCALARS = (int, float, bool, type(None))


def get_logger(name: str) -> logging.Logger:
    """A logger under the project's JSON handler (configured on first use)."""
    configure_logging()
    return logging.getLogger(name)


def configure_logging(level: str | None = None, *, stream: Any = None, force: bool = False) -> None:
    """Install the JSON formatter on the root logger once per process; a given level always applies."""
    global _configured
    if _configured and not force:
        if level is not None:
            _set_level(level)
        return
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_redact)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_vonage_functions", False):
            root.removeHandler(existing)
    handler._vonage_functions = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    _set_level(level or "INFO")
    _configured = True


def _set_level(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    # httpx logs every request line at INFO; our client logs what matters (retries, errors).
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so that no log line can ever contain them."""
    global _shortest_secret
    for value in values:
        if value and len(value) >= 4:
            _secrets.add(value)
            # A PEM key is also registered line by line, so a fragment cannot leak either.
            for line in value.replace("\\n", "\n").splitlines():
                if len(line) >= 16 and "-----" not in line:
                    _secrets.add(line.strip())
    _shortest_secret = min(map(len, _secrets), default=0)


def bind_context(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add fields (function name, trace) to every log line of the current request."""
    merged = dict(_context.get())
    merged.update(fields)
    return _context.set(merged)


def reset_context(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Undo a bind_context()."""
    _context.reset(token)


def scrub(value: Any, key: str | None = None) -> Any:
    """Mask phone fields, drop forbidden fields, and blank registered secrets, recursively."""
    if key is not None and key.lower() in FORBIDDEN_FIELDS:
        return "[redacted]"
    # Most log fields are plain str, int or None: spare them the isinstance checks against
    # the Mapping ABC (a third of the cost of a log line).
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is str and (key is None or key.lower() not in PHONE_FIELDS):
        return _blank_secrets(value)
    if isinstance(value, Mapping):
        return {str(k): scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        if key is not None and key.lower() in PHONE_FIELDS:
            return mask_phone(value) if any(ch.isdigit() for ch in value) else value
        return _blank_secrets(value)
    return value


def _blank_secrets(text: str) -> str:
    if len(text) < _shortest_secret:
        return text
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def _redact(record: logging.LogRecord) -> bool:
    record.msg = _blank_secrets(str(record.msg))
    if record.args:
        record.args = tuple(scrub(arg) for arg in (record.args if isinstance(record.args, tuple) else (record.args,)))
    return True


@functools.lru_cache(maxsize=4)
def _second(epoch_second: int) -> str:
    # Lines come many per second: format each second once.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_second))


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line with Cloud Logging's field names."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": _second(int(record.created)) + f".{int(record.msecs):03d}Z",
        }
        context = dict(_context.get())
        trace = context.pop("trace", None)
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        entry.update(scrub(context))
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = scrub(value, key)
        if record.exc_info:
            # Stack traces go to the log (for the operator), never to a response.
            entry["exception"] = _blank_secrets(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)
