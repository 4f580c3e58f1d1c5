"""Spend budgets: how much this deployment may spend at Vonage per window, enforced in the store.

Rate limits (``shared.verify.fraud``) shape traffic; budgets bound money. Each budget is a
count per fixed window (``COUNT/SECONDS``; windows start at multiples of their length since
the epoch, so a day is a UTC day) kept in one store document per scope and window, and every
charge is an atomic read-check-write (all the charges of one call in one store transaction:
``StateStore.hit_many``'s charges) made BEFORE Vonage is
called: a refused charge costs nothing and writes nothing, so concurrent callers on any
number of instances can never spend more than the budget between them.

- :func:`send_charges`: once per recipient, right before the Vonage call, from the one
  per-recipient send routine (``shared.messages.service``), whatever called it (the send
  function, a queued delivery, an inbound reply), in the store transaction that also claims
  the recipient's idempotency key and creates its message record. It charges one message and the text's
  SMS parts against the caller's budgets (``SEND_BUDGET_PER_TOKEN``,
  ``SEND_PARTS_BUDGET_PER_TOKEN``) and the deployment's (``SEND_BUDGET_GLOBAL``,
  ``SEND_PARTS_BUDGET_GLOBAL``).
- :func:`verify_start_charges`: once per verification start, charged in the same store
  transaction as the fraud guard's counters (``StateStore.hit_many(..., then=...)``), only
  when every counter allowed the start; :func:`charge_verify_start` charges them alone.
  ``VERIFY_BUDGET_GLOBAL`` counts starts. ``VERIFY_BUDGET_PER_COUNTRY`` counts *distinct
  number ranges* (prefixes) started in the country: a pumping attack works through a few
  ranges it is paid for, and each range is already capped by ``VERIFY_LIMIT_PER_PREFIX``,
  so it can use up only its own ranges' share, while real users, spread over many ranges,
  keep getting codes. Starts to a range already counted in the window cost the country
  budget nothing.

A refusal is ``429 budget_exhausted`` with ``Retry-After`` (the end of the window) and
``details.budget`` naming which one. Charges are not refunded when Vonage then refuses the
request: the bound stays on the safe side.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import BudgetExhaustedError
from shared.log import get_logger

if TYPE_CHECKING:
    from shared.config import RateLimit, Settings
    from shared.phone import PhoneNumber
    from shared.store.base import Charge, StateStore

__all__ = ["BUDGET_COLLECTION", "charge_send", "charge_verify_start", "send_charges", "verify_start_charges", "window_start"]

BUDGET_COLLECTION = "budgets"
# A document outlives its window by this much, so a late reader still sees the window's count.
_RETENTION = 3600.0

log = get_logger("shared.budget")


@dataclass(frozen=True)
class _Line:
    """One budget to charge: ``amount`` of ``field`` against ``limit`` per ``window``."""

    name: str  # the variable that sets it, for the error and the log
    field: str
    amount: int
    limit: int
    window: float


def window_start(now: float, window: float) -> float:
    """The start of the fixed window holding ``now``."""
    return math.floor(now / window) * window


def charge_send(
    store: StateStore, settings: Settings, *, scope: str, parts: int, clock: Callable[[], float]
) -> None:
    """Charge one message of ``parts`` SMS parts to ``scope`` (the caller) and to the deployment.

    Raises BudgetExhaustedError (429) when any of the four budgets would be exceeded; then
    nothing is charged anywhere. The send path passes :func:`send_charges` in its own
    transaction instead (with the idempotency claim and the message record).
    """
    charges = send_charges(settings, scope=scope, parts=parts, now=clock())
    if charges:
        # All or nothing, in one store transaction on the built-in backends (StateStore.hit_many's
        # charges; elsewhere one update each, given back on a refusal).
        store.hit_many([], then=charges)


def send_charges(settings: Settings, *, scope: str, parts: int, now: float) -> list[Charge]:
    """The send budgets of one message as :class:`~shared.store.base.Charge` items for
    :meth:`StateStore.hit_many`, all or none: a refusal (BudgetExhaustedError) charges none."""
    caller = _lines(
        ("SEND_BUDGET_PER_TOKEN", "messages", 1, settings.send_budget_per_token),
        ("SEND_PARTS_BUDGET_PER_TOKEN", "parts", parts, settings.send_parts_budget_per_token),
    )
    deployment = _lines(
        ("SEND_BUDGET_GLOBAL", "messages", 1, settings.send_budget_global),
        ("SEND_PARTS_BUDGET_GLOBAL", "parts", parts, settings.send_parts_budget_global),
    )
    return [
        _count_charge(owner, group, window, now)
        for owner, lines in ((f"send:caller:{_digest(scope)}", caller), ("send:global", deployment))
        for window, group in _by_window(lines).items()
    ]


def charge_verify_start(
    store: StateStore, settings: Settings, phone: PhoneNumber, *, prefix: str, clock: Callable[[], float]
) -> None:
    """Charge one verification start: its range to the country's budget, the start to the global one.

    Raises BudgetExhaustedError (429); a refused start is charged nowhere. The verify start
    itself passes :func:`verify_start_charges` to the fraud guard's counters instead, so both
    travel in one store transaction.
    """
    charges = verify_start_charges(settings, phone, prefix=prefix, now=clock())
    if charges:
        store.hit_many([], then=charges)


def verify_start_charges(settings: Settings, phone: PhoneNumber, *, prefix: str, now: float) -> list[Charge]:
    """The verify budgets of one start as :class:`~shared.store.base.Charge` items for
    :meth:`StateStore.hit_many`: the range to the country's budget, the start to the global one.

    All or none: a refusal (BudgetExhaustedError, raised by ``hit_many``) charges neither.
    """
    from shared.store.base import Charge

    charges: list[Charge] = []
    country_budget = settings.verify_budget_per_country
    if country_budget is not None:
        owner, member = f"verify:country:{phone.region.upper()}", _digest(prefix)
        start = window_start(now, country_budget.window)
        added: list[bool] = []  # fn may run more than once: the last run is the one that committed

        def add_range(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            added.clear()
            members = list((doc or {}).get("members", []))
            if member in members:
                return None  # a range already counted in this window costs nothing
            if len(members) >= country_budget.count:
                line = _Line("VERIFY_BUDGET_PER_COUNTRY", "ranges", 1, country_budget.count, country_budget.window)
                raise _exhausted(line, start + country_budget.window - now)
            added.append(True)
            return {"members": [*members, member]}

        def forget_range(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if not added or doc is None or member not in doc.get("members", []):
                return None
            return {"members": [m for m in doc["members"] if m != member]}

        charges.append(Charge(BUDGET_COLLECTION, _key(owner, start, country_budget.window), add_range, forget_range,
                              ttl=start + country_budget.window - now + _RETENTION))
    if settings.verify_budget_global is not None:
        line = _Line("VERIFY_BUDGET_GLOBAL", "starts", 1, settings.verify_budget_global.count,
                     settings.verify_budget_global.window)
        start = window_start(now, line.window)

        def add_start(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            counts = dict(doc or {})
            if int(counts.get(line.field, 0)) + line.amount > line.limit:
                raise _exhausted(line, start + line.window - now)
            counts[line.field] = int(counts.get(line.field, 0)) + line.amount
            return counts

        def give_back(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None:
                return None
            return {**doc, line.field: max(0, int(doc.get(line.field, 0)) - line.amount)}

        charges.append(Charge(BUDGET_COLLECTION, _key("verify:global", start, line.window), add_start, give_back,
                              ttl=start + line.window - now + _RETENTION))
    return charges


# ---- the store work ----------------------------------------------------------------------


def _count_charge(owner: str, lines: list[_Line], window: float, now: float) -> Charge:
    """``_charge`` as a Charge for ``hit_many``: refuses (BudgetExhaustedError) without writing."""
    from shared.store.base import Charge

    start = window_start(now, window)

    def add(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        counts = dict(doc or {})
        for line in lines:
            if int(counts.get(line.field, 0)) + line.amount > line.limit:
                raise _exhausted(line, start + window - now)
        for line in lines:
            counts[line.field] = int(counts.get(line.field, 0)) + line.amount
        return counts

    def give_back(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc is None:
            return None
        for line in lines:
            doc[line.field] = max(0, int(doc.get(line.field, 0)) - line.amount)
        return doc

    return Charge(BUDGET_COLLECTION, _key(owner, start, window), add, give_back, ttl=start + window - now + _RETENTION)


# ---- helpers --------------------------------------------------------------------------------


def _lines(*specs: tuple[str, str, int, RateLimit | None]) -> list[_Line]:
    return [_Line(name, fld, amount, limit.count, limit.window) for name, fld, amount, limit in specs if limit is not None]


def _by_window(lines: list[_Line]) -> Mapping[float, list[_Line]]:
    groups: dict[float, list[_Line]] = {}
    for line in lines:
        groups.setdefault(line.window, []).append(line)
    return groups


def _key(owner: str, start: float, window: float) -> str:
    return f"{owner}:{int(window)}:{int(start)}"


def _digest(value: str) -> str:
    # Not secret: keeps tokens and phone ranges out of readable keys.
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _exhausted(line: _Line, retry_after: float) -> BudgetExhaustedError:
    log.warning(
        "spend budget exhausted",
        extra={"budget": line.name, "limit": f"{line.limit}/{int(line.window)}", "retry_after": round(retry_after, 1)},
    )
    return BudgetExhaustedError(
        f"the {line.name} spend budget ({line.limit} {line.field} per {int(line.window)} s) is used up; "
        "try again when the window ends",
        details={"budget": line.name, "limit": f"{line.limit}/{int(line.window)}", "retry_after": round(retry_after, 1)},
        retry_after=max(1.0, retry_after),
    )
