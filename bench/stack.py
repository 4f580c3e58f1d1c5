"""What the functions under test talk to: credentials made for this run, the sandbox, the environment.

Credentials (an RSA application key, key, secret, signature secret, API token) are generated
when a run starts and never written anywhere but the children's environment.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Credentials",
    "STATUS_NUMBER",
    "USER_NUMBER",
    "function_env",
    "new_credentials",
    "recipients",
    "start_sandbox",
]

APPLICATION_ID = "00000000-0000-4000-8000-0000000be7c4"
BRAND_NUMBER = "447700100000"
USER_NUMBER = "447700100123"
STATUS_NUMBER = "447700100124"


@dataclass(frozen=True)
class Credentials:
    """One run's Vonage account (as the sandbox knows it) and our API token."""

    api_key: str
    api_secret: str
    signature_secret: str
    private_key: str
    api_token: str
    application_id: str = APPLICATION_ID
    signature_method: str = "sha256"


def new_credentials() -> Credentials:
    """Fresh credentials with a 2048-bit RSA application key (as the Vonage dashboard makes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return Credentials(
        api_key="bench" + secrets.token_hex(3),
        api_secret=secrets.token_urlsafe(12),
        signature_secret=secrets.token_urlsafe(24),
        private_key=pem,
        api_token="bench-" + secrets.token_urlsafe(18),
    )


def start_sandbox(creds: Credentials, *, tls: bool = False, **overrides: Any) -> Any:
    """A running local Vonage sandbox that accepts ``creds`` and sends no webhooks unless told."""
    from sandbox import Sandbox, SandboxConfig

    config: dict[str, Any] = {
        "api_key": creds.api_key,
        "api_secret": creds.api_secret,
        "signature_secret": creds.signature_secret,
        "signature_method": creds.signature_method,
        "application_id": creds.application_id,
        "private_key": creds.private_key,
        "balance": "1000000",
        "rate_limit": None,
        "verify_cancel_after": 0.0,
        "delivery_delay": 0.0,
    }
    config.update(overrides)
    sandbox = Sandbox(SandboxConfig(**config))
    sandbox.start(tls=tls)
    return sandbox


def function_env(
    creds: Credentials,
    *,
    state_path: Path | None = None,
    sandbox_url: str | None = None,
    application: bool = True,
    **extra: str,
) -> dict[str, str]:
    """The variables every function reads, pointed at ``sandbox_url`` and an SQLite file.

    The fraud limits are raised: a benchmark starts many verifications from 127.0.0.1.
    """
    env = {
        "API_TOKENS": creds.api_token,
        "VONAGE_API_KEY": creds.api_key,
        "VONAGE_API_SECRET": creds.api_secret,
        "VONAGE_SIGNATURE_SECRET": creds.signature_secret,
        "VONAGE_SIGNATURE_METHOD": creds.signature_method,
        "VONAGE_BRAND_NUMBER": BRAND_NUMBER,
        "VERIFY_LIMIT_PER_NUMBER": "1000000/60",
        "VERIFY_LIMIT_PER_IP": "1000000/60",
        "VERIFY_LIMIT_PER_PREFIX": "1000000/60",
        "VERIFY_LIMIT_PER_COUNTRY": "1000000/60",
        # The spend budgets would refuse a benchmark's volumes (bench/pumping.py sets its own).
        "SEND_BUDGET_PER_TOKEN": "off",
        "SEND_BUDGET_GLOBAL": "off",
        "SEND_PARTS_BUDGET_PER_TOKEN": "off",
        "SEND_PARTS_BUDGET_GLOBAL": "off",
        "VERIFY_BUDGET_GLOBAL": "off",
        "VERIFY_BUDGET_PER_COUNTRY": "off",
    }
    if application:
        env["VONAGE_APPLICATION_ID"] = creds.application_id
        env["VONAGE_PRIVATE_KEY"] = creds.private_key
    if sandbox_url:
        env["VONAGE_API_BASE_URL"] = sandbox_url
        env["VONAGE_REST_BASE_URL"] = sandbox_url
    if state_path is not None:
        env["STATE_BACKEND"] = "sqlite"
        env["STATE_SQLITE_PATH"] = str(state_path)
    env.update(extra)
    return env


def recipients(count: int, *, start: int = 100000) -> list[str]:
    """``count`` distinct UK mobile numbers in E.164 (all valid for the number parser)."""
    return [f"+447700{start + i:06d}" for i in range(count)]


def unique_suffix() -> str:
    """A short id that differs between runs (for ids that must never repeat)."""
    return f"{int(time.time() * 1000) % 10**10:010d}{secrets.token_hex(2)}"
