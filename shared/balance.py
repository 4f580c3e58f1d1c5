"""The account balance and what messages cost: read from Vonage's Account API, alert when low.

- :func:`check_balance` (the ``balance`` function, run hourly by Cloud Scheduler) reads
  ``GET /account/get-balance`` and, below ``BALANCE_ALERT_THRESHOLD``, raises the alert.
- :func:`note_remaining_balance` does the same for the ``remaining-balance`` every SMS API
  answer carries, at no extra call (at most once per ``ALERT_REPEAT_SECONDS`` per instance).
- :func:`alert_low_balance` is the one alert: a log line at severity ``ALERT`` (a Cloud
  Logging alert policy on ``severity=ALERT`` pages someone) whose returned fields are the
  event to publish where an event bus exists.
- :func:`estimate_prices` prices a dry-run send per recipient from
  ``GET /account/get-pricing/outbound/sms?country=XX``, cached per country for
  ``PRICE_CACHE_SECONDS`` in this instance.

Amounts are decimals in the account currency (EUR unless Vonage set it otherwise).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from shared.errors import ServiceError
from shared.log import get_logger

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.vonage.client import VonageClient

__all__ = [
    "ALERT",
    "ALERT_REPEAT_SECONDS",
    "PRICE_CACHE_SECONDS",
    "alert_low_balance",
    "check_balance",
    "estimate_prices",
    "forget_prices",
    "note_remaining_balance",
]

# Cloud Logging's ALERT severity ("a person must take action immediately"), above CRITICAL.
ALERT = 60
logging.addLevelName(ALERT, "ALERT")
ALERT_REPEAT_SECONDS = 3600.0
PRICE_CACHE_SECONDS = 86400.0
CURRENCY = "EUR"

log = get_logger("shared.balance")
_lock = threading.Lock()
_last_alert: list[float] = []
_prices: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}


def alert_low_balance(
    balance: Decimal, *, threshold: Decimal, source: str, clock: Callable[[], float] = time.time
) -> dict[str, Any]:
    """Log the low-balance alert at severity ALERT and emit ``com.vonage.account.balance_low.v1``
    (at most one an hour; a bus that is down never fails the caller). Returns the event's data."""
    from shared.events.emit import emit_balance_low

    data = {"balance": format(balance, "f"), "threshold": format(threshold, "f"), "currency": CURRENCY, "source": source}
    log.log(ALERT, "Vonage balance is below BALANCE_ALERT_THRESHOLD: top up the account", extra=data)
    try:
        emit_balance_low(data, at=clock())
    except ServiceError:  # the store is down: the ALERT line above still pages through Cloud Logging
        log.warning("balance_low event not recorded (store unavailable)")
    return data


def check_balance(settings: Settings, vonage: VonageClient) -> dict[str, Any]:
    """Read the balance; alert when it is below the threshold. Returns what the function answers."""
    answer = vonage.get_balance()
    balance = _decimal(answer.get("value"))
    if balance is None:
        raise ServiceError("Vonage answered the balance request without a value", code="vonage_error", status=502)
    result: dict[str, Any] = {
        "balance": format(balance, "f"),
        "currency": CURRENCY,
        "auto_reload": bool(answer.get("autoReload")),
    }
    threshold = _threshold(settings)
    if threshold is not None:
        result.update(threshold=format(threshold, "f"), below_threshold=balance < threshold)
        if balance < threshold:
            alert_low_balance(balance, threshold=threshold, source="get-balance")
            return result
    log.info("Vonage balance read", extra={"balance": result["balance"], "currency": CURRENCY})
    return result


def note_remaining_balance(remaining: str | None, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
    """Alert from an SMS API answer's ``remaining-balance`` when it is below the threshold."""
    threshold = _threshold(settings)
    balance = _decimal(remaining)
    if threshold is None or balance is None or balance >= threshold:
        return
    now = clock()
    with _lock:
        if _last_alert and now - _last_alert[-1] < ALERT_REPEAT_SECONDS:
            return
        _last_alert[:] = [now]
    alert_low_balance(balance, threshold=threshold, source="sms-answer", clock=clock)


def estimate_prices(
    vonage: VonageClient, countries: Iterable[str], *, kind: str = "sms", clock: Callable[[], float] = time.time
) -> dict[str, Decimal | None]:
    """The price of one message (one SMS part for ``sms``) per country, from the pricing API.

    A country Vonage does not price, or a failed look-up, maps to None (logged): an estimate
    must never stop a dry run.
    """
    prices: dict[str, Decimal | None] = {}
    for country in sorted({c.upper() for c in countries}):
        answer = _pricing(vonage, kind, country, clock)
        prices[country] = _decimal(answer.get("defaultPrice")) if answer is not None else None
    return prices


def forget_prices() -> None:
    """Empty this instance's price cache and alert memory (tests; a price change you must see now)."""
    with _lock:
        _prices.clear()
        _last_alert.clear()


def _pricing(vonage: VonageClient, kind: str, country: str, clock: Callable[[], float]) -> dict[str, Any] | None:
    now = clock()
    with _lock:
        cached = _prices.get((kind, country))
    if cached is not None and now - cached[0] < PRICE_CACHE_SECONDS:
        return cached[1]
    try:
        answer = vonage.get_outbound_pricing(kind, country)
    except ServiceError as exc:
        log.warning("price look-up failed", extra={"country": country, "error_code": exc.code})
        return None
    with _lock:
        _prices[(kind, country)] = (now, answer)
    return answer


def _threshold(settings: Settings) -> Decimal | None:
    if settings.balance_alert_threshold is None:
        return None
    return Decimal(str(settings.balance_alert_threshold))


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
