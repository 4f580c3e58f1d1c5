"""What the sandbox remembers: the balance, accepted messages, every API request, the inbox.

All of it is in memory, guarded by one lock, and wiped by ``reset()``. Records are plain
dicts (JSON-ready) so the control endpoints can return them as they are.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["RateDecision", "RateLimiter", "SandboxState", "iso_time", "money"]

RATE_WINDOW = 1.0  # seconds: Vonage states its limits per second


def iso_time(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, as Vonage's JSON webhooks write times."""
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def money(amount: Decimal) -> str:
    """A price or balance as the SMS API writes it: a string with 8 decimals, e.g. ``0.03330000``."""
    return f"{amount.quantize(Decimal('0.00000001')):f}"


@dataclass(frozen=True)
class RateDecision:
    """Outcome of a rate check, with what the X-RateLimit-* headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when a slot frees up

    def retry_after(self, now: float) -> int:
        """Whole seconds to wait (at least 1), for the Retry-After header."""
        return max(1, int(-(-(self.reset_at - now) // 1)))


class RateLimiter:
    """A sliding one-second window per API: at most ``limit`` accepted requests in it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def check(self, api: str, limit: int | None, now: float) -> RateDecision:
        """Count one request to ``api`` unless it is over ``limit`` (refused requests do not count)."""
        with self._lock:
            hits = self._hits.setdefault(api, deque())
            while hits and hits[0] <= now - RATE_WINDOW:
                hits.popleft()
            if limit is None:
                return RateDecision(True, 0, 0, now)
            if len(hits) >= limit:
                return RateDecision(False, limit, 0, hits[0] + RATE_WINDOW)
            hits.append(now)
            return RateDecision(True, limit, limit - len(hits), hits[0] + RATE_WINDOW)

    def reset(self) -> None:
        """Forget every counted request."""
        with self._lock:
            self._hits.clear()


class SandboxState:
    """Balance, message log, request log and inbox of one sandbox (thread-safe)."""

    def __init__(self, balance: Decimal, *, clock: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._initial_balance = balance
        self.balance = balance
        self._messages: list[dict[str, Any]] = []
        self._requests: list[dict[str, Any]] = []
        self._inbox: dict[str, list[dict[str, Any]]] = {}
        self._inbound: list[dict[str, Any]] = []  # what phones sent to the app (inject_inbound)
        self.rates = RateLimiter()

    # ---- money ----------------------------------------------------------

    def try_charge(self, amount: Decimal) -> Decimal | None:
        """Take ``amount`` from the balance and return what remains, or None if it does not cover it."""
        with self._lock:
            if self.balance < amount:
                return None
            self.balance -= amount
            return self.balance

    def can_afford(self, amount: Decimal) -> bool:
        """True when the balance covers ``amount`` (nothing is charged)."""
        with self._lock:
            return self.balance >= amount

    def set_balance(self, balance: Decimal) -> None:
        """Set the balance (POST /_sandbox/config)."""
        with self._lock:
            self.balance = balance
            self._initial_balance = balance

    # ---- logs -----------------------------------------------------------

    def record_message(self, record: dict[str, Any]) -> None:
        """Remember an accepted message (with the exact request fields it came with)."""
        with self._lock:
            self._messages.append(record)

    def record_request(self, record: dict[str, Any]) -> None:
        """Remember one API request and how it was answered."""
        with self._lock:
            self._requests.append(record)

    def record_inbound(self, record: dict[str, Any]) -> None:
        """Remember a message a phone sent to the app (what the dev phone shows as the phone's side)."""
        with self._lock:
            self._inbound.append(record)

    def inbound(self) -> list[dict[str, Any]]:
        """Messages phones sent to the app, oldest first (copies)."""
        with self._lock:
            return copy.deepcopy(self._inbound)

    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first (copies)."""
        with self._lock:
            return copy.deepcopy(self._messages)

    def requests(self) -> list[dict[str, Any]]:
        """Every API request, oldest first (copies)."""
        with self._lock:
            return copy.deepcopy(self._requests)

    # ---- inbox ----------------------------------------------------------

    def add_to_inbox(self, to: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Put a message in the inbox of ``to`` (a phone number's digits or an email address)."""
        stored = {"id": str(uuid.uuid4()), "to": to, "received_at": iso_time(self._clock()), **entry}
        with self._lock:
            self._inbox.setdefault(_inbox_key(to), []).append(stored)
        return stored

    def inbox(self, to: str) -> list[dict[str, Any]]:
        """Messages delivered to ``to``, latest first."""
        with self._lock:
            return copy.deepcopy(list(reversed(self._inbox.get(_inbox_key(to), []))))

    def reset(self) -> None:
        """Forget everything and restore the configured balance."""
        with self._lock:
            self.balance = self._initial_balance
            self._messages.clear()
            self._requests.clear()
            self._inbox.clear()
            self._inbound.clear()
        self.rates.reset()


def _inbox_key(to: str) -> str:
    """Numbers are keyed by their digits (``+44 7700…`` and ``447700…`` are one inbox)."""
    to = to.strip()
    if "@" in to:
        return to.lower()
    return "".join(ch for ch in to if ch.isdigit())
