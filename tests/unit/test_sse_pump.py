"""The SSE pump: events rendered while the writer is busy leave in one write, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.errors import Code, ProviderError, ServiceUnavailableError
from gateway.pipeline.types import StreamHead, StreamItem
from gateway.transports.sse import Pump
from providers.types import TextDelta


async def burst(count: int, read: list[int], fail: bool = False) -> AsyncIterator[StreamItem]:
    yield StreamHead("c", "m", "openai")
    for i in range(count):
        read.append(i)
        yield TextDelta(f"d{i} ")
    if fail:
        raise ProviderError("cut", code=Code.UNAVAILABLE, provider="openai")


async def test_events_that_arrive_together_leave_in_one_batch() -> None:
    read: list[int] = []
    pump = Pump(burst(20, read))
    data = await pump.take()
    await pump.aclose()
    assert pump.finished  # the pump finished before the writer woke: all of it in one take
    assert pump.error is None
    assert data.count(b"data: ") == 20
    assert data.index(b"d0 ") < data.index(b"d19 ")


async def test_an_error_comes_after_the_events_before_it() -> None:
    read: list[int] = []
    pump = Pump(burst(3, read, fail=True))
    data = await pump.take()
    while not pump.finished:
        data += await pump.take()
    await pump.aclose()
    assert isinstance(pump.error, ProviderError)
    assert data.count(b"data: ") == 3


async def test_a_slow_writer_stops_the_pump_at_the_limit() -> None:
    read: list[int] = []
    pump = Pump(burst(1000, read), limit=200)
    await asyncio.sleep(0.01)  # the writer has not taken anything yet
    assert 1 <= len(read) < 20  # it stopped reading once more than 200 bytes waited
    first = await pump.take()
    await asyncio.sleep(0.01)
    assert first.count(b"data: ") == len(first.split(b"\n\n")) - 1
    assert len(read) < 40  # room for one more batch, then it waits again
    await pump.aclose()
    assert pump.error is None  # closed by the writer: not an error of the stream


async def test_a_pump_cut_while_it_waits_for_the_writer_ends_the_stream_unavailable() -> None:
    read: list[int] = []
    pump = Pump(burst(1000, read), limit=200)
    await asyncio.sleep(0.01)  # waiting for room
    pump._task.cancel()  # what the shutdown's cut does to the task driving the call
    await asyncio.wait([pump._task])
    assert pump.finished
    assert isinstance(pump.error, ServiceUnavailableError)
    assert "shutting down" in pump.error.message
