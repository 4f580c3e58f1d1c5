"""Who may call ``deliver``: only the task queue.

In order:

1. ``DELIVER_SECRET`` set and the request carries it in ``X-Deliver-Secret`` (constant-time
   compare): the Cloud Tasks emulator, which sends no OIDC token. Never set it in production.
2. ``DELIVER_SERVICE_ACCOUNT`` set: the request must carry ``Authorization: Bearer <OIDC token>``
   signed by Google for that service account, with audience ``DELIVER_AUDIENCE`` (default
   ``DELIVER_URL``), verified by google-auth's ``id_token.verify_oauth2_token``. Deployed
   private on Cloud Run / Cloud Functions, IAM checks the same token before the request
   arrives; checking it here too keeps a host without IAM (Replit, a VM) just as closed.
3. Neither configured: every request is refused (500 ``misconfigured``): an open ``deliver``
   would let anyone trigger sends.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError, ForbiddenError, ServiceError, UnauthorizedError
from shared.queue.cloudtasks import SECRET_HEADER  # the header the queue sets is the one checked here
from shared.web import bearer_token

if TYPE_CHECKING:
    import flask

    from shared.config import Settings

__all__ = ["SECRET_HEADER", "authorize_task", "task_attempt", "verify_oidc"]

_GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")


def authorize_task(request: flask.Request, settings: Settings, *, verify: Any = None) -> None:
    """Raise 401/403 unless the request is a genuine task (see the module docstring)."""
    presented = request.headers.get(SECRET_HEADER)
    if settings.deliver_secret and presented is not None:
        if hmac.compare_digest(presented.encode(), settings.deliver_secret.encode()):
            return
        raise UnauthorizedError("the task secret is not valid")
    if settings.deliver_service_account:
        token = bearer_token(request)
        if token is None:
            raise UnauthorizedError("deliver takes only Cloud Tasks requests (an OIDC bearer token)")
        audience = settings.deliver_audience or settings.deliver_url
        if not audience:
            raise ConfigError("set DELIVER_URL (or DELIVER_AUDIENCE) so deliver can check its tokens' audience")
        claims = (verify or verify_oidc)(token, audience)
        if claims.get("iss") not in _GOOGLE_ISSUERS:
            raise UnauthorizedError("the token was not issued by Google")
        if claims.get("email") != settings.deliver_service_account or not claims.get("email_verified"):
            raise ForbiddenError("the token belongs to another account than the queue's service account")
        return
    if settings.deliver_secret:
        raise UnauthorizedError(f"send the task secret in {SECRET_HEADER}")
    raise ConfigError("deliver refuses every request until DELIVER_SERVICE_ACCOUNT (or, for the emulator, DELIVER_SECRET) is set")


def verify_oidc(token: str, audience: str, *, transport: Any = None) -> dict[str, Any]:
    """The verified claims of a Google-signed ID token for ``audience``; 401 when it does not verify.

    ``transport`` fetches Google's public certificates (google-auth's ``Request``; tests pass
    their own). Certificates that cannot be fetched are a 503: the queue tries again.
    """
    from google.auth import exceptions as auth_exceptions
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    try:
        return dict(id_token.verify_oauth2_token(token, transport or google_requests.Request(), audience=audience))
    except auth_exceptions.TransportError as exc:
        raise ServiceError("cannot fetch Google's token certificates; retry", code="auth_unavailable", status=503,
                           retry_after=5.0) from exc
    except (ValueError, auth_exceptions.GoogleAuthError) as exc:  # every bad token
        raise UnauthorizedError("the OIDC token does not verify") from exc


def task_attempt(request: flask.Request) -> int:
    """This attempt's number (1-based), from Cloud Tasks' retry count header."""
    raw = request.headers.get("X-CloudTasks-TaskRetryCount", "0")
    try:
        return max(0, int(raw)) + 1
    except ValueError:
        return 1
