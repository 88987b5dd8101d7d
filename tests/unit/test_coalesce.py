"""Stream coalescing: what waited while the transport was busy leaves merged, nothing waits idle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from gateway.errors import Code, ProviderError, ServiceUnavailableError
from gateway.pipeline.coalesce import Batch, Coalescer
from gateway.pipeline.types import Answer, Done, StreamHead, StreamItem
from gateway.transports.coalesced import batch_message, merging
from gateway.transports.proto_convert import StreamMessages
from providers.types import Completion, ReasoningDelta, TextDelta, ToolCallDelta, Usage

HEAD = StreamHead("c1", "m", "openai")
ANSWER = Answer(Completion("c1", "m", "ab", "stop", Usage(3, 2, 5)), "openai", 0.25)


async def items(*sent: StreamItem, fail: bool = False) -> AsyncGenerator[StreamItem, None]:
    for item in sent:
        yield item
    if fail:
        raise ProviderError("cut", code=Code.UNAVAILABLE, provider="openai")


#: A stream's first delta always leaves alone; the tests of merging put this one first.
FIRST = TextDelta("first ")


async def drain(stream: Coalescer) -> list[Batch]:
    batches: list[Batch] = []
    while not stream.finished:
        batches += await stream.take()
    await stream.aclose()
    return batches


async def test_a_burst_sends_its_first_delta_alone_and_the_rest_as_one_batch() -> None:
    sent = [TextDelta(f"d{i} ") for i in range(20)]
    stream = Coalescer(items(HEAD, *sent, Done(ANSWER)))
    first = await stream.take()  # handed over before the reader took in the rest
    assert [(b.head, b.text, b.done) for b in first] == [(HEAD, "d0 ", None)]
    rest = await stream.take()
    assert stream.finished  # the rest came before the transport woke again: one batch
    await stream.aclose()
    assert len(rest) == 1
    assert rest[0].text == "".join(d.text for d in sent[1:])
    assert rest[0].head == HEAD
    assert rest[0].done == Done(ANSWER)


async def test_tool_call_fragments_join_per_index_keeping_the_first_id_and_name() -> None:
    stream = Coalescer(
        items(
            HEAD,
            FIRST,
            ToolCallDelta(0, "call_a", "get_weather", '{"ci'),
            ToolCallDelta(1, "call_b", "get_time", "{"),
            ToolCallDelta(0, "", "", 'ty": "Oslo"}'),
            ToolCallDelta(1, "", "", "}"),
        )
    )
    _, batch = await drain(stream)
    assert batch.tool_call_deltas == [
        ToolCallDelta(0, "call_a", "get_weather", '{"city": "Oslo"}'),
        ToolCallDelta(1, "call_b", "get_time", "{}"),
    ]


async def test_reasoning_text_joins_and_reasoning_state_alone_sends_nothing() -> None:
    stream = Coalescer(
        items(
            HEAD,
            FIRST,
            ReasoningDelta("think "),
            ReasoningDelta(signature="sig"),
            ReasoningDelta("more"),
        )
    )
    _, batch = await drain(stream)
    assert (batch.reasoning, batch.text) == ("think more", "")
    only_state = Coalescer(items(HEAD, ReasoningDelta(signature="sig")))
    assert await drain(only_state) == []


async def test_a_new_head_starts_a_new_batch() -> None:
    other = StreamHead("c2", "m2", "openai")
    stream = Coalescer(items(HEAD, TextDelta("a"), other, TextDelta("b"), TextDelta("c")))
    batches = await drain(stream)
    assert [(b.head, b.text) for b in batches] == [(HEAD, "a"), (other, "bc")]


async def test_opted_out_every_item_is_a_batch_of_its_own() -> None:
    sent: list[StreamItem] = [TextDelta("a"), ToolCallDelta(0, "x", "f", "{}"), TextDelta("b")]
    stream = Coalescer(items(HEAD, *sent, Done(ANSWER)), merge=False)
    batches = await drain(stream)
    messages = StreamMessages()
    messages.message(HEAD)
    # The very messages each item always made.
    expected = [messages.message(item) for item in [*sent, Done(ANSWER)]]
    assert [batch_message(b) for b in batches] == expected


async def test_an_idle_stream_hands_each_delta_over_at_once() -> None:
    gate = asyncio.Event()

    async def paced() -> AsyncGenerator[StreamItem, None]:
        yield HEAD
        yield TextDelta("first")
        await gate.wait()  # the upstream sends more only after the first delta went out
        yield TextDelta("second")
        yield Done(ANSWER)

    stream = Coalescer(paced())
    async with asyncio.timeout(1):
        first = await stream.take()  # would hang if the coalescer held the delta back
    assert [b.text for b in first] == ["first"]
    gate.set()
    rest = await drain(stream)
    assert [(b.text, b.done) for b in rest] == [("second", Done(ANSWER))]


async def test_an_error_mid_batch_comes_after_the_deltas_before_it() -> None:
    stream = Coalescer(items(HEAD, FIRST, TextDelta("a"), TextDelta("b"), fail=True))
    batches = await drain(stream)
    assert [b.text for b in batches] == ["first ", "ab"]
    assert isinstance(stream.error, ProviderError)


async def test_an_unexpected_error_ends_the_stream_internal() -> None:
    async def broken() -> AsyncGenerator[StreamItem, None]:
        yield TextDelta("a")
        raise RuntimeError("bug")

    stream = Coalescer(broken())
    batches = await drain(stream)
    assert [b.text for b in batches] == ["a"]
    assert stream.error is not None
    assert stream.error.code == Code.INTERNAL


async def test_closing_mid_stream_closes_the_upstream_and_is_no_error() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[StreamItem, None]:
        try:
            while True:
                yield TextDelta("x")
                await asyncio.sleep(0)
        finally:
            closed.set()

    stream = Coalescer(endless())
    await stream.take()
    await stream.aclose()
    assert closed.is_set()
    assert stream.finished
    assert stream.error is None


async def test_a_slow_transport_stops_the_reading_at_the_limit() -> None:
    read: list[int] = []

    async def burst() -> AsyncGenerator[StreamItem, None]:
        for i in range(1000):
            read.append(i)
            yield TextDelta("0123456789")

    stream = Coalescer(burst(), limit=200)
    await asyncio.sleep(0.01)  # the transport has taken nothing yet
    assert 20 <= len(read) < 25  # it stopped once more than 200 characters waited
    (first,) = await stream.take()
    assert len(first.text) == 10 * len(read)
    await asyncio.sleep(0.01)
    assert len(read) < 50  # room for one more batch, then it waits again
    await stream.aclose()
    assert stream.error is None


async def test_a_cut_while_waiting_for_the_transport_ends_the_stream_unavailable() -> None:
    async def burst() -> AsyncGenerator[StreamItem, None]:
        while True:
            yield TextDelta("0123456789")

    stream = Coalescer(burst(), limit=200)
    await asyncio.sleep(0.01)  # waiting for room
    stream._task.cancel()  # what the shutdown's cut does to the task driving the call
    await asyncio.wait([stream._task])
    assert stream.finished
    assert isinstance(stream.error, ServiceUnavailableError)
    assert "shutting down" in stream.error.message


def test_a_merged_batch_with_the_end_is_one_last_message() -> None:
    batch = Batch(HEAD)
    for item in (TextDelta("a"), ReasoningDelta("r"), ToolCallDelta(0, "x", "f", "{}")):
        batch.add(item)
    batch.add(Done(ANSWER))
    message = batch_message(batch)
    assert (message.delta, message.reasoning_delta) == ("a", "r")
    assert [(d.index, d.id, d.name, d.arguments) for d in message.tool_call_deltas] == [
        (0, "x", "f", "{}")
    ]
    assert (message.finish_reason, message.usage.total_tokens, message.cost_usd) == (
        "stop",
        5,
        0.25,
    )


def test_only_off_opts_out() -> None:
    assert [merging(v) for v in (None, "on", "", "OFF", " off ")] == [
        True,
        True,
        True,
        False,
        False,
    ]
