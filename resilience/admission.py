"""Admission control: a bulkhead in front of the upstream calls, with a bounded priority queue.

At most `max_in_flight` requests do upstream work at once. Up to `queue_size` more wait, the
highest priority first and, within a priority, in arrival order. A freed slot is handed straight
to the next waiter, so a newcomer can never overtake the queue. When the queue is full a request
is turned away at once with `QueueFullError`; one whose deadline passes while it waits gets
`AdmissionTimeoutError`. The caller maps these to UNAVAILABLE (503 + Retry-After) and
DEADLINE_EXCEEDED.

Waiters are futures in a heap; a waiter that leaves early (cancelled or timed out) stays in the
heap as a done future and is skipped when it surfaces, and the heap is compacted when such dead
entries outnumber the live ones, so each operation is O(log n) amortised.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType

#: The proto's PRIORITY_NORMAL, which PRIORITY_UNSPECIFIED (0) stands for.
PRIORITY_NORMAL = 2
#: Seconds a caller turned away by a full queue is told to wait before trying again.
DEFAULT_RETRY_AFTER = 1.0
#: Dead heap entries tolerated beyond the live ones before the heap is rebuilt.
_COMPACT_SLACK = 16


class QueueFullError(Exception):
    """Every slot is taken and the queue is full; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"admission queue is full; retry after {retry_after:g}s")
        self.retry_after = retry_after


class AdmissionTimeoutError(Exception):
    """The request's deadline passed while it waited in the admission queue."""

    def __init__(self) -> None:
        super().__init__("deadline passed while waiting for admission")


def effective_priority(priority: int) -> int:
    """The priority a request is queued at: the proto value, with 0 (unspecified) as normal."""
    return priority or PRIORITY_NORMAL


class Admission:
    """A bulkhead of `max_in_flight` slots (unlimited when <= 0) and a queue of `queue_size`.

    `on_wait` is called with the seconds each request waited once it is admitted (0.0 when it
    was admitted at once), measured on `clock` (default `time.monotonic`). `on_depth_change` is
    called with the new number of waiters whenever it changes.
    """

    def __init__(
        self,
        max_in_flight: int,
        queue_size: int,
        *,
        clock: Callable[[], float] | None = None,
        on_wait: Callable[[float], None] | None = None,
        on_depth_change: Callable[[int], None] | None = None,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        self._max_in_flight = max_in_flight
        self._queue_size = queue_size
        self._clock = clock or time.monotonic
        self._on_wait = on_wait
        self._on_depth_change = on_depth_change
        self._retry_after = retry_after
        self._in_flight = 0
        self._queued = 0
        # Entries are (-priority, arrival number, waiter): the arrival number is unique, so
        # futures are never compared, and it keeps equal priorities in FIFO order.
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet released."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return self._queued

    def acquire(self, priority: int, deadline: float | None) -> AbstractAsyncContextManager[None]:
        """Hold a slot for the body of the `async with`; released however the body ends.

        `priority` is the proto enum value (higher is served first; 0 counts as normal).
        `deadline` is absolute on the running loop's clock (`loop.time()`); None waits for ever.
        Raises `QueueFullError` at once when the queue is full, and `AdmissionTimeoutError`
        when the deadline passes in the queue.
        """
        return _Slot(self, effective_priority(priority), deadline)

    async def _enter(self, priority: int, deadline: float | None) -> None:
        # Nobody waits while a slot is free: a freed slot goes straight to a waiter, if any.
        if self._max_in_flight <= 0 or self._in_flight < self._max_in_flight:
            self._in_flight += 1
            self._report_wait(0.0)
            return
        if self._queued >= self._queue_size:
            raise QueueFullError(self._retry_after)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._heap, (-priority, next(self._arrivals), waiter))
        self._set_queued(self._queued + 1)
        started = self._clock()
        timer = None if deadline is None else loop.call_at(deadline, self._expire, waiter)
        try:
            await waiter  # resolved by _release (slot handed over) or _expire (timed out)
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        self._report_wait(self._clock() - started)

    def _abandon(self, waiter: asyncio.Future[None]) -> None:
        """Settle the books of a waiter whose task was cancelled."""
        waiter.cancel()
        if waiter.cancelled():
            self._leave_queue()
        elif waiter.exception() is None:
            # The slot was handed over just as the cancellation landed: pass it on.
            self._release()
        # Otherwise it had already timed out, and _expire took it off the queue.

    def _expire(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(AdmissionTimeoutError())
            self._leave_queue()

    def _release(self) -> None:
        """Free one slot: hand it to the best waiter, or give it back."""
        while self._heap:
            _, _, waiter = heapq.heappop(self._heap)
            if not waiter.done():
                self._set_queued(self._queued - 1)
                waiter.set_result(None)  # the slot changes hands; in_flight stays the same
                return
        self._in_flight -= 1

    def _leave_queue(self) -> None:
        """Count a waiter out of the queue; its dead heap entry is dropped later."""
        self._set_queued(self._queued - 1)
        if len(self._heap) > 2 * self._queued + _COMPACT_SLACK:
            self._heap = [entry for entry in self._heap if not entry[2].done()]
            heapq.heapify(self._heap)

    def _set_queued(self, depth: int) -> None:
        self._queued = depth
        if self._on_depth_change is not None:
            self._on_depth_change(depth)

    def _report_wait(self, seconds: float) -> None:
        if self._on_wait is not None:
            self._on_wait(seconds)


class _Slot:
    """One slot of an `Admission`, held for the body of an `async with`.

    A class rather than an `asynccontextmanager`: it is entered for every call, and a
    generator-based context manager costs a generator (and its bookkeeping) each time.
    """

    __slots__ = ("_admission", "_deadline", "_priority")

    def __init__(self, admission: Admission, priority: int, deadline: float | None) -> None:
        self._admission = admission
        self._priority = priority
        self._deadline = deadline

    async def __aenter__(self) -> None:
        await self._admission._enter(self._priority, self._deadline)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._admission._release()
