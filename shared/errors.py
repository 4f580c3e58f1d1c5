"""Every exception the project raises, under one root.

Each error carries the HTTP status and the stable machine-readable ``code`` that
``shared.web`` turns into the one JSON error shape::

    {"error": {"code": "invalid_phone", "message": "...", "details": {...}}}

Errors are split by what the caller will do about them, not by where they came from::

    ServiceError                      500 internal_error
    ├── ConfigError                   500 misconfigured      (deployment must fix its environment)
    ├── BadRequestError               400 bad_request        (caller must fix the request)
    │   ├── ValidationError           422 invalid_field
    │   │   └── InvalidPhoneError     422 invalid_phone
    │   └── PayloadTooLargeError      413 payload_too_large
    ├── UnauthorizedError             401 unauthorized       (missing or wrong bearer token)
    ├── SignatureError                401 invalid_signature  (webhook authenticity; has .reason)
    ├── ForbiddenError                403 forbidden
    ├── NotFoundError                 404 not_found
    ├── MethodNotAllowedError         405 method_not_allowed
    ├── ConflictError                 409 conflict           (may carry retry_after)
    ├── RateLimitedError              429 rate_limited       (retry_after)
    │   └── BudgetExhaustedError      429 budget_exhausted   (a spend budget is used up; retry_after)
    ├── StoreError                    503 store_unavailable  (retry later: nothing was lost)
    │   └── RecordExistsError         409 already_exists     (atomic create lost the race)
    └── VonageError                   502 vonage_error
        ├── VonageTimeoutError        504 vonage_timeout
        ├── VonageUnavailableError    503 vonage_unavailable (5xx: not retried, outcome unknown; no connection: after retries)
        ├── VonageThrottledError      503 vonage_throttled   (after retries; retry_after)
        └── VonageAPIError            per Vonage code        (see shared.vonage.errors)

``status`` and ``code`` are class defaults that an instance may override, so one
Vonage error class can map each Vonage code to its own status without a class per code.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "BadRequestError",
    "BudgetExhaustedError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "InvalidPhoneError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RecordExistsError",
    "ServiceError",
    "SignatureError",
    "StoreError",
    "UnauthorizedError",
    "ValidationError",
    "VonageAPIError",
    "VonageError",
    "VonageThrottledError",
    "VonageTimeoutError",
    "VonageUnavailableError",
]


class ServiceError(Exception):
    """Root of every error this project raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details or {}
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        """The public JSON body of this error (never a stack trace)."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}

    def as_record(self) -> dict[str, Any]:
        """This error as a send result or a stored record keeps it: code, message, HTTP status,
        JSON-safe details and Retry-After."""
        record: dict[str, Any] = {"code": self.code, "message": self.message, "http_status": self.status}
        if self.details:
            record["details"] = json.loads(json.dumps(self.details, default=str))
        if self.retry_after is not None:
            record["retry_after"] = self.retry_after
        return record


class ConfigError(ServiceError):
    """The deployment's environment is missing or has malformed variables."""

    status = 500
    code = "misconfigured"

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems), details={"problems": self.problems})


class BadRequestError(ServiceError):
    """The request cannot be understood (malformed JSON, wrong content)."""

    status = 400
    code = "bad_request"


class ValidationError(BadRequestError):
    """The request is well-formed but a field is missing, of the wrong type or out of range."""

    status = 422
    code = "invalid_field"

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        details = kwargs.pop("details", None) or {}
        if field is not None:
            details.setdefault("field", field)
        super().__init__(message, details=details, **kwargs)
        self.field = field


class InvalidPhoneError(ValidationError):
    """A phone number that cannot be a real, reachable number."""

    code = "invalid_phone"


class PayloadTooLargeError(BadRequestError):
    """The request body is over the configured limit."""

    status = 413
    code = "payload_too_large"


class UnauthorizedError(ServiceError):
    """The caller did not present a valid bearer token."""

    status = 401
    code = "unauthorized"


class SignatureError(ServiceError):
    """A webhook failed its authenticity check.

    ``reason`` is one of: missing, malformed, bad_signature, body_hash_mismatch,
    stale, wrong_key, unsupported_method, bad_token. It is safe to log; it never
    contains a secret.
    """

    status = 401
    code = "invalid_signature"

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or f"webhook authentication failed: {reason}")
        self.reason = reason


class ForbiddenError(ServiceError):
    """The caller is known but not allowed to do this."""

    status = 403
    code = "forbidden"


class NotFoundError(ServiceError):
    """The record asked for does not exist (or has expired)."""

    status = 404
    code = "not_found"


class MethodNotAllowedError(ServiceError):
    """The function does not take this HTTP method."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            f"{method} is not accepted here; use {', '.join(allowed)}",
            details={"allowed": list(allowed)},
        )
        self.allowed = allowed


class ConflictError(ServiceError):
    """The request conflicts with the current state (e.g. an idempotency key in use)."""

    status = 409
    code = "conflict"


class RateLimitedError(ServiceError):
    """Too many requests for this caller, number, prefix or country."""

    status = 429
    code = "rate_limited"


class BudgetExhaustedError(RateLimitedError):
    """A spend budget (messages, SMS parts or verification starts per window) is used up."""

    code = "budget_exhausted"


class StoreError(ServiceError):
    """The state store failed; the caller should retry (webhooks answer 5xx so Vonage does)."""

    status = 503
    code = "store_unavailable"


class RecordExistsError(StoreError):
    """An atomic create found a live record under the same key."""

    status = 409
    code = "already_exists"


class VonageError(ServiceError):
    """A call to Vonage failed."""

    status = 502
    code = "vonage_error"
    retryable: bool = False


class VonageTimeoutError(VonageError):
    """Vonage did not answer in time (after retries)."""

    status = 504
    code = "vonage_timeout"
    retryable = True


class VonageUnavailableError(VonageError):
    """Vonage answered 5xx (never retried: ``details["outcome"] == "unknown"``) or could not be
    reached (after retries)."""

    status = 503
    code = "vonage_unavailable"
    retryable = True


class VonageThrottledError(VonageError):
    """Vonage kept throttling us after every retry."""

    status = 503
    code = "vonage_throttled"
    retryable = True


class VonageAPIError(VonageError):
    """Vonage refused the request with a documented error.

    ``vonage_code`` is Vonage's own code (SMS status, legacy Verify status, or the
    problem-JSON HTTP status / type anchor), ``api`` names the API that answered,
    ``http_status`` is the status Vonage answered with. ``code`` and ``status`` are
    ours: what the caller of this project sees.
    """

    def __init__(
        self,
        message: str,
        *,
        api: str,
        vonage_code: str,
        http_status: int,
        code: str,
        status: int,
        retryable: bool = False,
        body: Any = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        merged = {"vonage_code": vonage_code, "api": api}
        merged.update(details or {})
        super().__init__(message, code=code, status=status, details=merged)
        self.api = api
        self.vonage_code = vonage_code
        self.http_status = http_status
        self.retryable = retryable
        self.body = body
