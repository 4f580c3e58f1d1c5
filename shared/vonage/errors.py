"""Every documented Vonage error, mapped in one table to what our callers see.

Vonage reports failures four ways (vonage-api.md):

- SMS API: HTTP 200 with a per-part ``status`` string (section 1.5);
- legacy Verify: HTTP 200 with a ``status`` string (section 8.4);
- Messages API: RFC 7807 problem JSON, keyed by HTTP status and the ``type`` anchor of 422s
  such as ``…/api-errors/messages#1150`` (section 5.5);
- Verify v2: problem JSON keyed by HTTP status (section 9.3); its 400 and 409 mean different
  things per operation (a 409 on start is "already in flight", on cancel "too early/late").

``ERROR_TABLE`` maps ``(api, vonage_code, operation)`` to an ``ErrorRule`` (our stable code, our
HTTP status, a plain-English message, whether retrying later can help). ``operation=None``
rows apply to every operation. A few codes are ambiguous until you read Vonage's text (SMS
status 3 "Invalid to address" vs "Invalid from address"); ``TEXT_RULES`` refine those.
Problem-JSON responses also fall back to the generic ``"http"`` rows by status.

The builders return ``shared.errors.VonageAPIError``; the caller raises it. Vonage's own text
goes into ``details["vonage_message"]``; callers must pass bodies already scrubbed of our
credentials (``VonageClient`` does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from shared.errors import VonageAPIError

__all__ = [
    "ERROR_TABLE",
    "HTTP",
    "MESSAGES",
    "SMS",
    "VERIFY2",
    "VERIFY_LEGACY",
    "TEXT_RULES",
    "ErrorRule",
    "lookup",
    "problem_error",
    "sms_error",
    "unexpected_response_error",
    "verify_legacy_error",
]

# API names: VonageAPIError.api and the first part of every ERROR_TABLE key.
SMS = "sms"
MESSAGES = "messages"
VERIFY2 = "verify2"
VERIFY_LEGACY = "verify_legacy"
HTTP = "http"  # generic rows by HTTP status, the fallback for every API


@dataclass(frozen=True)
class ErrorRule:
    """What one Vonage error means for our callers."""

    code: str  # our stable snake_case code
    status: int  # the HTTP status our functions answer with
    message: str  # plain English, safe to show
    retryable: bool = False  # trying the same request again later may succeed


# ---- the rules, one per distinct meaning -----------------------------------------------

_INVALID_PHONE = ErrorRule(
    "invalid_phone",
    422,
    "Vonage says the destination is not a valid phone number. Check the number and its country code.",
)
_DESTINATION_NOT_ALLOWED = ErrorRule(
    "destination_not_allowed",
    422,
    "The Vonage account is in trial (demo) mode and can only send to its test numbers. Add this number to "
    "the test numbers in the Vonage dashboard, or top up the account to send to any number.",
)
_INSUFFICIENT_BALANCE = ErrorRule(
    "insufficient_balance",
    402,
    "The Vonage account does not have enough credit. Top up the account in the Vonage dashboard.",
)
_AUTH_FAILED = ErrorRule(
    "misconfigured_vonage_credentials",
    500,
    "Deployment misconfigured: Vonage rejected this service's credentials. Check VONAGE_API_KEY and "
    "VONAGE_API_SECRET, or VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY.",
)
_TEXT_TOO_LONG = ErrorRule("text_too_long", 422, "The message is longer than Vonage accepts. Shorten the text.")
_NUMBER_BARRED = ErrorRule(
    "number_barred", 422, "Vonage will not deliver to this number: it is barred (blocked, or the recipient opted out)."
)
_INVALID_SENDER = ErrorRule(
    "invalid_sender",
    422,
    "Vonage does not accept this sender. Some countries (for example the US and Canada) need a Vonage "
    "number or short code as the sender instead of a name.",
)
_WRONG_CODE = ErrorRule("wrong_code", 400, "The code is not correct.")
_TOO_MANY_ATTEMPTS = ErrorRule(
    "too_many_attempts",
    410,
    "A wrong code was entered too many times, so this verification has ended. Start a new one.",
)
_NOT_FOUND = ErrorRule(
    "verification_not_found",
    404,
    "There is no active verification with this request id: it never existed, expired, "
    "or was already completed or cancelled.",
)
_IN_FLIGHT = ErrorRule(
    "verification_in_flight",
    409,
    "A verification to this number is already in progress. Use that one, or wait until it completes or expires.",
)
_CANCEL_NOT_ALLOWED = ErrorRule(
    "cancel_not_allowed",
    409,
    "Vonage refused to cancel this verification: it can only be cancelled from 30 seconds after it started "
    "until the second message or call has gone out. Let it expire instead.",
)
_NEXT_NOT_ALLOWED = ErrorRule(
    "next_workflow_not_allowed",
    409,
    "This verification has no further step to move to (or it just moved). Wait for it to expire.",
)
_CODE_NOT_SUPPORTED = ErrorRule(
    "code_not_supported",
    409,
    "The current step of this verification does not take a code (for example silent authentication).",
)
_DESTINATION_BLOCKED = ErrorRule(
    "destination_blocked",
    403,
    "Vonage does not allow verifications to this number: its network is blocked by anti-fraud rules or not supported.",
)
_THROTTLED = ErrorRule(
    "vonage_throttled", 503, "Vonage is rate-limiting this account. Try again shortly.", retryable=True
)
_UNAVAILABLE = ErrorRule("vonage_unavailable", 503, "Vonage had an internal error. Try again later.", retryable=True)
_INVALID_REQUEST = ErrorRule("invalid_request", 422, "Vonage rejected a parameter of the request.")
_MISSING_PARAMETER = ErrorRule("invalid_request", 422, "Vonage says a required parameter is missing.")
_ACCOUNT_BARRED = ErrorRule(
    "vonage_account_barred", 500, "Deployment misconfigured: the Vonage account is suspended. Contact Vonage support."
)
_NOT_ENABLED = ErrorRule(
    "vonage_account_not_enabled",
    500,
    "Deployment misconfigured: the Vonage account is not enabled for this API or feature. Contact Vonage support.",
)
_FORBIDDEN = ErrorRule(
    "vonage_forbidden", 502, "Vonage refused the request: this account is not allowed to use the requested feature."
)
_MESSAGE_BLOCKED = ErrorRule(
    "message_blocked",
    422,
    "The carrier blocked this message (content or sender restrictions in the destination country).",
)
_SILENT_AUTH = ErrorRule(
    "silent_auth_unavailable",
    422,
    "Silent authentication is not possible for this number or network. Use another channel.",
)
_MESSAGE_NOT_FOUND = ErrorRule("message_not_found", 404, "Vonage has no message with this id.")
_UNMAPPED = ErrorRule("vonage_error", 502, "Vonage returned an error this service does not recognise.")


def _variant(rule: ErrorRule, message: str) -> ErrorRule:
    return ErrorRule(rule.code, rule.status, message, rule.retryable)


_ROWS: tuple[tuple[str, str, str | None, ErrorRule], ...] = (
    # SMS API submission `status` (vonage-api.md 1.5)
    (SMS, "1", None, _THROTTLED),
    (SMS, "2", None, _MISSING_PARAMETER),
    (SMS, "3", None, _INVALID_REQUEST),
    (SMS, "4", None, _AUTH_FAILED),
    (SMS, "5", None, _UNAVAILABLE),
    (
        SMS,
        "6",
        None,
        _variant(_INVALID_PHONE, "Vonage cannot route this message: the number's prefix is not recognised."),
    ),
    (SMS, "7", None, _NUMBER_BARRED),
    (SMS, "8", None, _ACCOUNT_BARRED),
    (SMS, "9", None, _INSUFFICIENT_BALANCE),
    (
        SMS,
        "10",
        None,
        _variant(_THROTTLED, "Vonage has too many open connections for this account. Try again shortly."),
    ),
    (
        SMS,
        "11",
        None,
        _variant(_NOT_ENABLED, "Deployment misconfigured: the Vonage account is not enabled for the SMS HTTP API."),
    ),
    (SMS, "12", None, _TEXT_TOO_LONG),
    (SMS, "14", None, _variant(_AUTH_FAILED, "Deployment misconfigured: Vonage rejected the request signature.")),
    (SMS, "15", None, _INVALID_SENDER),
    (SMS, "17", None, _MESSAGE_BLOCKED),
    (SMS, "22", None, _variant(_INVALID_REQUEST, "Vonage does not recognise the network code for this destination.")),
    (
        SMS,
        "23",
        None,
        _variant(_INVALID_REQUEST, "Vonage rejected the callback URL: it is too long or has illegal characters."),
    ),
    (SMS, "29", None, _DESTINATION_NOT_ALLOWED),
    (
        SMS,
        "32",
        None,
        _variant(_AUTH_FAILED, "Deployment misconfigured: a signed request must not also carry the API secret."),
    ),
    (SMS, "33", None, _variant(_INVALID_PHONE, "The destination number has been de-activated.")),
    # Legacy Verify `status` (vonage-api.md 8.4)
    (VERIFY_LEGACY, "1", None, _THROTTLED),
    (VERIFY_LEGACY, "2", None, _MISSING_PARAMETER),
    (VERIFY_LEGACY, "3", None, _INVALID_REQUEST),
    (VERIFY_LEGACY, "4", None, _AUTH_FAILED),
    (VERIFY_LEGACY, "5", None, _UNAVAILABLE),
    (VERIFY_LEGACY, "6", None, _NOT_FOUND),
    (VERIFY_LEGACY, "7", None, _DESTINATION_BLOCKED),
    (VERIFY_LEGACY, "8", None, _ACCOUNT_BARRED),
    (VERIFY_LEGACY, "9", None, _INSUFFICIENT_BALANCE),
    (VERIFY_LEGACY, "10", None, _IN_FLIGHT),
    (
        VERIFY_LEGACY,
        "15",
        None,
        _variant(_DESTINATION_BLOCKED, "Vonage does not support verifications to this number's network."),
    ),
    (VERIFY_LEGACY, "16", None, _WRONG_CODE),
    (VERIFY_LEGACY, "17", None, _TOO_MANY_ATTEMPTS),
    (VERIFY_LEGACY, "18", None, _INVALID_REQUEST),
    (VERIFY_LEGACY, "19", None, _CANCEL_NOT_ALLOWED),
    (VERIFY_LEGACY, "19", "trigger_next_event", _NEXT_NOT_ALLOWED),
    (
        VERIFY_LEGACY,
        "20",
        None,
        _variant(
            _NOT_ENABLED, "Deployment misconfigured: custom codes (pin_code) are not enabled for this Vonage account."
        ),
    ),
    (VERIFY_LEGACY, "29", None, _DESTINATION_NOT_ALLOWED),
    (VERIFY_LEGACY, "101", None, _NOT_FOUND),
    # Messages API problem JSON (vonage-api.md 5.5): HTTP status, then 422 `type` anchors
    (MESSAGES, "400", None, _INVALID_REQUEST),
    (MESSAGES, "401", None, _AUTH_FAILED),
    (MESSAGES, "402", None, _INSUFFICIENT_BALANCE),
    (MESSAGES, "403", None, _FORBIDDEN),
    (MESSAGES, "404", None, _MESSAGE_NOT_FOUND),
    (MESSAGES, "422", None, _INVALID_REQUEST),
    (MESSAGES, "#1060", None, _variant(_INVALID_REQUEST, "Vonage rejected the client reference.")),
    (MESSAGES, "#1100", None, _variant(_INVALID_REQUEST, "Vonage does not support this channel.")),
    (MESSAGES, "#1110", None, _variant(_INVALID_REQUEST, "Vonage rejected the channel-specific parameters.")),
    (MESSAGES, "#110", None, _INVALID_PHONE),  # sic: the documented anchor for "invalid recipient"
    (MESSAGES, "#1170", None, _INVALID_PHONE),
    (MESSAGES, "#1120", None, _INVALID_SENDER),
    (MESSAGES, "#1140", None, _variant(_INVALID_REQUEST, "Vonage does not support this message type on this channel.")),
    (MESSAGES, "#1150", None, _INVALID_REQUEST),
    (MESSAGES, "#1160", None, _DESTINATION_NOT_ALLOWED),
    (MESSAGES, "#invalid-json", None, _variant(_INVALID_REQUEST, "Vonage could not parse the request body.")),
    # Verify v2 problem JSON (vonage-api.md 9.3)
    (VERIFY2, "400", None, _INVALID_REQUEST),
    (VERIFY2, "400", "check", _WRONG_CODE),
    (VERIFY2, "401", None, _AUTH_FAILED),
    (VERIFY2, "402", None, _INSUFFICIENT_BALANCE),
    (VERIFY2, "403", None, _FORBIDDEN),
    (VERIFY2, "404", None, _NOT_FOUND),
    (VERIFY2, "409", None, _IN_FLIGHT),
    (VERIFY2, "409", "cancel", _CANCEL_NOT_ALLOWED),
    (VERIFY2, "409", "check", _CODE_NOT_SUPPORTED),
    (VERIFY2, "409", "next_workflow", _NEXT_NOT_ALLOWED),
    (VERIFY2, "410", None, _TOO_MANY_ATTEMPTS),
    (VERIFY2, "412", None, _SILENT_AUTH),
    (VERIFY2, "422", None, _INVALID_REQUEST),
    # Any API, by HTTP status (non-2xx from the SMS and legacy Verify APIs too)
    (HTTP, "400", None, _INVALID_REQUEST),
    (HTTP, "401", None, _AUTH_FAILED),
    (HTTP, "402", None, _INSUFFICIENT_BALANCE),
    (HTTP, "403", None, _FORBIDDEN),
    (HTTP, "429", None, _THROTTLED),
    (HTTP, "5xx", None, _UNAVAILABLE),
)

ERROR_TABLE: Mapping[tuple[str, str, str | None], ErrorRule] = MappingProxyType(
    {(api, code, operation): rule for api, code, operation, rule in _ROWS}
)

# (api, vonage_code, pattern over Vonage's own text, rule): checked before ERROR_TABLE.
_TRIAL = re.compile(r"white.?list|allow.?list|non.?permitted destination|test numbers?", re.IGNORECASE)
TEXT_RULES: tuple[tuple[str, str, re.Pattern[str], ErrorRule], ...] = (
    (SMS, "3", re.compile(r"\b(to|msisdn|number|destination)\b", re.IGNORECASE), _INVALID_PHONE),
    (SMS, "3", re.compile(r"\b(from|sender)\b", re.IGNORECASE), _INVALID_SENDER),
    (VERIFY_LEGACY, "3", re.compile(r"\bnumber\b", re.IGNORECASE), _INVALID_PHONE),
    (MESSAGES, "403", _TRIAL, _DESTINATION_NOT_ALLOWED),
    (MESSAGES, "422", _TRIAL, _DESTINATION_NOT_ALLOWED),
    (VERIFY2, "403", _TRIAL, _DESTINATION_NOT_ALLOWED),
    (VERIFY2, "422", _TRIAL, _DESTINATION_NOT_ALLOWED),
    (VERIFY2, "422", re.compile(r"\bsender\b|`from`|\bfrom\b parameter", re.IGNORECASE), _INVALID_SENDER),
)


def lookup(api: str, vonage_code: str, *, operation: str | None = None, text: str | None = None) -> ErrorRule | None:
    """The rule for one Vonage code of one API, or None when the table has no row for it.

    Text rules win over table rows; a row for the operation wins over the general row.
    """
    if text:
        for rule_api, rule_code, pattern, rule in TEXT_RULES:
            if rule_api == api and rule_code == vonage_code and pattern.search(text):
                return rule
    return ERROR_TABLE.get((api, vonage_code, operation)) or ERROR_TABLE.get((api, vonage_code, None))


def _build(
    api: str,
    vonage_code: str,
    rule: ErrorRule | None,
    *,
    http_status: int,
    text: str | None,
    body: Any,
    details: dict[str, Any] | None = None,
) -> VonageAPIError:
    if rule is None:
        rule = _UNMAPPED
        message = f"Vonage returned an error this service does not recognise ({api} {vonage_code})."
    else:
        message = rule.message
    merged: dict[str, Any] = {}
    if text:
        merged["vonage_message"] = text
    merged.update(details or {})
    return VonageAPIError(
        message,
        api=api,
        vonage_code=vonage_code,
        http_status=http_status,
        code=rule.code,
        status=rule.status,
        retryable=rule.retryable,
        body=body,
        details=merged,
    )


def sms_error(
    status: str, *, error_text: str | None = None, body: Any = None, http_status: int = 200
) -> VonageAPIError:
    """The error for one failed SMS part's ``status`` (``body``: the whole response)."""
    status = str(status).strip()
    text = _clean_text(error_text)
    return _build(SMS, status, lookup(SMS, status, text=text), http_status=http_status, text=text, body=body)


