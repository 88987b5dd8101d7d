"""The OpenAI adapter's streams against a loopback fake of the Chat Completions API."""

from __future__ import annotations

import pytest

from providers.errors import (
    StreamInterruptedError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.openai import SPEC, OpenAIProvider
from providers.types import Finish, Meta, StreamEvent, TextDelta, Usage
from tests.contract.harness import Vendor, chat, collect, deltas, finish, hello
from tests.fakes.openai_server import FakeOpenAI, Fault

KEY = "sk-test-0123456789abcdefSECRET"
HELLO = hello("gpt-4o-mini")
VENDOR = Vendor(FakeOpenAI, SPEC, name="openai-main", keys=(KEY,))


# -- whole streams ---------------------------------------------------------------------------


async def test_stream_request_asks_for_usage_in_the_stream(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    await collect(provider, HELLO, [])
    body = fake.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_stream_yields_its_id_and_model_then_deltas_then_one_finish_with_usage(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    events = await collect(provider, HELLO)
    head, *content, _ = events
    assert isinstance(head, Meta)
    assert head.id.startswith("chatcmpl-")
    assert head.model == "gpt-4o-mini"
    assert content == [TextDelta(text) for text in fake.deltas]
    assert finish(events) == Finish(
        "stop", Usage(prompt_tokens=12, completion_tokens=5, total_tokens=17, cached_tokens=4)
    )


async def test_stream_from_a_server_without_stream_usage_ends_with_usage_none(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.stream_usage = False
    events = await collect(provider, HELLO)
    assert finish(events) == Finish("stop", None)


# -- broken streams --------------------------------------------------------------------------


async def test_stream_cut_without_done_raises_after_the_earlier_deltas(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(break_after=2, break_with="cut"))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError):
        await collect(provider, HELLO, chunks)
    assert deltas(chunks) == fake.deltas[:2]


async def test_stream_ending_cleanly_without_done_raises(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(break_after=99, break_with="eof"))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError, match=r"without \[DONE\]"):
        await collect(provider, HELLO, chunks)
    assert deltas(chunks) == fake.deltas


async def test_error_event_mid_stream_interrupts_the_stream(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(break_after=2, break_with="error_event", error_type="server_error"))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError, match="type=server_error"):
        await collect(provider, HELLO, chunks)
    assert len(deltas(chunks)) == 2


async def test_error_event_before_any_chunk_raises_the_mapped_error(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(break_after=0, break_with="error_event", error_type="rate_limit_exceeded"))
    with pytest.raises(UpstreamRateLimitedError):
        await collect(provider, HELLO, [])


async def test_stream_answered_with_an_http_error_raises_before_any_chunk(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(status=503))
    chunks: list[StreamEvent] = []
    with pytest.raises(UpstreamUnavailableError) as caught:
        await collect(provider, HELLO, chunks)
    assert chunks == []
    assert not isinstance(caught.value, StreamInterruptedError)


async def test_stalled_stream_after_first_chunk_raises_interrupted(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(chunk_delay=0.3))
    request = chat("m", *HELLO.messages, timeout=0.5)
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError, match="timed out"):
        await collect(provider, request, chunks)
    assert 1 <= len(deltas(chunks)) < len(fake.deltas)
