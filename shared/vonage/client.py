"""VonageClient: the one place that talks HTTP to Vonage.

One ``httpx.Client`` per ``VonageClient`` (keep-alive, a 32-connection pool, explicit timeouts),
built on first use; the application JWT is signed once and reused (``ApplicationJWT``). Build one
``VonageClient`` per process and share it (``shared.deps``): Vonage allows 30 requests/s per key
and asks for connection reuse (vonage-api.md 10.1). Requests go straight to that client's
connection pool (httpcore), not through ``httpx.Client.request``: same wire bytes, TLS and
timeouts at well under half the CPU per message (``_send``; docs/performance.md).

Error handling:

- This is the only code that catches ``httpx`` errors; each becomes a ``shared.errors`` error
  chained with ``raise ... from exc``.
- Documented Vonage errors become ``VonageAPIError`` through the table in
  ``shared.vonage.errors``. Bodies put on errors are scrubbed of our credentials.
- Retries (bounded exponential backoff with full jitter, at most ``max_retries``) only for
  what certainly did not happen: Vonage throttling (SMS status 1 on every part, legacy Verify
  status 1, HTTP 429 honouring ``Retry-After`` capped at ``backoff_max``) and failures before
  the request left this machine (connect error, connect timeout, no free pooled connection).
  After the last retry: ``VonageThrottledError`` (with ``retry_after``),
  ``VonageUnavailableError`` or ``VonageTimeoutError``. Nothing else is retried.

Why read timeouts and 5xx answers are not retried: a timeout, a dropped connection or a 5xx
after the request was written may mean Vonage got it and acted (a gateway can answer 502/504
while the platform goes on sending). Vonage takes no idempotency key, so retrying a send could
deliver (and bill) the SMS twice, a Verify start could bill a second verification, a Verify
check could burn one of the three attempts, a cancel could report "not found" for a cancel that
worked, a next_workflow could skip a channel. None of the calls here are safe to replay, so all
of them raise ``VonageTimeoutError`` / ``VonageUnavailableError`` at once, with
``details["outcome"] == "unknown"`` and a message saying so (callers hold their idempotency key
on that marker). ``_call(replay_safe=True)`` exists for read-only calls, should one be added.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote, quote_plus

import httpx

if TYPE_CHECKING:
    import httpcore  # imported on the first request, as httpx itself does: a cold start that sends nothing skips it

from shared.config import Settings
from shared.errors import (
    InvalidPhoneError,
    ValidationError,
    VonageError,
    VonageThrottledError,
    VonageTimeoutError,
    VonageUnavailableError,
)
from shared.vonage import errors as vonage_errors
from shared.vonage.auth import ApplicationJWT, basic_auth_header

__all__ = [
    "DEFAULT_TIMEOUT",
    "OUTCOME_UNKNOWN",
    "POOL_LIMITS",
    "MessageSubmission",
    "SmsPart",
    "SmsSubmission",
    "VonageClient",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
POOL_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=30.0)
USER_AGENT = "vonage-functions/1.0"

# When Vonage throttles without a Retry-After, tell our caller to wait about this long:
# the SMS API limit is per second (vonage-api.md 10.1).
_DEFAULT_RETRY_AFTER = 1.0
# request_id goes into a URL path: only the characters Vonage ids use (UUIDs, 32-hex).
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_PHONE_DIGITS = re.compile(r"[0-9]{7,15}")
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")
_LEGACY_COMMANDS = ("cancel", "trigger_next_event")
# details["outcome"] of an error after which Vonage may have acted: callers must not resend.
OUTCOME_UNKNOWN = "unknown"
_PRICING_KINDS = ("sms", "sms-transit", "voice")
_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"
# Parsed routes kept per client (see _route); URLs with ids in them are few per process.
_MAX_ROUTES = 64

T = TypeVar("T")


# ---- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsPart:
    """One entry of the SMS API ``messages`` array: one part of a possibly long SMS."""

    message_id: str | None
    status: str
    price: str | None
    network: str | None
    error_text: str | None
    to: str | None


@dataclass(frozen=True)
class SmsSubmission:
    """What the SMS API said about one send. A long text has one part per segment."""

    parts: tuple[SmsPart, ...]
    remaining_balance: str | None

    @property
    def message_ids(self) -> tuple[str, ...]:
        """Vonage message ids of the parts that got one (the accepted parts), in order."""
        return tuple(part.message_id for part in self.parts if part.message_id)

    @property
    def accepted(self) -> bool:
        """True when every part was accepted for delivery (status "0")."""
        return bool(self.parts) and all(part.status == "0" for part in self.parts)

    @property
    def failed_parts(self) -> tuple[SmsPart, ...]:
        """The parts Vonage refused (status other than "0")."""
        return tuple(part for part in self.parts if part.status != "0")


@dataclass(frozen=True)
class MessageSubmission:
    """A Messages API send accepted with 202."""

    message_uuid: str
    workflow_id: str | None


@dataclass(frozen=True)
class _Retry:
    """A response handler's verdict: try again, or raise ``exhausted`` when out of retries."""

    reason: str
    retry_after: float | None
    exhausted: Callable[[int], VonageError]


