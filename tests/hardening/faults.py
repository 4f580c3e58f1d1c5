"""A state store that fails a share of its calls at random, for the chaos run.

``RandomFaultStore(inner, rate=0.05, seed=7)`` wraps a real store and raises
``shared.errors.StoreError`` on ``rate`` of the calls, before the call reaches the inner store
(a refused request, like a 503 from Firestore: nothing was written). Draws come from one
seeded RNG under a lock. ``rate`` can be changed at any time (0 to check the results).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from shared.errors import StoreError
from shared.store.base import RateDecision, StateStore

__all__ = ["RandomFaultStore"]


class RandomFaultStore(StateStore):
    """Delegates every public call to ``inner``; ``rate`` of them fail with StoreError first."""

    name = "random-faults"

    def __init__(self, inner: StateStore, *, rate: float = 0.05, seed: int = 0) -> None:
        super().__init__()
        self.inner = inner
        self.rate = rate
        self.calls = 0
        self.failures = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _maybe_fail(self, method: str) -> None:
        with self._lock:
            self.calls += 1
            fail = self.rate > 0 and self._rng.random() < self.rate
            if fail:
                self.failures += 1
        if fail:
            raise StoreError(f"injected: the store refused {method}")

    def create(self, collection: str, key: str, data: Mapping[str, Any], *, ttl: float | None = None) -> None:
        self._maybe_fail("create")
        self.inner.create(collection, key, data, ttl=ttl)

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        self._maybe_fail("get")
        return self.inner.get(collection, key)

    def update(
        self,
        collection: str,
        key: str,
        fn: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        *,
        ttl: float | None = None,
    ) -> dict[str, Any] | None:
        self._maybe_fail("update")
        return self.inner.update(collection, key, fn, ttl=ttl)

    def delete(self, collection: str, key: str) -> None:
        self._maybe_fail("delete")
        self.inner.delete(collection, key)

    def query(self, collection: str, **kwargs: Any) -> list[dict[str, Any]]:
        self._maybe_fail("query")
        return self.inner.query(collection, **kwargs)

    def hit(self, bucket: str, key: str, *, limit: int, window: float) -> RateDecision:
        self._maybe_fail("hit")
        return self.inner.hit(bucket, key, limit=limit, window=window)

    def ping(self) -> None:
        self._maybe_fail("ping")
        self.inner.ping()

    # Every public method delegates: the primitives are never reached.
    def _insert(self, *args: Any) -> bool:  # pragma: no cover
        raise NotImplementedError

    def _fetch(self, *args: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _transact(self, *args: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _delete(self, *args: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def _query(self, *args: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _ping(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def _close(self) -> None:
        self.inner.close()
