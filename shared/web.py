"""The HTTP edge every function shares: one request parser, one error shape, one wrapper.

Handlers are plain ``f(request) -> response`` functions (what functions-framework
serves). ``@endpoint`` binds log context, turns every ``ServiceError`` into the JSON
error shape of ``shared.errors`` and every other exception into a logged 500 that
shows no stack trace.
"""

from __future__ import annotations

import functools
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shared.errors import (
    BadRequestError,
    ForbiddenError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    ServiceError,
    UnauthorizedError,
)
from shared.log import bind_context, get_logger, reset_context

if TYPE_CHECKING:  # flask is imported by the framework anyway; keep it off our import path
    import flask

    from shared.config import Settings
    from shared.tenants import ApiCaller

__all__ = [
    "apply_cors",
    "authorize_caller",
    "bearer_token",
    "client_ip",
    "has_trusted_ip_source",
    "endpoint",
    "error_response",
    "json_response",
    "path_id",
    "read_body",
    "read_json",
    "read_params",
    "require_method",
]

Handler = Callable[["flask.Request"], "flask.Response"]
log = get_logger("shared.web")


def endpoint(name: str) -> Callable[[Handler], Handler]:
    """Wrap a handler: log context, JSON errors, no stack traces in responses."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapper(request: flask.Request) -> flask.Response:
            trace = _trace(request)
            token = bind_context(function=name, **({"trace": trace} if trace else {}))
            started = time.perf_counter()
            try:
                response = handler(request)
            except ServiceError as exc:
                response = error_response(exc)
                level = log.error if exc.status >= 500 else log.info
                level(
                    "request refused",
                    extra={
                        "error_code": exc.code,
                        "status": exc.status,
                        "reason": getattr(exc, "reason", None),
                        "detail": exc.message,
                    },
                )
            except Exception:
                log.exception("unhandled error", extra={"method": request.method})
                response = error_response(ServiceError("internal error; the event was not processed"))
            finally:
                reset_context(token)
            response.headers.setdefault("Cache-Control", "no-store")
            log.debug("handled", extra={"status": response.status_code, "ms": round((time.perf_counter() - started) * 1000, 2)})
            return response

        return wrapper

    return decorate


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> flask.Response:
    """A JSON response (compact, UTF-8)."""
    from flask import Response

    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        encoded = body.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a \ud800 escape a caller sent) cannot be UTF-8: escape it instead.
        encoded = json.dumps(data, ensure_ascii=True, separators=(",", ":"), default=str).encode("ascii")
    response = Response(encoded, status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def error_response(exc: ServiceError) -> flask.Response:
    """The one error shape: ``{"error": {"code", "message", "details"?}}`` with the error's status."""
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    if isinstance(exc, MethodNotAllowedError):
        headers["Allow"] = ", ".join(exc.allowed)
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return json_response(exc.to_dict(), status=exc.status, headers=headers)


def require_method(request: flask.Request, *allowed: str) -> str:
    """Raise 405 unless the method is one of ``allowed``; returns the method."""
    if request.method not in allowed:
        raise MethodNotAllowedError(request.method, allowed)
    return request.method