# ---- answers ----------------------------------------------------------------------------------


class _HeaderLookup(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


class _Response(Protocol):
    """What the response handlers read of an answer: ``httpx.Response`` has it, and so has ``_Answer``."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> _HeaderLookup: ...

    @property
    def content(self) -> bytes: ...

    @property
    def is_success(self) -> bool: ...

    def json(self) -> Any: ...


class _RawHeaders:
    """Case-insensitive ``get`` over httpcore's raw header pairs; values of a repeated name joined
    with ", " as ``httpx.Headers`` does. Nothing is decoded until asked (most answers never are)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def get(self, key: str, default: Any = None) -> Any:
        name = key.lower().encode("ascii")
        values = [value.decode("latin-1") for field, value in self._raw if field.lower() == name]
        return ", ".join(values) if values else default


class _Answer:
    """An answer read straight off httpcore's pool (see ``VonageClient._send``)."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: _RawHeaders, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code <= 299

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass(frozen=True)
class _Route:
    """How one URL is sent without ``httpx.Client``: the httpcore pool of the transport httpx
    itself would use for it, the parsed URL and the headers every request to it starts with."""

    pool: Any  # httpcore.ConnectionPool, or httpcore.HTTPProxy when the environment names a proxy
    url: httpcore.URL
    headers: tuple[tuple[bytes, bytes], ...]
    request: type[httpcore.Request]


# ---- the client -------------------------------------------------------------------------------


class VonageClient:
    """Calls the Vonage SMS, Messages, Verify v2 and legacy Verify APIs.

    Thread-safe; share one per process. ``transport`` replaces the network (tests pass an
    ``httpx.MockTransport``); ``sleep`` is called between retries (tests pass a no-op);
    ``jwt`` replaces the ``ApplicationJWT`` built from ``settings``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        jwt: ApplicationJWT | None = None,
    ) -> None:
        self.settings = settings
        if timeout is DEFAULT_TIMEOUT and settings.vonage_timeout != DEFAULT_TIMEOUT.read:
            # VONAGE_TIMEOUT_SECONDS was set: it bounds each read; connecting stays quick.
            connect = DEFAULT_TIMEOUT.connect or 3.0
            timeout = httpx.Timeout(settings.vonage_timeout, connect=min(connect, settings.vonage_timeout))
        self.timeout = timeout
        self.max_retries = settings.vonage_max_retries if max_retries is None else max_retries
        if self.max_retries < 0:
            raise ValueError("max_retries must be at least 0")
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._transport = transport
        self._sleep = sleep
        self._jwt = jwt
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._routes: dict[str, _Route | None] = {}  # of self._http; replaced with it
        self._extensions = {"timeout": self.timeout.as_dict()}  # what httpx.Client puts on each request

    def __repr__(self) -> str:
        return (
            f"VonageClient(api_base_url={self.settings.api_base_url!r}, rest_base_url={self.settings.rest_base_url!r})"
        )

    def __enter__(self) -> VonageClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections. A later call opens a new pool."""
        with self._lock:
            http, self._http = self._http, None
            self._routes = {}
        if http is not None:
            http.close()

    # ---- SMS API -------------------------------------------------------------------

    def send_sms(
        self,
        *,
        to: str,
        sender: str,
        text: str,
        unicode: bool = False,
        client_ref: str | None = None,
        ttl_ms: int | None = None,
        callback: str | None = None,
        status_report: bool = True,
    ) -> SmsSubmission:
        """Send one SMS with the SMS API (``POST /sms/json``, Basic auth).

        ``to`` is E.164 (a leading ``+`` is dropped, as Vonage wants). Set ``unicode`` only when
        the text needs UCS-2: it halves the characters per part. Returns the submission when at
        least one part was accepted (check ``accepted`` / ``failed_parts``); raises
        ``VonageAPIError`` when no part was, ``VonageThrottledError`` when Vonage kept
        throttling, ``ValidationError`` for arguments Vonage would refuse, ``ConfigError``
        without VONAGE_API_KEY / VONAGE_API_SECRET.
        """
        self.settings.require_key_secret()
        destination = to.strip().removeprefix("+")
        if not _PHONE_DIGITS.fullmatch(destination):
            raise InvalidPhoneError("the destination must be 7 to 15 digits in E.164 format", field="to")
        sender = sender.strip()
        if sender.startswith("+") and sender[1:].isdigit():
            sender = sender[1:]
        if not sender:
            raise ValidationError("a sender (from) is required", field="from")
        if not text:
            raise ValidationError("the text must not be empty", field="text")
        form = {"from": sender, "to": destination, "text": text}
        if unicode:
            form["type"] = "unicode"  # never by default: UCS-2 costs twice the parts
        if client_ref is not None:
            if len(client_ref) > 100:
                raise ValidationError("client_ref must be at most 100 characters", field="client_ref")
            form["client-ref"] = client_ref
        if ttl_ms is not None:
            if not 20_000 <= ttl_ms <= 604_800_000:
                raise ValidationError("ttl must be between 20000 and 604800000 milliseconds", field="ttl")
            form["ttl"] = str(int(ttl_ms))
        if callback is not None:
            if len(callback) > 100:
                raise ValidationError("the callback URL must be at most 100 characters", field="callback")
            form["callback"] = callback
        form["status-report-req"] = "true" if status_report else "false"

        def handle(response: _Response) -> SmsSubmission | _Retry:
            retry = self._retry_for_http(vonage_errors.SMS, response)
            if retry is not None:
                return retry
            # Scrubbed up front: error texts end up on errors, in SmsPart and maybe in logs.
            body = self._read_json(vonage_errors.SMS, response, operation="send")
            if self._may_hold_secrets(response.content):
                body = self._scrub(body)
            entries = body.get("messages")
            if not isinstance(entries, list) or not entries or not all(isinstance(e, Mapping) for e in entries):
                raise vonage_errors.unexpected_response_error(
                    vonage_errors.SMS, response.status_code, "no messages array"
                )
            parts = tuple(_sms_part(entry) for entry in entries)
            if all(part.status == "1" for part in parts):
                return _Retry("throttled", None, lambda attempts: _throttled(vonage_errors.SMS, attempts, None))
            if any(part.status == "0" for part in parts):
                # Some parts may have failed: the caller decides (the accepted ones are billed).
                balances = [entry.get("remaining-balance") for entry in entries if entry.get("remaining-balance")]
                return SmsSubmission(parts=parts, remaining_balance=str(balances[-1]) if balances else None)
            first = next(part for part in parts if part.status != "0")
            raise vonage_errors.sms_error(first.status, error_text=first.error_text, body=body)

        return self._call(
            vonage_errors.SMS,
            "send",
            "POST",
            f"{self.settings.rest_base_url}/sms/json",
            data=form,
            headers=self._basic_headers,
            handle=handle,
        )

    # ---- Messages API ------------------------------------------------------------------

    def send_message(self, payload: Mapping[str, Any]) -> MessageSubmission:
        """Send one message with the Messages API (``POST /v1/messages``, JSON).

        ``payload`` is the Messages API body as is (``to`` without ``+``). JWT auth when an
        application is configured, else Basic. Raises ``VonageAPIError`` for a refused message.
        """

        def handle(response: _Response) -> MessageSubmission | _Retry:
            retry = self._retry_for_http(vonage_errors.MESSAGES, response)
            if retry is not None:
                return retry
            body = self._read_json(vonage_errors.MESSAGES, response, operation="send")
            uuid_ = body.get("message_uuid")
            if not isinstance(uuid_, str) or not uuid_:
                raise vonage_errors.unexpected_response_error(
                    vonage_errors.MESSAGES, response.status_code, "no message_uuid"
                )
            workflow = body.get("workflow_id")
            return MessageSubmission(message_uuid=uuid_, workflow_id=workflow if isinstance(workflow, str) else None)

        return self._call(
            vonage_errors.MESSAGES,
            "send",
            "POST",
            f"{self.settings.api_base_url}/v1/messages",
            json_body=dict(payload),
            headers=self._application_headers,
            handle=handle,
        )

    # ---- Verify v2 -----------------------------------------------------------------------

    def verify2_start(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Start a verification (``POST /v2/verify``); returns ``{request_id, check_url?}``.

        A verification already in flight to the number raises ``VonageAPIError`` with code
        ``verification_in_flight``; its ``body`` holds the existing ``request_id``.
        """
        return self._verify2("start", "POST", "", json_body=dict(body))

    def verify2_check(self, request_id: str, code: str) -> dict[str, Any]:
        """Check a code (``POST /v2/verify/{request_id}``); returns ``{request_id, status}``.

        A wrong code raises ``VonageAPIError`` code ``wrong_code``; the third wrong one
        ``too_many_attempts``. The code is never logged.
        """
        return self._verify2("check", "POST", f"/{_path_id(request_id)}", json_body={"code": code})

    def verify2_cancel(self, request_id: str) -> None:
        """Cancel (``DELETE /v2/verify/{request_id}``); Vonage refuses in the first 30 s and after the 2nd event."""
        self._verify2("cancel", "DELETE", f"/{_path_id(request_id)}")

    def verify2_next_workflow(self, request_id: str) -> None:
        """Move to the next channel now (``POST /v2/verify/{request_id}/next_workflow``)."""
        self._verify2("next_workflow", "POST", f"/{_path_id(request_id)}/next_workflow")

    def _verify2(self, operation: str, method: str, path: str, *, json_body: Any = None) -> dict[str, Any]:
        api = vonage_errors.VERIFY2

        def handle(response: _Response) -> dict[str, Any] | _Retry:
            retry = self._retry_for_http(api, response)
            if retry is not None:
                return retry
            if response.is_success and not response.content:
                return {}  # cancel answers 204, next_workflow may answer 200 with no body
            body = self._read_json(api, response, operation=operation)
            if operation == "start" and not isinstance(body.get("request_id"), str):
                raise vonage_errors.unexpected_response_error(api, response.status_code, "no request_id")
            return body

        return self._call(
            api,
            operation,
            method,
            f"{self.settings.api_base_url}/v2/verify{path}",
            json_body=json_body,
            headers=self._application_headers,
            handle=handle,
        )

    # ---- legacy Verify ---------------------------------------------------------------------

    def verify_legacy_start(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Start a legacy verification (``POST /verify/json``, form, credentials in the body).

        Returns the body (``request_id``, ``status`` "0"). Other statuses raise
        ``VonageAPIError`` with the raw body on ``.body`` (status 10 carries the in-flight
        ``request_id``, status 7 the blocked ``network``).
        """
        return self._verify_legacy("start", "/verify/json", dict(params))

    def verify_legacy_check(self, request_id: str, code: str) -> dict[str, Any]:
        """Check a legacy verification code (``POST /verify/check/json``)."""
        return self._verify_legacy("check", "/verify/check/json", {"request_id": request_id, "code": code})

    def verify_legacy_control(self, request_id: str, cmd: str) -> dict[str, Any]:
        """Cancel or advance a legacy verification (``POST /verify/control/json``, cmd=cancel|trigger_next_event)."""
        if cmd not in _LEGACY_COMMANDS:
            raise ValueError(f"cmd must be one of {', '.join(_LEGACY_COMMANDS)}")
        return self._verify_legacy(cmd, "/verify/control/json", {"request_id": request_id, "cmd": cmd})

    def _verify_legacy(self, operation: str, path: str, form: dict[str, str]) -> dict[str, Any]:
        api = vonage_errors.VERIFY_LEGACY
        self.settings.require_key_secret()
        # The legacy Verify API takes the credentials as form fields (vonage-api.md 8.1).
        form = {**form, "api_key": str(self.settings.api_key), "api_secret": str(self.settings.api_secret)}

        def handle(response: _Response) -> dict[str, Any] | _Retry:
            retry = self._retry_for_http(api, response)
            if retry is not None:
                return retry
            body = self._read_json(api, response, operation=operation)
            status = str(body.get("status", "")).strip()
            if status == "0":
                return body
            if status == "1":
                return _Retry("throttled", None, lambda attempts: _throttled(api, attempts, None))
            if not status:
                raise vonage_errors.unexpected_response_error(api, response.status_code, "no status")
            raise vonage_errors.verify_legacy_error(status, operation=operation, body=self._scrub(body))

        return self._call(
            api,
            operation,
            "POST",
            f"{self.settings.api_base_url}{path}",
            data=form,
            headers=dict,
            handle=handle,
        )

    # ---- Account API (balance and prices) ---------------------------------------------------

    def get_balance(self) -> dict[str, Any]:
        """The account balance (``GET /account/get-balance``): ``{"value": 10.28, "autoReload": false}``.

        Read-only, so it is retried like a connect failure. Raises VonageError subclasses.
        """
        return self._account("balance", "/account/get-balance")

    def get_outbound_pricing(self, kind: str, country: str) -> dict[str, Any]:
        """What sending to ``country`` costs (``GET /account/get-pricing/outbound/{kind}?country=XX``).

        ``kind`` is ``sms``, ``sms-transit`` or ``voice``; the answer carries ``defaultPrice``,
        ``currency`` and a price per network.
        """
        if kind not in _PRICING_KINDS:
            raise ValueError(f"kind must be one of {', '.join(_PRICING_KINDS)}")
        from urllib.parse import quote

        return self._account("pricing", f"/account/get-pricing/outbound/{kind}?country={quote(country.upper())}")

    def _account(self, operation: str, path: str) -> dict[str, Any]:
        api = vonage_errors.HTTP
        self.settings.require_key_secret()

        def handle(response: _Response) -> dict[str, Any] | _Retry:
            retry = self._retry_for_http(api, response)
            if retry is not None:
                return retry
            return self._read_json(api, response, operation=operation)

        # Basic auth keeps the secret out of the URL (and so out of every proxy's access log).
        return self._call(
            api, operation, "GET", f"{self.settings.rest_base_url}{path}",
            headers=self._basic_headers, handle=handle, replay_safe=True,
        )

    # ---- plumbing --------------------------------------------------------------------------

    def _http_client(self) -> httpx.Client:
        return self._http_and_routes()[0]

    def _http_and_routes(self) -> tuple[httpx.Client, dict[str, _Route | None]]:
        # Taken together under the lock: a route never outlives the client whose pool it uses
        # (a call racing close() finds its client closed and goes through httpx, which refuses).
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    transport=self._transport,
                    timeout=self.timeout,
                    limits=POOL_LIMITS,
                    headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                    follow_redirects=False,
                )
                self._routes = {}
            return self._http, self._routes

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, content_type: str | None
    ) -> _Response:
        """One HTTP exchange; raises ``httpx`` errors only.

        Through httpx's own connection pool but not through ``httpx.Client``: the client's request
        and response models, URL parsing, cookie jar and hooks cost more CPU than the rest of a
        send (docs/performance.md). What the client would do is kept: the same pool (TLS context
        and CA bundle, limits, keep-alive, any proxy from the environment), its default headers,
        the timeouts, httpcore errors mapped to httpx's as ``httpx.HTTPTransport`` maps them,
        ``gzip``/``deflate`` answers decoded. Cookies are not kept: no Vonage API uses them.
        An injected ``transport`` (tests) has no httpcore pool: it goes through ``httpx.Client``.
        """
        http, routes = self._http_and_routes()
        route = routes.get(url)
        if route is None and url not in routes:
            route = _route(http, url)
            if len(routes) >= _MAX_ROUTES:
                routes.clear()
            routes[url] = route
        if route is None or http.is_closed:
            if content_type is not None:
                headers = {**headers, "Content-Type": content_type}
            return http.request(method, url, content=body, headers=headers)
        raw = [*route.headers, *((key.encode("ascii"), value.encode("ascii")) for key, value in headers.items())]
        if body is not None:
            assert content_type is not None
            raw.append((b"Content-Length", str(len(body)).encode("ascii")))
            raw.append((b"Content-Type", content_type.encode("ascii")))
        elif method in ("POST", "PUT", "PATCH"):
            raw.append((b"Content-Length", b"0"))  # as httpx sends an empty POST
        request = route.request(method, route.url, headers=raw, content=body, extensions=self._extensions)
        try:
            response = route.pool.handle_request(request)
            try:
                content = response.read()
            finally:
                response.close()
        except Exception as exc:
            mapped = _httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        answer_headers = _RawHeaders(response.headers)
        encoding = answer_headers.get("Content-Encoding")
        if encoding:
            content = _decode(content, encoding)
        return _Answer(response.status, answer_headers, content)

    def _application_jwt(self) -> ApplicationJWT:
        with self._lock:
            if self._jwt is None:
                self.settings.require_application()
                assert self.settings.application_id and self.settings.private_key  # for mypy
                self._jwt = ApplicationJWT(self.settings.application_id, self.settings.private_key)
            return self._jwt

    def _basic_headers(self) -> dict[str, str]:
        self.settings.require_key_secret()
        return {"Authorization": basic_auth_header(str(self.settings.api_key), str(self.settings.api_secret))}

    def _application_headers(self) -> dict[str, str]:
        # Messages and Verify v2 take a JWT or Basic, "not both" (vonage-api.md 5.2, 9.1).
        if self._jwt is not None or self.settings.has_application:
            return {"Authorization": self._application_jwt().authorization()}
        return self._basic_headers()

    def _call(
        self,
        api: str,
        operation: str,
        method: str,
        url: str,
        *,
        handle: Callable[[_Response], T | _Retry],
        headers: Callable[[], dict[str, str]],
        data: Mapping[str, str] | None = None,
        json_body: Any = None,
        replay_safe: bool = False,
    ) -> T:
        """Send with retries; ``handle`` turns a response into a result, a _Retry, or raises."""
        body, content_type = _encode_body(data, json_body)
        attempt = 0
        while True:
            try:
                response = self._send(method, url, headers(), body, content_type)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never left this machine: retrying cannot duplicate anything.
                if attempt < self.max_retries:
                    self._pause(api, operation, attempt, _reason(exc), None)
                    attempt += 1
                    continue
                self._log_exhausted(api, operation, attempt + 1, _reason(exc))
                if isinstance(exc, httpx.TimeoutException):
                    raise VonageTimeoutError(
                        f"Could not connect to Vonage in time after {attempt + 1} attempts. Try again later.",
                        details={"api": api, "attempts": attempt + 1},
                    ) from exc
                raise VonageUnavailableError(
                    f"Could not reach Vonage after {attempt + 1} attempts. Try again later.",
                    details={"api": api, "attempts": attempt + 1},
                ) from exc
            except httpx.TimeoutException as exc:
                # Read/write timeout: the request may have reached Vonage (see module docstring).
                if replay_safe and attempt < self.max_retries:
                    self._pause(api, operation, attempt, _reason(exc), None)
                    attempt += 1
                    continue
                raise VonageTimeoutError(
                    "Vonage did not answer in time. The request may still have been carried out: "
                    "check its status before trying again.",
                    details={"api": api, "attempts": attempt + 1, "outcome": OUTCOME_UNKNOWN},
                ) from exc
            except httpx.HTTPError as exc:
                # Connection dropped mid-request, protocol error: the outcome is unknown too.
                if replay_safe and attempt < self.max_retries:
                    self._pause(api, operation, attempt, _reason(exc), None)
                    attempt += 1
                    continue
                raise VonageUnavailableError(
                    "The connection to Vonage failed during the request. It may still have been "
                    "carried out: check its status before trying again.",
                    details={"api": api, "attempts": attempt + 1, "outcome": OUTCOME_UNKNOWN},
                ) from exc

            if 500 <= response.status_code <= 599 and not replay_safe:
                # Vonage (or a gateway in front of it) got the request and failed: it may have
                # acted all the same, so this is an unknown outcome, never retried.
                status = response.status_code
                self._log_unknown(api, operation, attempt + 1, f"http_{status}")
                raise VonageUnavailableError(
                    f"Vonage answered HTTP {status}. The request may still have been carried out: "
                    "check its status before trying again.",
                    details={"api": api, "http_status": status, "attempts": attempt + 1, "outcome": OUTCOME_UNKNOWN},
                    retry_after=_retry_after(response),
                )

            outcome = handle(response)
            if isinstance(outcome, _Retry):
                if attempt < self.max_retries:
                    self._pause(api, operation, attempt, outcome.reason, outcome.retry_after)
                    attempt += 1
                    continue
                self._log_exhausted(api, operation, attempt + 1, outcome.reason)
                raise outcome.exhausted(attempt + 1)
            return outcome

    def _pause(self, api: str, operation: str, attempt: int, reason: str, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = min(retry_after, self.backoff_max)
        else:
            # Full jitter (AWS architecture blog): spreads retries of many instances apart.
            delay = random.uniform(0.0, min(self.backoff_max, self.backoff_base * (2**attempt)))
        # Fields only: never the URL's credentials, tokens, numbers or text (none are here).
        log.warning(
            "vonage request retrying",
            extra={
                "vonage_api": api,
                "vonage_operation": operation,
                "attempt": attempt + 1,
                "max_retries": self.max_retries,
                "retry_reason": reason,
                "delay_seconds": round(delay, 3),
            },
        )
        self._sleep(delay)

    def _log_exhausted(self, api: str, operation: str, attempts: int, reason: str) -> None:
        log.warning(
            "vonage request failed after retries",
            extra={"vonage_api": api, "vonage_operation": operation, "attempts": attempts, "retry_reason": reason},
        )

    def _log_unknown(self, api: str, operation: str, attempts: int, reason: str) -> None:
        log.warning(
            "vonage request outcome unknown, not retried",
            extra={"vonage_api": api, "vonage_operation": operation, "attempts": attempts, "retry_reason": reason},
        )

    def _retry_for_http(self, api: str, response: _Response) -> _Retry | None:
        """429 is retried, and 5xx for replay-safe calls (``_call`` already refused the others);
        everything else goes to the response handler."""
        status = response.status_code
        if status == 429:
            retry_after = _retry_after(response)
            return _Retry("http_429", retry_after, lambda attempts: _throttled(api, attempts, retry_after))
        if 500 <= status <= 599:
            retry_after = _retry_after(response)

            def unavailable(attempts: int) -> VonageError:
                return VonageUnavailableError(
                    f"Vonage answered HTTP {status} {attempts} times. Try again later.",
                    details={"api": api, "http_status": status, "attempts": attempts},
                    retry_after=retry_after,
                )

            return _Retry(f"http_{status}", retry_after, unavailable)
        return None

    def _read_json(self, api: str, response: _Response, *, operation: str) -> dict[str, Any]:
        """The JSON object of a 2xx answer; a non-2xx answer raises its mapped error."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not response.is_success:
            raise vonage_errors.problem_error(api, response.status_code, self._scrub(body), operation=operation)
        if not isinstance(body, dict):
            raise vonage_errors.unexpected_response_error(api, response.status_code, "the body is not a JSON object")
        return body

    def _may_hold_secrets(self, content: bytes) -> bool:
        """False when no string parsed from this JSON can contain our key or secret: without
        escapes (and in UTF-8) each parsed string is a slice of the raw bytes, so a secret in one
        is in them. Spares the copy ``_scrub`` makes of every accepted SMS answer."""
        if b"\\" in content or b"\x00" in content:
            return True
        return any(
            secret.encode() in content
            for secret in (self.settings.api_secret, self.settings.api_key)
            if secret and len(secret) >= 4
        )

    def _scrub(self, value: Any) -> Any:
        """A copy of ``value`` with our API key and secret replaced, for error bodies."""
        secrets = [s for s in (self.settings.api_secret, self.settings.api_key) if s and len(s) >= 4]
        if not secrets:
            return value
        return _replace_secrets(value, secrets)


# ---- helpers ---------------------------------------------------------------------------------


def _encode_body(data: Mapping[str, Any] | None, json_body: Any) -> tuple[bytes | None, str | None]:
    """The body and its Content-Type, byte for byte what ``httpx`` encodes for ``data=`` / ``json=``."""
    if data:
        return "&".join(f"{_quote(key)}={_quote(_form_value(value))}" for key, value in data.items()).encode(), _FORM
    if json_body is not None:
        text = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8"), _JSON
    return None, None


def _quote(text: str) -> str:
    # urlencode's quote_plus, which leaves exactly these characters as they are: most fields
    # (numbers, "true", ids) need no call at all.
    return text if _URL_SAFE.fullmatch(text) else quote_plus(text)


def _form_value(value: Any) -> str:
    # httpx's primitive_value_to_str: JSON-style booleans, None as empty.
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def _route(http: httpx.Client, url: str) -> _Route | None:
    """The fast path for ``url`` when httpx would send it through its own ``HTTPTransport``; None
    for any other transport (an injected one in tests) or should httpx's internals ever change:
    then ``httpx.Client`` sends it, as before."""
    parsed = httpx.URL(url)
    transport_for_url = getattr(http, "_transport_for_url", None)
    transport = transport_for_url(parsed) if transport_for_url is not None else None
    pool = getattr(transport, "_pool", None) if type(transport) is httpx.HTTPTransport else None
    if pool is None or not callable(getattr(pool, "handle_request", None)):
        return None
    import httpcore

    target = httpcore.URL(scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path)
    # httpx's defaults, but only the codings _decode undoes (httpx would add br/zstd were their
    # packages ever installed; requirements.txt has neither, so today the bytes are the same).
    defaults = [(name, b"gzip, deflate" if name.lower() == b"accept-encoding" else value) for name, value in http.headers.raw]
    return _Route(pool=pool, url=target, headers=((b"Host", parsed.netloc), *defaults), request=httpcore.Request)


# httpcore's errors become the httpx errors of the same name, as httpx.HTTPTransport maps them.
_HTTPCORE_ERRORS = (
    "TimeoutException", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout",
    "NetworkError", "ConnectError", "ReadError", "WriteError", "ProxyError", "UnsupportedProtocol",
    "ProtocolError", "LocalProtocolError", "RemoteProtocolError",
)
_ERROR_MAP: dict[type, type[httpx.HTTPError]] = {}  # filled on the first error


def _httpx_error(exc: Exception) -> httpx.HTTPError | None:
    """The httpx error for an httpcore one (the most specific class wins), else None."""
    if not _ERROR_MAP:
        import httpcore

        _ERROR_MAP.update({getattr(httpcore, name): getattr(httpx, name) for name in _HTTPCORE_ERRORS})
    for cls in type(exc).__mro__:
        mapped = _ERROR_MAP.get(cls)
        if mapped is not None:
            return mapped(str(exc))
    return None


def _decode(content: bytes, encoding: str) -> bytes:
    """Undo the ``gzip``/``deflate`` httpx's default Accept-Encoding allows; others pass as httpx passes them."""
    for coding in reversed([part.strip().lower() for part in encoding.split(",")]):
        try:
            if coding == "gzip":
                content = zlib.decompress(content, zlib.MAX_WBITS | 16)
            elif coding == "deflate":
                try:
                    content = zlib.decompress(content)
                except zlib.error:
                    content = zlib.decompress(content, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
        except zlib.error as exc:
            raise httpx.DecodingError(f"cannot decode the {coding} answer: {exc}") from exc
    return content


def _sms_part(entry: Mapping[str, Any]) -> SmsPart:
    def text(key: str) -> str | None:
        value = entry.get(key)
        return None if value is None else str(value)

    return SmsPart(
        message_id=text("message-id"),
        status=str(entry.get("status", "")).strip(),
        price=text("message-price"),
        network=text("network"),
        error_text=text("error-text"),
        to=text("to"),
    )


def _throttled(api: str, attempts: int, retry_after: float | None) -> VonageError:
    return VonageThrottledError(
        f"Vonage is rate-limiting this account and still was after {attempts} attempts. Try again shortly.",
        details={"api": api, "attempts": attempts},
        retry_after=_DEFAULT_RETRY_AFTER if retry_after is None else retry_after,
    )


def _retry_after(response: _Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _reason(exc: Exception) -> str:
    # "ConnectTimeout" -> "connect_timeout": a stable field for log queries.
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def _path_id(request_id: str) -> str:
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise ValidationError("request_id is not a valid Vonage request id", field="request_id")
    return quote(request_id, safe="")


def _replace_secrets(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, Mapping):
        return {key: _replace_secrets(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_secrets(item, secrets) for item in value]
    return value
