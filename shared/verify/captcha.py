"""The human check of public verify-starts: a CAPTCHA or attestation token, verified server-side.

With ``VERIFY_CAPTCHA`` set (``turnstile`` or ``hcaptcha``), a public (token-less) start must
carry the widget's token in ``captcha_token``; it is sent to the provider's ``siteverify``
endpoint with ``VERIFY_CAPTCHA_SECRET`` and the caller's address, and the start goes on only
when the provider answers ``{"success": true}``. A script that pumps SMS then needs a solved
challenge per start. Trusted (bearer-token) callers are not asked: they vouch for their users.

Cloudflare Turnstile, the documented example
(https://developers.cloudflare.com/turnstile/get-started/server-side-validation/)::

    POST https://challenges.cloudflare.com/turnstile/v0/siteverify
    Content-Type: application/x-www-form-urlencoded
    secret=<VERIFY_CAPTCHA_SECRET>&response=<captcha_token>&remoteip=<client ip>
    -> {"success": true, "error-codes": [], "hostname": "shop.example", ...}

hCaptcha's ``https://api.hcaptcha.com/siteverify`` takes the same three fields and answers
the same ``success``. ``VERIFY_CAPTCHA_URL`` points the call elsewhere (a stand-in in tests).
The check fails closed: no answer from the provider refuses the start (503).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.errors import ForbiddenError, ServiceError
from shared.log import get_logger

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = ["SITEVERIFY_URLS", "TOKEN_FIELD", "require_human"]

SITEVERIFY_URLS = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "hcaptcha": "https://api.hcaptcha.com/siteverify",
}
TOKEN_FIELD = "captcha_token"
TOKEN_MAX = 4096  # Turnstile tokens are at most 2048 characters
SITEVERIFY_TIMEOUT = 5.0

log = get_logger("shared.verify.captcha")


def require_human(token: str | None, settings: Settings, *, ip: str) -> None:
    """Return when no check is configured or the provider vouches for ``token`` (``captcha_token``).

    Raises ForbiddenError 403 ``captcha_required`` / ``captcha_failed``, or ServiceError 503
    ``captcha_unavailable`` when the provider cannot be asked.
    """
    provider = settings.verify_captcha
    if not provider:
        return
    if not isinstance(token, str) or not token.strip() or len(token) > TOKEN_MAX:
        raise ForbiddenError(
            f"solve the human check first and send its token in '{TOKEN_FIELD}'", code="captcha_required"
        )
    url = settings.verify_captcha_url or SITEVERIFY_URLS[provider]
    answer = _siteverify(url, {"secret": settings.verify_captcha_secret or "", "response": token.strip(), "remoteip": ip})
    if answer.get("success") is not True:
        codes = answer.get("error-codes")
        log.info("human check failed", extra={"provider": provider, "error_codes": codes if isinstance(codes, list) else None})
        raise ForbiddenError("the human check was not passed; solve it again", code="captcha_failed")


def _siteverify(url: str, form: dict[str, str]) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.post(url, data=form, timeout=SITEVERIFY_TIMEOUT)
        answer = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.error("human check provider unreachable", extra={"error": type(exc).__name__})
        raise ServiceError(
            "the human check could not be verified right now; try again", code="captcha_unavailable", status=503,
            retry_after=5.0,
        ) from exc
    return answer if isinstance(answer, dict) else {}
