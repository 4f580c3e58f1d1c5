"""The Account API: ``GET /account/get-balance`` and ``GET /account/get-pricing/outbound/{type}``.

Answers in Vonage's shapes (rest.nexmo.com; the Python SDK's ``Account`` client reads them):

- balance: ``{"value": 10.28, "autoReload": false}`` (the account currency, EUR here);
- pricing: ``{"countryCode", "countryName", "currency", "defaultPrice", "dialingPrefix",
  "networks": [{"type", "price", "currency", "mcc", "mnc", "networkCode", "networkName"}]}``.

Prices are the sandbox's own: ``sms_price`` per SMS part for ``sms`` and ``sms-transit``,
``verify_price`` for ``voice`` (what a verification costs here). Credentials: Basic auth or
``api_key``/``api_secret`` query fields; a bad one is 401 as at Vonage.
"""

from __future__ import annotations

from werkzeug.wrappers import Request

from sandbox.context import SandboxContext
from sandbox.credentials import CredentialError, key_secret_caller
from sandbox.responses import ApiResult, json_response, problem, unauthorized
from sandbox.state import money

__all__ = ["PRICING_TYPES", "handle_balance", "handle_pricing"]

PRICING_TYPES = ("sms", "sms-transit", "voice")
_COUNTRIES = {"GB": ("United Kingdom", "44"), "US": ("United States", "1"), "FR": ("France", "33")}


def handle_balance(ctx: SandboxContext, request: Request) -> ApiResult:
    """``GET /account/get-balance``: the remaining balance."""
    caller = _caller(ctx, request)
    if isinstance(caller, ApiResult):
        return caller
    return ApiResult(json_response({"value": float(ctx.state.balance), "autoReload": False}), outcome="200", auth=caller)


def handle_pricing(ctx: SandboxContext, request: Request, kind: str) -> ApiResult:
    """``GET /account/get-pricing/outbound/{sms|sms-transit|voice}?country=XX``."""
    caller = _caller(ctx, request)
    if isinstance(caller, ApiResult):
        return caller
    if kind not in PRICING_TYPES:
        return ApiResult(problem(404, "urn:vonage-sandbox:not-found", "Not Found", f"no pricing type {kind!r}"), outcome="404")
    country = (request.args.get("country") or "").upper()
    if len(country) != 2 or not country.isalpha():
        return ApiResult(
            problem(400, "urn:vonage-sandbox:bad-request", "Bad Request", "country must be an ISO 3166-1 alpha-2 code"),
            outcome="400",
            auth=caller,
        )
    price = money(ctx.config.verify_price if kind == "voice" else ctx.config.sms_price)
    name, prefix = _COUNTRIES.get(country, (country, ""))
    network = ctx.config.network_code
    body = {
        "countryCode": country,
        "countryName": name,
        "countryDisplayName": name,
        "currency": "EUR",
        "defaultPrice": price,
        "dialingPrefix": prefix,
        "networks": [
            {"type": "mobile", "price": price, "currency": "EUR", "mcc": network[:3], "mnc": network[3:],
             "networkCode": network, "networkName": "Sandbox Mobile"}
        ],
    }
    return ApiResult(json_response(body), outcome="200", auth=caller)


def _caller(ctx: SandboxContext, request: Request) -> str | ApiResult:
    fields = {k: v for k, v in request.args.items() if k in ("api_key", "api_secret")}
    try:
        return key_secret_caller(ctx.config, fields, request.headers.get("Authorization")).method
    except CredentialError:
        return ApiResult(unauthorized(), outcome="401")
