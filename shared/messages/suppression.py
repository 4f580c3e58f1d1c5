"""The suppression (opt-out) list: numbers that replied STOP are never sent to.

Filled by the inbound function's STOP handling, emptied by START, checked by send.
Keyed by E.164 number in collection ``suppression``.
"""

from __future__ import annotations

import time
from typing import Any

from shared.errors import ServiceError
from shared.store.base import Charge, StateStore

__all__ = ["SUPPRESSION", "is_suppressed", "not_suppressed", "opted_out_error", "suppress", "unsuppress"]

SUPPRESSION = "suppression"


def suppress(store: StateStore, phone: str, *, keyword: str, source_id: str | None = None) -> bool:
    """Put ``phone`` (E.164) on the list. Returns True when it was not on it before."""
    was_on = False

    def add(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal was_on
        was_on = bool(doc and doc.get("suppressed"))
        if was_on:
            return None
        return {"phone": phone, "suppressed": True, "keyword": keyword, "source_id": source_id, "since": time.time()}

    store.update(SUPPRESSION, phone, add)
    return not was_on


def unsuppress(store: StateStore, phone: str, *, keyword: str = "START") -> bool:
    """Take ``phone`` off the list. Returns True when it was on it."""
    was_on = False

    def remove(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal was_on
        was_on = bool(doc and doc.get("suppressed"))
        if not was_on:
            return None
        return {"phone": phone, "suppressed": False, "keyword": keyword, "since": time.time()}

    store.update(SUPPRESSION, phone, remove)
    return was_on


def is_suppressed(store: StateStore, phone: str) -> bool:
    """True when ``phone`` (E.164) opted out and did not opt in again."""
    doc = store.get(SUPPRESSION, phone)
    return bool(doc and doc.get("suppressed"))


def opted_out_error(phone: str) -> ServiceError:
    """Why a send to an opted-out number is refused (422 ``opted_out``)."""
    return ServiceError(
        "the recipient opted out (replied STOP) and is not sent to until they opt in again (START)",
        code="opted_out",
        status=422,
        details={"to": phone},
    )


def not_suppressed(phone: str) -> Charge:
    """:func:`is_suppressed` as a read inside a send's transaction (``StateStore.hit_many``'s
    charges): its ``fn`` writes nothing and raises :func:`opted_out_error` for an opted-out
    number, so nothing in the transaction is written."""

    def check(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        if doc and doc.get("suppressed"):
            raise opted_out_error(phone)
        return None

    return Charge(SUPPRESSION, phone, check, lambda doc: None)
