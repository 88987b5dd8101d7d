"""The stream watchdog bounds each wait for a chunk by the idle timeout and the deadline, only."""

from __future__ import annotations

import asyncio

import pytest

from resilience.watchdog import StreamWatchdog

IDLE = 0.05


def _watchdog(*, deadline_in: float = 60.0) -> StreamWatchdog:
    deadline = asyncio.get_running_loop().time() + deadline_in
    return StreamWatchdog(idle=IDLE, deadline=deadline)


async def test_a_wait_longer_than_the_idle_timeout_raises_timeout_error() -> None:
    watchdog = _watchdog()
    with pytest.raises(TimeoutError), watchdog:
        await asyncio.sleep(IDLE * 4)
    watchdog.close()


async def test_a_stream_that_keeps_moving_runs_past_many_idle_timeouts() -> None:
    watchdog = _watchdog()
    for _ in range(20):  # 20 x IDLE/5 = 4 idle timeouts in all
        with watchdog:
            await asyncio.sleep(IDLE / 5)
    watchdog.close()


async def test_time_outside_the_block_does_not_count() -> None:
    watchdog = _watchdog()
    with watchdog:
        await asyncio.sleep(0)
    await asyncio.sleep(IDLE * 3)  # the consumer holds the chunk: nothing fires here
    with watchdog:
        await asyncio.sleep(IDLE / 5)
    watchdog.close()


async def test_the_deadline_bounds_a_wait_the_idle_timeout_would_allow() -> None:
    watchdog = StreamWatchdog(idle=60.0, deadline=asyncio.get_running_loop().time() + IDLE)
    with pytest.raises(TimeoutError), watchdog:
        await asyncio.sleep(IDLE * 4)
    watchdog.close()


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    watchdog = _watchdog()

    async def wait() -> None:
        with watchdog:
            await asyncio.sleep(IDLE * 4)

    task = asyncio.create_task(wait())
    await asyncio.sleep(IDLE / 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    watchdog.close()


async def test_a_closed_watchdog_leaves_no_timer_behind() -> None:
    watchdog = _watchdog()
    with watchdog:
        await asyncio.sleep(0)
    watchdog.close()
    await asyncio.sleep(IDLE * 2)  # its timer would have gone off by now; nothing happens


async def test_an_idle_timeout_well_before_the_deadline_expires_as_the_streams_own() -> None:
    watchdog = _watchdog()
    with pytest.raises(TimeoutError), watchdog:
        await asyncio.sleep(IDLE * 4)
    watchdog.close()
    assert watchdog.expired is not None
    assert not watchdog.expired.callers


async def test_an_idle_timeout_a_hair_before_the_deadline_expires_as_the_callers() -> None:
    # The idle limit falls a millisecond before the caller's deadline: the caller's time ran out.
    watchdog = _watchdog(deadline_in=IDLE + 0.001)
    with pytest.raises(TimeoutError), watchdog:
        await asyncio.sleep(IDLE * 4)
    watchdog.close()
    assert watchdog.expired is not None
    assert watchdog.expired.callers
