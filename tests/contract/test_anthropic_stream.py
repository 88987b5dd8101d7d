"""The Anthropic adapter's streams against a loopback fake of the Messages API."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from providers.anthropic import SPEC, AnthropicProvider
from providers.errors import (
    StreamInterruptedError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.types import Finish, Meta, StreamEvent, TextDelta, Usage
from tests.contract.harness import Vendor, collect, deltas, finish, hello
from tests.fakes.anthropic_server import FakeAnthropic, FakeUsage, Fault
from tests.fakes.base import StreamBreak, sse

KEY = "sk-ant-test-0123456789abcdefSECRET"
HELLO = hello("claude-sonnet-4-5")
VENDOR = Vendor(FakeAnthropic, SPEC, name="claude", keys=(KEY,))
START: dict[str, object] = {
    "type": "message_start",
    "message": {"id": "msg_1", "model": "m", "content": []},
}
PING: dict[str, object] = {"type": "ping"}


def raw_stream(*events: Mapping[str, object]) -> Fault:
    """A 200 answer whose body is exactly these named events, then message_stop."""
    frames = [sse(e, str(e["type"])) for e in (*events, {"type": "message_stop"})]
    return Fault(raw_body=b"".join(frames))


def delta(text: str, kind: str = "text_delta", key: str = "text") -> dict[str, object]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": kind, key: text}}


# -- whole streams ---------------------------------------------------------------------------


async def test_stream_yields_deltas_then_one_final_chunk_with_all_usage(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.usage = FakeUsage(50, 9, cached_tokens=20, cache_creation_tokens=5)
    events = await collect(provider, HELLO)  # the fake sends a ping before the deltas
    head, *content, _ = events
    assert isinstance(head, Meta)
    assert head.id.startswith("msg_")
    assert head.model == "claude-sonnet-4-5"
    assert content == [TextDelta(text) for text in fake.deltas]
    # Input and cache counts come from message_start, the output count from message_delta.
    assert finish(events) == Finish("stop", Usage(50, 9, 59, 20, 5))


async def test_stream_ignores_pings_unknown_events_and_non_text_deltas(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    thinking = delta("hmm", "thinking_delta", "thinking")
    tool_input = delta('{"a": 1', "input_json_delta", "partial_json")
    future: dict[str, object] = {"type": "some_future_event", "data": 1}
    events = [PING, START, PING, thinking, future, delta("Hi"), tool_input, delta(" there")]
    fake.fail_next(raw_stream(*events))
    assert deltas(await collect(provider, HELLO)) == ["Hi", " there"]


async def test_stream_takes_input_counts_repeated_in_message_delta(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 3}}}
    late = {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 2}
    fake.fail_next(raw_stream(start, {"type": "message_delta", "delta": {}, "usage": late}))
    assert finish(await collect(provider, HELLO)).usage == Usage(14, 2, 16, 4, 0)


# -- broken streams --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["eof", "cut"])
async def test_stream_ending_without_message_stop_is_interrupted(
    provider: AnthropicProvider, fake: FakeAnthropic, how: StreamBreak
) -> None:
    fake.fail_next(Fault(break_after=2, break_with=how))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError):
        await collect(provider, HELLO, chunks)
    assert deltas(chunks) == fake.deltas[:2]


@pytest.mark.parametrize(
    ("break_with", "error_type", "kind"),
    [
        ("error_event", "", UpstreamUnavailableError),  # the fake's overloaded_error
        ("error_event", "rate_limit_error", UpstreamRateLimitedError),
        ("malformed", "", UpstreamUnavailableError),
    ],
)
async def test_failure_before_the_first_chunk_is_mapped_not_interrupted(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    break_with: StreamBreak,
    error_type: str,
    kind: type[UpstreamError],
) -> None:
    fake.fail_next(Fault(break_after=0, break_with=break_with, error_type=error_type))
    with pytest.raises(kind) as caught:
        await collect(provider, HELLO)
    assert not isinstance(caught.value, StreamInterruptedError)


@pytest.mark.parametrize("break_with", ["error_event", "malformed"])
async def test_failure_after_the_first_chunk_interrupts_the_stream(
    provider: AnthropicProvider, fake: FakeAnthropic, break_with: StreamBreak
) -> None:
    fake.fail_next(Fault(break_after=1, break_with=break_with))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError, match=r"overloaded_error|malformed"):
        await collect(provider, HELLO, chunks)
    assert len(deltas(chunks)) == 1
