"""Calls in flight at shutdown: waited for during the grace, then cut with an explicit error.

Every call is driven by one task from its start to its end (the gRPC handler's, the aiohttp
handler's, or the SSE pump's). The core enters each call here with that task; when the shutdown
grace runs out, `drain` cancels the tasks of the calls still open, and the core turns that
cancellation into `ServiceUnavailableError("gateway shutting down")`. So a stream cut at
shutdown ends the way any failed stream ends (a non-OK gRPC status; on SSE `event: error` then
`data: [DONE]`), a unary call gets its 503, and the ledger and metrics count it as UNAVAILABLE,
not as a caller who went away.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.errors import ServiceUnavailableError

log = logging.getLogger("gateway")

#: What a cut call is told; UNAVAILABLE says it is safe to try again (on another replica).
SHUTTING_DOWN = "gateway shutting down; retry on another replica"
RETRY_AFTER_SECONDS = 1.0
#: How long cut calls get to send their error and be accounted before the servers close.
CUT_SECONDS = 2.0


class CallsInFlight:
    """The calls under way, each with the task driving it."""

    __slots__ = ("_cutting", "_idle", "_tasks")

    def __init__(self) -> None:
        self._tasks: dict[int, asyncio.Task[Any]] = {}
        self._idle: asyncio.Event | None = None
        self._cutting = False

    def __len__(self) -> int:
        return len(self._tasks)

    def enter(self, call: object) -> None:
        """`call` starts, driven by the current task."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks[id(call)] = task

    def leave(self, call: object) -> None:
        """`call` has ended, however it ended."""
        self._tasks.pop(id(call), None)
        if not self._tasks and self._idle is not None:
            self._idle.set()

    def cut_error(self, exc: BaseException) -> ServiceUnavailableError | None:
        """The error to end a call with instead of `exc`, when `exc` is the shutdown's cut."""
        if not self._cutting or not isinstance(exc, asyncio.CancelledError):
            return None
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()  # handled: the task carries on to send the error
        return ServiceUnavailableError(SHUTTING_DOWN, retry_after=RETRY_AFTER_SECONDS)

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for the calls under way; then cut the rest."""
        if await self._wait_idle(grace):
            return
        self._cutting = True
        log.warning("shutdown grace over: cutting calls in flight", extra={"calls": len(self)})
        for task in list(self._tasks.values()):
            task.cancel()
        if not await self._wait_idle(CUT_SECONDS):
            log.error("calls still in flight after the cut", extra={"calls": len(self)})

    async def _wait_idle(self, seconds: float) -> bool:
        if not self._tasks:
            return True
        self._idle = idle = asyncio.Event()
        try:
            async with asyncio.timeout(seconds):
                await idle.wait()
        except TimeoutError:
            return not self._tasks
        return True
