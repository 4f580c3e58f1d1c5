"""A state store that fails a share of its calls at random, for the chaos run.

``RandomFaultStore(inner, rate=0.05, seed=7)`` wraps a real store and raises
``shared.errors.StoreError`` on ``rate`` of the calls, before the call reaches the inner store
(a refused request, like a 503 from Firestore: nothing was written). Draws come from one
seeded RNG under a lock. ``rate`` can be changed at any time (0 to check the results).
"""

from __future__ import annotations

import random
import threading

from shared.errors import StoreError
from shared.store.base import StateStore
from tests.fixtures.store import DelegatingStore

__all__ = ["RandomFaultStore"]


class RandomFaultStore(DelegatingStore):
    """Delegates every public call to ``inner``; ``rate`` of them fail with StoreError first."""

    name = "random-faults"

    def __init__(self, inner: StateStore, *, rate: float = 0.05, seed: int = 0) -> None:
        super().__init__(inner)
        self.rate = rate
        self.calls = 0
        self.failures = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _before(self, method: str, collection: str) -> None:
        with self._lock:
            self.calls += 1
            fail = self.rate > 0 and self._rng.random() < self.rate
            if fail:
                self.failures += 1
        if fail:
            raise StoreError(f"injected: the store refused {method}")
