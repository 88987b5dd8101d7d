"""`Admission`: the bulkhead, its bounded priority queue, cancellation, deadlines and hooks."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack

import pytest

from resilience.admission import Admission, AdmissionTimeoutError, QueueFullError

LOW, NORMAL, HIGH = 1, 2, 3


class Workers:
    """Tasks that take a slot, note that they ran, and hold it until `done` is set."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.ran: list[str] = []
        self.done = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, priority: int = NORMAL, deadline: float | None = None) -> None:
        """Start worker `name`; it runs once the loop gets to it (see `settle`)."""
        self.tasks[name] = asyncio.create_task(self._work(name, priority, deadline))

    async def _work(self, name: str, priority: int, deadline: float | None) -> None:
        async with self.admission.acquire(priority, deadline):
            self.ran.append(name)
            await self.done.wait()

    async def finish(self) -> None:
        """Let every worker go and wait until all have ended; only cancellation may end one."""
        self.done.set()
        results = await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)


async def settle() -> None:
    """Let every task that can make progress without waiting on time do so."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_admits_up_to_max_in_flight_at_once() -> None:
    workers = Workers(Admission(2, 10))
    workers.start("a")
    workers.start("b")
    await settle()
    assert workers.ran == ["a", "b"]
    assert workers.admission.in_flight == 2
    await workers.finish()


async def test_request_beyond_max_in_flight_waits() -> None:
    workers = Workers(Admission(2, 10))
    for name in "abc":
        workers.start(name)
    await settle()
    assert workers.ran == ["a", "b"]
    assert workers.admission.queued == 1
    await workers.finish()


async def test_released_slots_go_to_waiters_in_arrival_order() -> None:
    admission = Admission(1, 10)
    workers = Workers(admission)
    async with admission.acquire(NORMAL, None):
        for name in "abc":
            workers.start(name)
        await settle()
    await workers.finish()
    assert workers.ran == ["a", "b", "c"]
    assert admission.in_flight == 0


async def test_full_queue_rejects_at_once() -> None:
    workers = Workers(Admission(2, 2))
    for name in "abcd":
        workers.start(name)
    await settle()
    started = time.monotonic()
    with pytest.raises(QueueFullError) as caught:
        async with workers.admission.acquire(HIGH, None):
            pass
    assert time.monotonic() - started < 0.05
    assert caught.value.retry_after == 1.0
    assert workers.admission.queued == 2
    await workers.finish()


async def test_high_priority_waiters_go_before_earlier_lower_ones() -> None:
    admission = Admission(1, 10)
    workers = Workers(admission)
    async with admission.acquire(NORMAL, None):
        workers.start("low", LOW)
        workers.start("normal", NORMAL)
        workers.start("high", HIGH)
        await settle()
    await workers.finish()
    assert workers.ran == ["high", "normal", "low"]


async def test_unspecified_priority_queues_as_normal() -> None:
    admission = Admission(1, 10)
    workers = Workers(admission)
    async with admission.acquire(NORMAL, None):
        workers.start("low", LOW)
        workers.start("normal", NORMAL)
        workers.start("unspecified", 0)
        await settle()
    await workers.finish()
    assert workers.ran == ["normal", "unspecified", "low"]


async def test_newcomer_cannot_take_a_slot_ahead_of_the_queue() -> None:
    admission = Admission(1, 10)
    workers = Workers(admission)
    workers.done.set()
    async with admission.acquire(NORMAL, None):
        workers.start("queued")
        await settle()
    # Leaving the block freed the slot, and nothing else has run since.
    async with admission.acquire(HIGH, None):
        workers.ran.append("newcomer")
    assert workers.ran == ["queued", "newcomer"]


async def test_cancelled_waiter_leaves_the_queue() -> None:
    workers = Workers(Admission(1, 10))
    for name in "abc":
        workers.start(name)
    await settle()
    workers.tasks["b"].cancel()
    await settle()
    assert workers.admission.queued == 1
    await workers.finish()


async def test_cancelled_waiter_never_runs_and_the_next_gets_the_slot() -> None:
    workers = Workers(Admission(1, 10))
    for name in "abc":
        workers.start(name)
    await settle()
    workers.tasks["b"].cancel()
    await workers.finish()
    assert workers.ran == ["a", "c"]
    assert workers.tasks["b"].cancelled()


async def test_slot_handed_to_a_waiter_as_it_is_cancelled_passes_on() -> None:
    admission = Admission(1, 10)
    workers = Workers(admission)
    async with admission.acquire(NORMAL, None):
        workers.start("cancelled")
        workers.start("next")
        await settle()
    # Leaving the block resolved "cancelled"'s future; its task has not run since.
    workers.tasks["cancelled"].cancel()
    await settle()
    assert workers.ran == ["next"]
    await workers.finish()
    assert admission.in_flight == 0
    assert workers.tasks["cancelled"].cancelled()


async def test_waiter_past_its_deadline_times_out() -> None:
    admission = Admission(1, 10)
    async with admission.acquire(NORMAL, None):
        deadline = asyncio.get_running_loop().time() + 0.02
        started = time.monotonic()
        with pytest.raises(AdmissionTimeoutError):
            async with admission.acquire(NORMAL, deadline):
                pass
        assert time.monotonic() - started < 1.0


async def test_timed_out_waiter_leaves_the_queue_and_frees_no_slot() -> None:
    admission = Admission(1, 10)
    async with admission.acquire(NORMAL, None):
        deadline = asyncio.get_running_loop().time() + 0.02
        with pytest.raises(AdmissionTimeoutError):
            async with admission.acquire(NORMAL, deadline):
                pass
        assert (admission.queued, admission.in_flight) == (0, 1)
    assert admission.in_flight == 0


async def test_exception_inside_the_block_releases_the_slot() -> None:
    admission = Admission(1, 0)
    with pytest.raises(RuntimeError):
        async with admission.acquire(NORMAL, None):
            raise RuntimeError("upstream broke")
    assert admission.in_flight == 0
    async with admission.acquire(NORMAL, None):
        assert admission.in_flight == 1


async def test_unlimited_admits_everyone_at_once() -> None:
    admission = Admission(0, 0)
    async with AsyncExitStack() as stack:
        for _ in range(100):
            await stack.enter_async_context(admission.acquire(NORMAL, None))
        assert (admission.in_flight, admission.queued) == (100, 0)
    assert admission.in_flight == 0


async def test_on_wait_reports_zero_for_immediate_admission() -> None:
    waits: list[float] = []
    admission = Admission(1, 10, on_wait=waits.append)
    async with admission.acquire(NORMAL, None):
        pass
    assert waits == [0.0]


async def test_on_wait_reports_the_time_spent_queued() -> None:
    now = 100.0
    waits: list[float] = []
    admission = Admission(1, 10, clock=lambda: now, on_wait=waits.append)
    workers = Workers(admission)
    async with admission.acquire(NORMAL, None):
        workers.start("waiter")
        await settle()
        now += 2.5
    await workers.finish()
    assert waits == [0.0, 2.5]


async def test_on_depth_change_reports_each_new_depth() -> None:
    depths: list[int] = []
    workers = Workers(Admission(1, 10, on_depth_change=depths.append))
    for name in "abcd":
        workers.start(name)
    await settle()
    workers.tasks["c"].cancel()
    await settle()
    await workers.finish()
    assert depths == [1, 2, 3, 2, 1, 0]


async def test_order_holds_after_many_waiters_leave() -> None:
    workers = Workers(Admission(1, 100))
    priorities = {f"w{i:02}": LOW + i // 5 % 3 for i in range(60)}
    for name, priority in priorities.items():
        workers.start(name, priority)
    await settle()
    survivors = [name for i, name in enumerate(priorities) if i % 5 == 0]
    for name in priorities.keys() - survivors:
        workers.tasks[name].cancel()
    await workers.finish()
    first, *queued = survivors  # "w00" found the slot free
    assert workers.ran == [first, *sorted(queued, key=lambda name: -priorities[name])]
