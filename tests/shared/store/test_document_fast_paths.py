"""The store's fast document copy and check agree with the full ones they stand in for."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from typing import Any

import pytest

from shared.store.base import _check_document, _check_value, _copy_document, _plainly_valid

VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 1.5, math.inf, -math.inf, math.nan,
    "", "text", "__name__", b"bytes", (1, 2), {1, 2}, [1, "a", None], [[1]], [{"a": [1]}], {}, {"a": 1},
    {"": 1}, {"__x__": 1}, {"__": 1}, {"___": 1}, {"a__b": 1}, {1: "a"}, {"a": {"b": [1, {"__c__": 2}]}},
    OrderedDict(a=1), {"a": float("nan")}, [1, [2]],
]


def _full_check_passes(value: Any) -> bool:
    try:
        _check_value({"field": value}, "")
    except (TypeError, ValueError):
        return False
    return True


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_the_fast_check_never_accepts_what_the_full_check_refuses(value: Any) -> None:
    plainly = _plainly_valid({"field": value})
    full = _full_check_passes(value)
    # The fast path may send a good value on to the full check (an OrderedDict), never the reverse.
    assert not (plainly and not full)
    if full and type(value) is not OrderedDict:
        assert plainly  # plain JSON values take the fast path
    if not full:
        with pytest.raises((TypeError, ValueError)):
            _check_document({"field": value})


def test_a_copied_document_shares_nothing_mutable_with_the_stored_one() -> None:
    stored = {"history": [{"status": "sent", "parts": [{"id": "a"}]}], "n": 1, "s": "x", "none": None}
    copied = _copy_document(stored)
    assert copied == stored == copy.deepcopy(stored)
    copied["history"][0]["parts"][0]["id"] = "changed"
    copied["history"].append({})
    copied["n"] = 2
    assert stored == {"history": [{"status": "sent", "parts": [{"id": "a"}]}], "n": 1, "s": "x", "none": None}
