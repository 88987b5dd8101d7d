"""A stream's watchdog: each wait for its next chunk is bounded, with one timer per stream.

`with watchdog: chunk = await anext(chunks)` raises `TimeoutError` out of the block once the wait
has gone on for the idle timeout, or past the call's deadline, as `asyncio.timeout_at` would.
But `asyncio.timeout_at` per chunk schedules and cancels a timer for every chunk; the watchdog
keeps one timer per stream, scheduled at the earliest moment a wait could be overdue, and when
it goes off with the stream still moving it is set again for the current wait's limit.

Outside the block (while the chunk is with the caller) nothing can fire: a timeout scope left
open across a generator's `yield` would fire inside the consumer's code.

After a `TimeoutError`, `expired` says which bound ran out, the idle timeout or the caller's
deadline, as `resilience.deadlines` decides it: an idle limit a hair before the deadline is the
deadline.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Final

from resilience.deadlines import Cut, cut_at

#: Timers go off up to this early (millisecond timers, rounded): that counts as on time.
TIMER_RESOLUTION: Final = 0.001


class StreamWatchdog:
    """Bounds each wait (`with watchdog:`) by `idle` seconds and the absolute `deadline`.

    `deadline` is on the running loop's clock (`loop.time()`). Call `close()` when the stream
    ends, to drop the timer.
    """

    def __init__(self, *, idle: float, deadline: float) -> None:
        self._idle = idle
        self._deadline = deadline
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        #: When the wait under way is overdue; None while not waiting.
        self._limit: float | None = None
        self._expired = False
        #: The cut of the last wait that ran out of time (None while none has).
        self.expired: Cut | None = None

    def __enter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("StreamWatchdog should be used inside a task")
        self._task, self._cancelling = task, task.cancelling()
        self._limit = limit = cut_at(self._loop.time() + self._idle, self._deadline)
        if self._timer is None:
            self._timer = self._loop.call_at(limit, self._fire)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        limit, self._limit = self._limit, None
        if not self._expired:
            return
        self._expired = False
        assert limit is not None
        self.expired = Cut(limit, self._deadline)
        assert self._task is not None
        if self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from exc  # our cancellation, and nobody else's since

    def close(self) -> None:
        """The stream is over: cancel the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        limit = self._limit
        if limit is None:
            return  # not waiting now: the next wait sets the timer again
        if self._loop.time() + TIMER_RESOLUTION < limit:
            self._timer = self._loop.call_at(limit, self._fire)  # the stream moved since
            return
        assert self._task is not None
        self._expired = True
        self._task.cancel()
