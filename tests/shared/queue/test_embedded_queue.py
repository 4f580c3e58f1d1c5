"""The embedded queue on the StateStore contract (SQLite and, with the emulator, Firestore):
names dedupe, scheduling, claims are exclusive, leases are taken over, retries back off and
stop at the last attempt, cancel stops only what has not started; and the store pacer hands
out at most floor(rate) slots per window across every holder."""

from __future__ import annotations

import pytest

from shared.errors import ValidationError
from shared.queue.base import MAX_SCHEDULE_SECONDS, RetryPolicy, Task, TaskResult, check_schedule, task_name
from shared.queue.embedded import EmbeddedQueue, QueueWorker, StorePacer


@pytest.fixture
def queue(store, store_clock):
    return EmbeddedQueue(store, policy=RetryPolicy(max_attempts=3, min_backoff=2.0, max_backoff=5.0), lease=30.0,
                         clock=store_clock)


def _tasks(n, due=0.0, batch="bat_x"):
    return [Task(task_name(batch, f"+1415555{i:04d}"), {"batch_id": batch, "index": i}, due, batch) for i in range(n)]


def test_task_names_come_from_batch_and_recipient_and_hide_the_number():
    name = task_name("bat_abc", "+14155550000")
    assert name == task_name("bat_abc", "+14155550000")
    assert name != task_name("bat_abc", "+14155550001") and name != task_name("bat_abd", "+14155550000")
    assert name.startswith("bat_abc-") and "4155550000" not in name


def test_enqueueing_the_same_tasks_twice_creates_nothing_the_second_time(queue):
    first = queue.enqueue(_tasks(5))
    second = queue.enqueue(_tasks(5))
    assert (first.created, first.existing) == (5, 0)
    assert (second.created, second.existing) == (0, 5)


def test_scheduling_is_limited_to_30_days(store_clock):
    now = store_clock()
    assert check_schedule(now - 100, now) == now  # the past means now
    assert check_schedule(now + MAX_SCHEDULE_SECONDS, now) == now + MAX_SCHEDULE_SECONDS
    with pytest.raises(ValidationError) as caught:
        check_schedule(now + MAX_SCHEDULE_SECONDS + 1, now)
    assert caught.value.code == "send_at_too_far" and caught.value.status == 422


def test_a_task_is_not_claimed_before_it_is_due(queue, store_clock):
    queue.enqueue(_tasks(1, due=store_clock() + 60))
    task, next_due = queue.claim("w1")
    assert task is None and next_due == store_clock() + 60
    store_clock.advance(60)
    task, _ = queue.claim("w1")
    assert task is not None and task.attempt == 1 and task.payload["index"] == 0


def test_two_workers_never_hold_the_same_task(queue):
    queue.enqueue(_tasks(3))
    claimed = [queue.claim(f"w{i}")[0] for i in range(4)]
    names = [t.name for t in claimed if t is not None]
    assert len(names) == 3 and len(set(names)) == 3 and claimed[3] is None


def test_a_crashed_workers_task_is_taken_over_after_its_lease(queue, store_clock):
    queue.enqueue(_tasks(1))
    first, _ = queue.claim("dead")
    assert queue.claim("alive")[0] is None  # leased
    store_clock.advance(31)
    second, _ = queue.claim("alive")
    assert second is not None and second.name == first.name and second.attempt == 2
    # The dead worker's late report changes nothing: the task belongs to the new holder.
    queue.finish(first, TaskResult(200))
    assert queue.get(first.name)["state"] == "leased"
    queue.finish(second, TaskResult(200))
    assert queue.get(first.name)["state"] == "done"


def test_retries_back_off_and_stop_at_the_last_attempt(queue, store_clock):
    queue.enqueue(_tasks(1))
    task, _ = queue.claim("w")
    queue.finish(task, TaskResult(503, error="store_unavailable"))
    doc = queue.get(task.name)
    assert doc["state"] == "queued" and doc["due_at"] == store_clock() + 2.0 and doc["last_error"] == "store_unavailable"
    store_clock.advance(2)
    task, _ = queue.claim("w")
    queue.finish(task, TaskResult(429, retry_after=4.5))  # a longer Retry-After wins over the backoff
    assert queue.get(task.name)["due_at"] == store_clock() + 4.5
    store_clock.advance(5)
    task, _ = queue.claim("w")
    assert task.attempt == 3
    queue.finish(task, TaskResult(503))
    assert queue.get(task.name)["state"] == "done"  # max_attempts reached: no fourth attempt
    store_clock.advance(600)
    assert queue.claim("w")[0] is None


def test_cancel_stops_queued_tasks_but_not_one_in_hand(queue):
    tasks = _tasks(3)
    queue.enqueue(tasks)
    held, _ = queue.claim("w")
    stopped = queue.cancel(t.name for t in tasks)
    assert stopped == 2
    assert queue.get(held.name)["state"] == "leased"
    assert queue.claim("w2")[0] is None


def test_a_worker_runs_the_handler_and_records_the_outcome(queue):
    queue.enqueue(_tasks(2))
    seen = []
    worker = QueueWorker(queue, lambda task: seen.append(task.payload["index"]) or TaskResult(200), threads=1)
    assert worker.run_once() and worker.run_once() and not worker.run_once()
    assert sorted(seen) == [0, 1]
    assert all(queue.get(t.name)["state"] == "done" for t in _tasks(2))


def test_the_store_pacer_gives_at_most_capacity_slots_per_window(store, store_clock):
    waits = []
    pacer = StorePacer(store, 3, clock=store_clock, sleep=lambda s: (waits.append(s), store_clock.advance(s)))
    other = StorePacer(store, 3, clock=store_clock, sleep=lambda s: (waits.append(s), store_clock.advance(s)))
    taken = []
    for holder in (pacer, other, pacer, other, pacer):
        slot = holder.acquire()
        taken.append(store_clock())
        holder.release(slot)
    # Even spacing (1/3 s), and the 4th slot waits until the 1st was released one window ago.
    assert taken[1] - taken[0] >= 1 / 3 - 1e-6 and taken[2] - taken[1] >= 1 / 3 - 1e-6
    assert taken[3] - taken[0] >= 1.0 - 1e-6 and taken[4] - taken[1] >= 1.0 - 1e-6


def test_a_slot_whose_holder_died_frees_itself_after_the_hold(store, store_clock):
    pacer = StorePacer(store, 1, hold=10.0, clock=store_clock, sleep=store_clock.advance)
    pacer.acquire()  # never released: the holder crashed
    start = store_clock()
    pacer.acquire()
    assert store_clock() - start >= 10.0


def test_the_store_pacer_keeps_its_schedule_when_a_taker_is_a_little_late(store, store_clock):
    pacer = StorePacer(store, 10, clock=store_clock, sleep=store_clock.advance)
    first = store_clock()
    pacer.release(pacer.acquire())
    store_clock.advance(0.13)  # 30 ms after the 2nd slot was due (interval 0.1 s): a slow store
    pacer.release(pacer.acquire())
    second = store_clock()
    pacer.release(pacer.acquire())
    # The 3rd is due on the schedule (0.2 s after the 1st), not 0.1 s after the late 2nd.
    assert second - first == pytest.approx(0.13) and store_clock() - first == pytest.approx(0.2)