def read_body(request: flask.Request, max_bytes: int) -> bytes:
    """The raw body bytes (what signatures are computed over), limited to ``max_bytes``."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLargeError(f"the body is over the {max_bytes}-byte limit")
    # A streamed (chunked) body declares no length: werkzeug then stops reading one byte past
    # the limit (enough for the check below to see it is over), rather than reading it all.
    from werkzeug.exceptions import RequestEntityTooLarge

    request.max_content_length = max_bytes + 1
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge as exc:
        raise PayloadTooLargeError(f"the body is over the {max_bytes}-byte limit") from exc
    if len(data) > max_bytes:
        raise PayloadTooLargeError(f"the body is over the {max_bytes}-byte limit")
    return data


def read_json(request: flask.Request, max_bytes: int, *, body: bytes | None = None) -> dict[str, Any]:
    """Parse the body as a JSON object, or raise 400 ``invalid_json`` with a reason."""
    data = read_body(request, max_bytes) if body is None else body
    if not data.strip():
        raise BadRequestError("the request body is empty; send a JSON object", code="invalid_json")
    try:
        parsed = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BadRequestError("the body is not valid UTF-8", code="invalid_json") from exc
    except RecursionError as exc:
        raise BadRequestError("the JSON is nested too deeply", code="invalid_json") from exc
    except ValueError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(parsed, dict):
        raise BadRequestError("the body must be a JSON object", code="invalid_json")
    if b"\\u" in data and not _is_valid_unicode(parsed):
        # JSON escapes can spell an unpaired UTF-16 surrogate ("\ud800"), which is no character:
        # it cannot be stored, logged or answered as UTF-8, so it is refused here, once.
        raise BadRequestError("the JSON contains an unpaired surrogate escape (\\uD800-\\uDFFF)", code="invalid_json")
    return parsed


def read_params(request: flask.Request, max_bytes: int, *, body: bytes | None = None) -> dict[str, str]:
    """Webhook parameters from a GET query, a POST form or a POST JSON body, as flat strings.

    Vonage's SMS API sends the same fields in any of the three, depending on an account setting.
    """
    if request.method == "GET":
        return {key: value for key, value in request.args.items()}
    data = read_body(request, max_bytes) if body is None else body
    content_type = (request.mimetype or "").lower()
    if content_type == "application/json" or (not content_type and data.lstrip().startswith(b"{")):
        parsed = read_json(request, max_bytes, body=data)
        return {str(k): _flat(v) for k, v in parsed.items()}
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(data.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise BadRequestError("the form body is not valid UTF-8", code="invalid_form") from exc
    params = dict(pairs)
    # A POST with its fields in the query string (seen with some proxies): merge, body wins.
    for key, value in request.args.items():
        params.setdefault(key, value)
    return params


def bearer_token(request: flask.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authorize_caller(request: flask.Request, settings: Settings, scope: str | None = None) -> ApiCaller:
    """The caller whose API token the request presents; 401 without one, 403 without ``scope``.

    Send and verify are never open by accident: API_TOKENS must be set and presented. Every
    token is compared (constant time), whichever matches.
    """
    settings.require_api_tokens()
    presented = bearer_token(request)
    if presented is None:
        raise UnauthorizedError("send Authorization: Bearer <token> with one of the API_TOKENS")
    found: ApiCaller | None = None
    for caller in settings.callers:
        if hmac.compare_digest(presented.encode(), caller.token.encode()) and found is None:
            found = caller
    if found is None:
        raise UnauthorizedError("the bearer token is not valid")
    if scope is not None and not found.can(scope):
        raise ForbiddenError(f"this token does not have the {scope!r} scope", code="scope_not_allowed")
    return found


def client_ip(request: flask.Request, trusted_hops: int = 0, trusted_proxies: Iterable[str] = ()) -> str:
    """The caller's IP address, from a source the deployment vouches for.

    X-Forwarded-For is written by whoever sends the request, so it counts only as far as the
    deployment says it is written by its own proxies:

    - ``trusted_proxies`` (TRUSTED_PROXIES: addresses or CIDR ranges): walk the chain
      peer -> last X-Forwarded-For entry -> ... leftwards while the address is one of those
      proxies; the first address that is not is the caller.
    - ``trusted_hops`` (TRUSTED_PROXY_HOPS): exactly that many proxies append to the header,
      so the caller is the ``trusted_hops``-th entry from the right. Cloud Run and Cloud
      Functions gen2 sit behind one (Google's front end): 1.
    - neither (the default): the connection's peer address; the header is ignored, since
      with nothing in front of the app anyone can write it.
    """
    peer = request.remote_addr or "unknown"
    forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    networks = _networks(tuple(trusted_proxies))
    if networks:
        chain = [*forwarded, peer]
        for address in reversed(chain):
            if not _in_networks(address, networks):
                return address
        return chain[0]  # every hop is one of ours: the left-most is as far as anyone can tell
    if trusted_hops > 0 and forwarded:
        return forwarded[-min(trusted_hops, len(forwarded))]
    return peer


def has_trusted_ip_source(settings: Settings) -> bool:
    """True when the deployment says which proxies stand in front of it (or that none do)."""
    return settings.trusted_proxy_hops > 0 or bool(settings.trusted_proxies)


@functools.lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[Any, ...]:
    import ipaddress

    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _in_networks(address: str, networks: tuple[Any, ...]) -> bool:
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # not an address (a forged "unknown", "evil"): never one of our proxies
    return any(ip.version == net.version and ip in net for net in networks)


def path_id(request: flask.Request) -> str | None:
    """An id given as the last path segment (``/send/<id>``) or as ``?id=``."""
    if request.args.get("id"):
        return request.args["id"]
    segment = request.path.rstrip("/").rsplit("/", 1)[-1]
    return segment or None


def apply_cors(request: flask.Request, response: flask.Response, origins: Iterable[str]) -> flask.Response:
    """Allow the request's Origin only when it is listed (never ``*`` with credentials)."""
    origin = request.headers.get("Origin")
    allowed = tuple(origins)
    if origin and (origin in allowed or "*" in allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
    elif origin and request.method == "OPTIONS":
        raise ForbiddenError("this origin is not in CORS_ORIGINS", code="origin_not_allowed")
    return response


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _is_valid_unicode(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _trace(request: flask.Request) -> str | None:
    header = request.headers.get("X-Cloud-Trace-Context")
    if not header:
        return None
    from shared.deps import get_settings_or_none

    trace_id = header.split("/", 1)[0]
    settings = get_settings_or_none()
    project = settings.google_cloud_project if settings else None
    return f"projects/{project}/traces/{trace_id}" if project else trace_id
