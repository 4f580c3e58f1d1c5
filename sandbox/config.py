"""SandboxConfig: how the local Vonage sandbox behaves (credentials, webhooks, money, limits, faults).

One frozen dataclass, built in code by tests and the local runner, from ``SANDBOX_*``
environment variables by the CLI (``SandboxConfig.from_env``), and patched at run time
through ``POST /_sandbox/config`` (``SandboxConfig.updated``). The sandbox is dev/test
tooling and is never deployed, so it reads its own variables rather than ``Settings``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.faults import FaultRule, parse_fault_rules
from shared.config import SIGNATURE_METHODS

__all__ = ["DEFAULT_RETRY_DELAYS", "SandboxConfig", "WEBHOOK_FORMATS"]

WEBHOOK_FORMATS = ("GET", "POST", "POST-JSON")
# Vonage retries a webhook answered with 429/5xx from ~5 s, doubling up to 15 min (vonage-api.md §10.2).
DEFAULT_RETRY_DELAYS = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 900.0)
_SECRET_FIELDS = frozenset({"api_secret", "signature_secret", "private_key"})


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the sandbox needs; secrets are hidden from repr() and from /_sandbox/config."""

    # Account credentials the sandbox accepts (like a Vonage account's dashboard settings).
    api_key: str = "sandbox1"
    api_secret: str = field(default="sandbox-secret", repr=False)
    # Signs SMS API webhooks (sig) when sms_signing is on, and always signs Messages/Verify v2 webhooks (JWT).
    signature_secret: str = field(default="sandbox-signature-secret", repr=False)
    signature_method: str = "md5hash"
    sms_signing: bool = False  # SMS API webhooks carry timestamp/nonce/sig (Vonage support must enable this)
    require_signed_requests: bool = False  # SMS API sends without `sig` are refused with status 14
    # Application whose JWTs the Messages and Verify v2 APIs accept: its public key is derived
    # from private_key (PEM), or given directly as public_key (PEM).
    application_id: str | None = None
    private_key: str | None = field(default=None, repr=False)
    public_key: str | None = None

    # Where webhooks go (the application's Status/Inbound URLs and the Verify capability's URL).
    status_webhook_url: str | None = None
    inbound_webhook_url: str | None = None
    verify_callback_url: str | None = None
    webhook_format: str = "POST-JSON"  # SMS API webhooks only; Messages/Verify v2 are always POST JSON
    allow_remote_webhooks: bool = False  # by default webhooks may only go to loopback addresses

    # Money: prices are what the response/receipts report and what the balance is charged.
    balance: Decimal = Decimal("10.00000000")
    sms_price: Decimal = Decimal("0.03330000")  # per SMS part
    ott_price: Decimal = Decimal("0.01000000")  # per WhatsApp/Messenger/Viber/RCS message
    verify_price: Decimal = Decimal("0.10000000")  # per completed verification
    network_code: str = "23410"

    # Limits and account mode.
    rate_limit: int | None = 30  # accepted requests per second, per API; None = unlimited
    trial: bool = False
    allow_list: tuple[str, ...] = ()  # destinations a trial account may reach
    # Numbers with no WhatsApp account: a WhatsApp message to one is rejected (error 1300) and a
    # failover workflow moves on to its next item.
    no_whatsapp: tuple[str, ...] = ()

    # Webhook delivery.
    delivery_delay: float = 0.0  # seconds before the first attempt
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS  # one retry per entry
    webhook_timeout: float = 15.0  # Vonage waits ~15 s for an answer (field-notes.md)
    timeout_hold: float = 30.0  # how long the "timeout" fault holds a response

    # Verify.
    verify_cancel_after: float = 30.0  # a request can only be cancelled this long after it started
    silent_auth_coverage: bool = True  # the numbers' mobile networks support Silent Authentication (else 412)

    # Faults, drawn with a seeded RNG so a run can be reproduced.
    faults: tuple[FaultRule, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        # Accept the natural Python spellings (float prices, lists) and store the canonical types.
        for name in _DECIMALS:
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                object.__setattr__(self, name, _convert(name, value))
        for name in ("allow_list", "no_whatsapp", "retry_delays", "faults"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or (name == "faults" and not all(isinstance(r, FaultRule) for r in value)):
                object.__setattr__(self, name, _convert(name, value))
        problems = []
        if self.signature_method not in SIGNATURE_METHODS:
            problems.append(f"signature_method must be one of {', '.join(SIGNATURE_METHODS)}")
        if self.webhook_format not in WEBHOOK_FORMATS:
            problems.append(f"webhook_format must be one of {', '.join(WEBHOOK_FORMATS)}")
        if self.rate_limit is not None and self.rate_limit < 1:
            problems.append("rate_limit must be at least 1 (or None for unlimited)")
        for name in ("delivery_delay", "webhook_timeout", "timeout_hold", "verify_cancel_after"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        if any(delay < 0 for delay in self.retry_delays):
            problems.append("retry_delays must not be negative")
        if not self.api_key or not self.api_secret or not self.signature_secret:
            problems.append("api_key, api_secret and signature_secret must be set")
        if problems:
            raise ValueError("; ".join(problems))

    # ---- run-time changes -----------------------------------------------

    def updated(self, changes: Mapping[str, Any]) -> SandboxConfig:
        """A copy with ``changes`` applied (JSON-ish values are converted); ValueError on bad input."""
        known = {f.name: f for f in dataclasses.fields(self)}
        converted: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown sandbox setting: {name}")
            converted[name] = _convert(name, value)
        return dataclasses.replace(self, **converted)

    def public_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values, without any secret."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in _SECRET_FIELDS:
                out[f"has_{f.name}"] = bool(getattr(self, f.name))
                continue
            value = getattr(self, f.name)
            if isinstance(value, Decimal):
                value = str(value)
            elif f.name == "faults":
                value = [rule.to_dict() for rule in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    # ---- environment ----------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxConfig:
        """Build from ``SANDBOX_*`` variables; credentials fall back to the ``VONAGE_*`` ones.

        Falling back lets one ``.env`` serve both the functions and the sandbox they talk to.
        """
        env = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"SANDBOX_{f.name.upper()}")
            if raw is None and f.name in _VONAGE_FALLBACK:
                raw = env.get(_VONAGE_FALLBACK[f.name])
            if raw is not None and raw.strip() != "":
                changes[f.name] = raw
        key = changes.get("private_key")
        if isinstance(key, str) and "-----BEGIN" not in key and os.path.isfile(key):
            with open(key, encoding="utf-8") as handle:  # a path to the PEM file, as the SDKs accept
                changes["private_key"] = handle.read()
        return cls().updated(changes)


_VONAGE_FALLBACK = {
    "api_key": "VONAGE_API_KEY",
    "api_secret": "VONAGE_API_SECRET",
    "signature_secret": "VONAGE_SIGNATURE_SECRET",
    "signature_method": "VONAGE_SIGNATURE_METHOD",
    "application_id": "VONAGE_APPLICATION_ID",
    "private_key": "VONAGE_PRIVATE_KEY",
}
_BOOLS = frozenset({"sms_signing", "require_signed_requests", "allow_remote_webhooks", "trial", "silent_auth_coverage"})
_DECIMALS = frozenset({"balance", "sms_price", "ott_price", "verify_price"})
_FLOATS = frozenset({"delivery_delay", "webhook_timeout", "timeout_hold", "verify_cancel_after"})


def _convert(name: str, value: Any) -> Any:
    """Turn a JSON or environment value into the field's type."""
    if name in _BOOLS:
        return _boolean(name, value)
    if name in _DECIMALS:
        try:
            return Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"{name} must be a decimal number") from exc
    if name in _FLOATS:
        return _number(name, value)
    if name in ("rate_limit", "seed"):
        if value is None or (name == "rate_limit" and str(value).lower() in ("", "none", "off")):
            return None
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a whole number") from exc
    if name in ("allow_list", "no_whatsapp"):
        items = value.split(",") if isinstance(value, str) else list(value or ())
        return tuple(str(item).strip().lstrip("+") for item in items if str(item).strip())
    if name == "retry_delays":
        items = value.split(",") if isinstance(value, str) else list(value or ())
        return tuple(_number(name, item) for item in items if str(item).strip())
    if name == "faults":
        return parse_fault_rules(value)
    if name == "webhook_format":
        return str(value).upper()
    if name == "signature_method":
        return str(value).lower()
    if value is None:
        return None
    return str(value)


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false")


def _number(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number") from exc
    if not number >= 0:  # also rejects NaN
        raise ValueError(f"{name} must not be negative")
    return number
