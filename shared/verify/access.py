"""Who may call the verify functions: bearer token by default, browsers when VERIFY_PUBLIC=true.

- Token mode (default): every call needs ``Authorization: Bearer <one of API_TOKENS>``.
  The caller is a trusted backend, so it may pass the end user's address as ``client_ip``
  for the per-IP limit (otherwise every user would share the backend's address).
- Public mode (``VERIFY_PUBLIC=true``): start and check take calls without a token, from
  browsers on the ``CORS_ORIGINS`` pages (preflight answered, CORS headers on every
  answer, errors included, so the page can read them). A request whose ``Origin`` is not
  listed is refused: that stops other sites from making their visitors' browsers start
  verifications from thousands of addresses. The fraud guard is then the protection.
  A request that does carry a bearer token is still checked and trusted.
- Cancel always needs a token.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.errors import ForbiddenError
from shared.web import apply_cors, authorize_caller, bearer_token, error_response

if TYPE_CHECKING:
    import flask

    from shared.config import Settings
    from shared.tenants import ApiCaller

__all__ = ["admit_caller", "browser_access"]

Handler = Callable[["flask.Request"], "flask.Response"]


def admit_caller(request: flask.Request, settings: Settings, *, public_allowed: bool) -> ApiCaller | None:
    """Let the caller in or raise 401/403; returns the API caller, or None for a public caller."""
    if not (public_allowed and settings.verify_public) or bearer_token(request) is not None:
        return authorize_caller(request, settings, "verify")
    origin = request.headers.get("Origin")
    if origin and origin not in settings.cors_origins and "*" not in settings.cors_origins:
        raise ForbiddenError("this origin is not in CORS_ORIGINS", code="origin_not_allowed")
    return None


def browser_access(handler: Handler) -> Handler:
    """Wrap an ``@endpoint`` handler: in public mode answer CORS preflights and add CORS
    headers to every response (errors too). Apply it outside ``@endpoint``."""

    @functools.wraps(handler)
    def wrapper(request: flask.Request) -> flask.Response:
        from shared.deps import get_settings_or_none

        settings = get_settings_or_none()
        if settings is None or not settings.verify_public:
            return handler(request)
        if request.method == "OPTIONS":
            return _preflight(request, settings)
        return apply_cors(request, handler(request), settings.cors_origins)

    return wrapper


def _preflight(request: flask.Request, settings: Settings) -> flask.Response:
    from flask import Response

    try:
        return apply_cors(request, Response(status=204), settings.cors_origins)
    except ForbiddenError as exc:
        return error_response(exc)
