"""Faults on demand: the failures real Vonage traffic has, injected at a given rate.

A ``FaultRule`` names a kind, the share of requests it hits (``rate``), the API it applies
to (``api``, or every API) and how many times it may fire (``count``). Rules come from the
config, from ``POST /_sandbox/faults`` or, for one request only, from the
``X-Sandbox-Fault`` header. Draws use one seeded ``random.Random``, so the same sequence
of requests meets the same faults on every run.

Kinds (``value`` in brackets):

- ``delay`` [seconds, default 1]: wait before handling the request.
- ``5xx`` [HTTP status, default 500]: answer a 5xx problem without handling the request.
- ``429``: answer HTTP 429 with Retry-After without handling the request (a gateway-level limit).
- ``throttle``: answer the API's own throttling (SMS status 1, legacy Verify status 1, HTTP 429).
- ``timeout`` [seconds, default ``timeout_hold``]: handle the request, then hold the response
  longer than a client waits (the send happened; the client does not know).
- ``early_receipt``: deliver the request's receipts before its response is returned.
- ``duplicate``: deliver every webhook of the request (receipt or inbound) twice.
- ``reorder``: deliver the request's webhooks in reverse order (delivered before submitted...).
- ``webhook_delay`` [seconds]: hold this request's webhooks that long before the first attempt.
- ``drop_receipts``: accept the request but never send its delivery receipts / status webhooks
  (a network that loses receipts; the app must settle the message another way).

Text form (env, CLI, header): ``kind[=value][;rate=R][;api=A][;count=N]``, comma-separated,
e.g. ``X-Sandbox-Fault: timeout=2`` or ``SANDBOX_FAULTS="5xx;rate=0.1,duplicate;api=sms"``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "APIS",
    "ActiveFaults",
    "FAULT_KINDS",
    "FaultInjector",
    "FaultRule",
    "parse_fault_rules",
]

FAULT_KINDS = (
    "delay",
    "5xx",
    "429",
    "throttle",
    "timeout",
    "early_receipt",
    "duplicate",
    "reorder",
    "webhook_delay",
    "drop_receipts",
)
APIS = ("sms", "messages", "verify", "verify_legacy", "inbound")


@dataclass(frozen=True)
class FaultRule:
    """Inject ``kind`` into ``rate`` of the requests to ``api`` (all when None), at most ``count`` times."""

    kind: str
    rate: float = 1.0
    api: str | None = None
    count: int | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        if self.api is not None and self.api not in APIS:
            raise ValueError(f"unknown fault api {self.api!r}; use one of {', '.join(APIS)}")
        if self.count is not None and self.count < 0:
            raise ValueError("fault count must not be negative")
        if self.value is not None and not self.value >= 0:
            raise ValueError("fault value must not be negative")

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as accepted by ``POST /_sandbox/faults``."""
        return {"kind": self.kind, "rate": self.rate, "api": self.api, "count": self.count, "value": self.value}

    @classmethod
    def from_any(cls, item: Any) -> FaultRule:
        """Build from a FaultRule, a mapping or the text form."""
        if isinstance(item, FaultRule):
            return item
        if isinstance(item, Mapping):
            unknown = set(item) - {"kind", "rate", "api", "count", "value"}
            if unknown:
                raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
            if "kind" not in item:
                raise ValueError("a fault needs a kind")
            try:
                rate = 1.0 if item.get("rate") is None else float(item["rate"])
                count = None if item.get("count") is None else int(item["count"])
                value = None if item.get("value") is None else float(item["value"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"malformed fault {item!r}: rate and value are numbers, count a whole number") from exc
            api = None if item.get("api") in (None, "") else str(item["api"])
            return cls(kind=str(item["kind"]), rate=rate, api=api, count=count, value=value)
        if isinstance(item, str):
            return _parse_text(item)
        raise ValueError(f"cannot read a fault from {type(item).__name__}")


def parse_fault_rules(value: Any) -> tuple[FaultRule, ...]:
    """Rules from a comma-separated text, a list of mappings/texts/rules, or None."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(_parse_text(part) for part in value.split(",") if part.strip())
    if isinstance(value, (FaultRule, Mapping)):
        return (FaultRule.from_any(value),)
    return tuple(FaultRule.from_any(item) for item in value)


def _parse_text(text: str) -> FaultRule:
    head, *options = [piece.strip() for piece in text.strip().split(";")]
    kind, _, raw_value = head.partition("=")
    fields: dict[str, Any] = {"kind": kind.strip().lower()}
    if raw_value.strip():
        fields["value"] = raw_value.strip()
    for option in options:
        name, sep, raw = option.partition("=")
        if not sep or name.strip() not in ("rate", "api", "count", "value"):
            raise ValueError(f"malformed fault option {option!r}: use rate=, api=, count= or value=")
        fields[name.strip()] = raw.strip()
    return FaultRule.from_any(fields)


class ActiveFaults:
    """The faults drawn for one request: kind -> value (None when the kind takes no value)."""

    def __init__(self, drawn: Mapping[str, float | None] | None = None) -> None:
        self._drawn = dict(drawn or {})

    def has(self, kind: str) -> bool:
        """True when ``kind`` was drawn for this request."""
        return kind in self._drawn

    def value(self, kind: str, default: float) -> float:
        """The drawn value of ``kind``, or ``default`` when it has none."""
        value = self._drawn.get(kind)
        return default if value is None else value

    @property
    def kinds(self) -> list[str]:
        """Drawn kinds, sorted (for the request log)."""
        return sorted(self._drawn)

    def __bool__(self) -> bool:
        return bool(self._drawn)


class FaultInjector:
    """Draws faults for each request from the configured rules with a seeded RNG (thread-safe)."""

    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._fired: list[int] = []
        self._rng = random.Random(seed)
        self.configure(rules, seed=seed)

    def configure(self, rules: Iterable[FaultRule], *, seed: int | None = None) -> None:
        """Replace the rules (and reseed when ``seed`` is given); counts start again."""
        with self._lock:
            self._rules = list(rules)
            self._fired = [0] * len(self._rules)
            if seed is not None:
                self._rng.seed(seed)

    @property
    def rules(self) -> list[FaultRule]:
        """The current rules."""
        with self._lock:
            return list(self._rules)

    def draw(self, api: str, forced: Iterable[FaultRule] = ()) -> ActiveFaults:
        """Faults for one request to ``api``: forced ones always, configured ones at their rate."""
        drawn: dict[str, float | None] = {}
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.api is not None and rule.api != api:
                    continue
                if rule.count is not None and self._fired[index] >= rule.count:
                    continue
                # Only partial rates consume the RNG, so adding a rate-1 rule does not shift the others.
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                self._fired[index] += 1
                drawn.setdefault(rule.kind, rule.value)
        for rule in forced:
            if rule.api is None or rule.api == api:
                drawn[rule.kind] = rule.value
        return ActiveFaults(drawn)

    def shuffle(self, items: list[Any]) -> list[Any]:
        """A reproducible shuffle with the same seeded RNG (used for out-of-order inbound parts)."""
        with self._lock:
            copy = list(items)
            self._rng.shuffle(copy)
        return copy
