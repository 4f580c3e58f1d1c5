"""Races: the atomic create (the dedupe primitive) and update() under real concurrency.

Threads race on every backend; processes race on one SQLite file and on one PostgreSQL database.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.errors import RecordExistsError
from shared.store import StateStore
from shared.store.base import RateHit
from tests.shared.store import _workers

THREADS = 20


def _race(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(i) in `count` threads released together; return results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = work(index)
        except BaseException as exc:  # collected, asserted on by the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
    return results


def test_threads_racing_to_create_one_key_exactly_one_wins(store: StateStore) -> None:
    def create(index: int) -> int:
        store.create("race", "same-key", {"worker": index})
        return index

    results = _race(THREADS, create)
    winners = [r for r in results if isinstance(r, int)]
    losers = [r for r in results if isinstance(r, RecordExistsError)]
    assert len(winners) == 1, results
    assert len(losers) == THREADS - 1, results
    assert store.get("race", "same-key") == {"worker": winners[0]}


def test_threads_racing_to_replace_an_expired_key_exactly_one_wins(store: StateStore, store_clock: Any) -> None:
    # The slow path of create: the document exists but has expired.
    store.create("race", "same-key", {"worker": -1}, ttl=5)
    store_clock.advance(5)

    def create(index: int) -> int:
        store.create("race", "same-key", {"worker": index})
        return index

    results = _race(THREADS, create)
    winners = [r for r in results if isinstance(r, int)]
    assert len(winners) == 1, results
    assert all(isinstance(r, RecordExistsError) for r in results if not isinstance(r, int)), results
    assert store.get("race", "same-key") == {"worker": winners[0]}


def test_threads_incrementing_one_counter_lose_no_update(store: StateStore) -> None:
    def increment(index: int) -> dict[str, Any] | None:
        return store.update("race", "counter", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})

    results = _race(THREADS, increment)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert store.get("race", "counter") == {"n": THREADS}
    # Each update returned the value it wrote: all distinct, 1..20.
    assert sorted(r["n"] for r in results) == list(range(1, THREADS + 1))


def test_threads_hitting_one_rate_limit_allow_exactly_the_limit(store: StateStore) -> None:
    results = _race(THREADS, lambda index: store.hit("race", "k", limit=5, window=60))
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(r.allowed for r in results) == 5
    assert sorted(r.count for r in results if r.allowed) == [1, 2, 3, 4, 5]


def test_threads_hitting_overlapping_counters_with_hit_many_allow_exactly_the_limit(store: StateStore) -> None:
    # Every thread's batch holds the shared counter "c" (limit 5) after its own counter, in a
    # different position of the key order: rows are locked in a fixed order, so no deadlock.
    def work(index: int) -> Any:
        return store.hit_many([RateHit("own", f"k{index}", 1, 60), RateHit("shared", "c", 5, 60)])

    results = _race(THREADS, work)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert all(r[0].allowed for r in results)  # every thread's own counter
    assert sum(r[1].allowed for r in results) == 5
    assert len(store.get("ratelimits", "shared:c")["hits"]) == 5


# ---- several processes on one SQLite file / one PostgreSQL database ----------------------

PROCESSES = 6


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where processes meet: a fresh SQLite file path, or the test database with an empty table."""
    if request.param == "sqlite":
        return str(tmp_path / "shared" / "race.sqlite3")
    store = request.getfixturevalue("postgres_store")  # empties the table
    store.close()
    return request.getfixturevalue("postgres_url")


def _run_processes(target: Callable[..., None], where: str, args: list[tuple[Any, ...]]) -> list[int | None]:
    # spawn, not fork: the parent may hold gRPC threads (Firestore tests) that fork would break.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(args))
    processes = [context.Process(target=target, args=(where, barrier, *extra)) for extra in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    for process in processes:
        if process.is_alive():
            process.kill()
    return [process.exitcode for process in processes]


@pytest.mark.timeout(600)  # the joins wait up to 240 s for slow process start-up under load
def test_processes_racing_to_create_one_key_exactly_one_wins(shared_target: str) -> None:
    codes = _run_processes(_workers.race_create, shared_target, [(i,) for i in range(PROCESSES)])
    assert codes.count(_workers.WON) == 1 and codes.count(_workers.LOST) == PROCESSES - 1, codes

    with _workers.open_target(shared_target) as store:
        doc = store.get("race", "same-key")
    assert doc is not None and doc["worker"] == codes.index(_workers.WON)


@pytest.mark.timeout(600)  # the joins wait up to 240 s for slow process start-up under load
def test_processes_incrementing_one_counter_lose_no_update(shared_target: str) -> None:
    codes = _run_processes(_workers.race_increment, shared_target, [(10,)] * 4)
    assert codes == [0, 0, 0, 0]

    with _workers.open_target(shared_target) as store:
        assert store.get("race", "counter") == {"n": 40}


@pytest.mark.firestore
@pytest.mark.slow
def test_two_firestore_instances_incrementing_one_counter_lose_no_update(
    firestore_store: StateStore, firestore_client: Any, store_clock: Any
) -> None:
    # Separate store objects share no in-process lock (like two function instances), so here the
    # Firestore transaction itself must resolve the conflicts (each costs ~2 s on the emulator).
    from shared.store.firestore import FirestoreStateStore

    other = FirestoreStateStore(firestore_client, clock=store_clock)
    stores = [firestore_store, other]
    per_store = 2

    def increment_many(index: int) -> None:
        for _ in range(per_store):
            stores[index].update("race", "counter", lambda doc: {"n": (doc or {"n": 0})["n"] + 1})

    results = _race(len(stores), increment_many)
    assert results == [None, None]
    assert firestore_store.get("race", "counter") == {"n": len(stores) * per_store}
