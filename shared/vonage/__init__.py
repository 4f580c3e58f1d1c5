"""The Vonage core: credentials, signatures, the error table and the HTTP client.

    shared.vonage.auth        basic_auth_header, load_private_key, ApplicationJWT, verify_application_jwt
    shared.vonage.signatures  SMS ``sig`` and webhook JWT signing/verification (no httpx, no PyJWT)
    shared.vonage.errors      the table from every documented Vonage error to VonageAPIError
    shared.vonage.client      VonageClient (imports httpx)

Names are re-exported lazily: ``from shared.vonage import verify_webhook_jwt`` does not import
httpx, so a webhook function's cold start does not pay for the HTTP client it never uses.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ApplicationJWT",
    "MessageSubmission",
    "SmsPart",
    "SmsSubmission",
    "VonageClient",
    "basic_auth_header",
    "load_private_key",
    "sign_params",
    "sign_sms_params",
    "sign_webhook_jwt",
    "verify_application_jwt",
    "verify_sms_signature",
    "verify_webhook_jwt",
]

_WHERE = {
    "ApplicationJWT": "auth",
    "basic_auth_header": "auth",
    "load_private_key": "auth",
    "verify_application_jwt": "auth",
    "sign_params": "signatures",
    "sign_sms_params": "signatures",
    "sign_webhook_jwt": "signatures",
    "verify_sms_signature": "signatures",
    "verify_webhook_jwt": "signatures",
    "MessageSubmission": "client",
    "SmsPart": "client",
    "SmsSubmission": "client",
    "VonageClient": "client",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