def verify_legacy_error(
    status: str, *, operation: str | None = None, body: Any = None, http_status: int = 200
) -> VonageAPIError:
    """The error for a legacy Verify ``status`` other than "0".

    ``body`` is the raw response: it carries ``request_id`` (status 10: the verification
    already in flight) and ``network`` (status 7) for callers that need them.
    """
    status = str(status).strip()
    text = _clean_text(body.get("error_text") if isinstance(body, Mapping) else None)
    rule = lookup(VERIFY_LEGACY, status, operation=operation, text=text)
    return _build(VERIFY_LEGACY, status, rule, http_status=http_status, text=text, body=body)


def problem_error(api: str, http_status: int, body: Any, *, operation: str | None = None) -> VonageAPIError:
    """The error for a non-2xx answer: problem JSON from Messages / Verify v2, or anything else.

    ``body`` is the parsed JSON (a problem document) or None / text when it was not JSON. For a
    422 the ``invalid_parameters`` list is copied into ``details``. Lookup order: the ``type``
    anchor (Messages 422s), the HTTP status for this API and operation, the generic HTTP rows.
    """
    problem = body if isinstance(body, Mapping) else {}
    text = _problem_text(problem)
    details: dict[str, Any] = {}
    invalid = problem.get("invalid_parameters")
    if isinstance(invalid, list):
        details["invalid_parameters"] = [
            {k: v for k, v in item.items() if k in ("name", "reason")} for item in invalid if isinstance(item, Mapping)
        ]
    status_code = str(http_status)
    anchor = _anchor(problem.get("type"))
    if anchor is not None:
        rule = lookup(api, f"#{anchor}", operation=operation, text=text)
        if rule is not None:
            return _build(api, anchor, rule, http_status=http_status, text=text, body=body, details=details)
    rule = lookup(api, status_code, operation=operation, text=text)
    if rule is None:
        generic = "5xx" if 500 <= http_status <= 599 else status_code
        rule = lookup(HTTP, generic)
    return _build(api, status_code, rule, http_status=http_status, text=text, body=body, details=details)


def unexpected_response_error(api: str, http_status: int, problem: str) -> VonageAPIError:
    """Vonage answered something we cannot interpret (not JSON, a missing field)."""
    return VonageAPIError(
        f"Vonage sent a response this service cannot read: {problem}.",
        api=api,
        vonage_code=str(http_status),
        http_status=http_status,
        code=_UNMAPPED.code,
        status=_UNMAPPED.status,
    )


def _anchor(type_url: Any) -> str | None:
    if not isinstance(type_url, str) or "#" not in type_url:
        return None
    anchor = type_url.rsplit("#", 1)[1].strip()
    return anchor or None


def _problem_text(problem: Mapping[str, Any]) -> str | None:
    # Problem JSON has title + detail; some gateways answer {"Error": "..."} or {"error_text": "..."}.
    parts = [problem.get(key) for key in ("title", "detail", "Error", "error", "error_text", "error-text", "message")]
    return _clean_text(" - ".join(p for p in parts if isinstance(p, str) and p.strip()))


_DIGIT_RUN = re.compile(r"\+?\d{7,}")


def _clean_text(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    # Vonage's text may echo the destination; keep full phone numbers out of details and logs.
    text = _DIGIT_RUN.sub("[number]", " ".join(text.split()))
    return text[:300] or None
