"""The Gemini adapter's streams against a loopback fake of the Gemini API.

A Gemini stream has no [DONE]: it ends normally only when the body ends after a chunk that
carries a `finishReason`.
"""

from __future__ import annotations

import pytest

from providers.errors import (
    StreamInterruptedError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.gemini import SPEC, GeminiProvider
from providers.types import Finish, Meta, ReasoningDelta, StreamEvent, TextDelta, Usage
from tests.contract.harness import Vendor, collect, deltas, finish, folded, hello
from tests.fakes.base import StreamBreak
from tests.fakes.gemini_server import FakeGemini, Fault

KEY = "AIzaSy-test-0123456789SECRET"
MODEL = "gemini-2.5-flash"
HELLO = hello(MODEL)
VENDOR = Vendor(FakeGemini, SPEC, name="gemini-main", keys=(KEY,))


def sse_body(*chunks: bytes) -> bytes:
    return b"".join(b"data: " + c + b"\r\n\r\n" for c in chunks)


# -- whole streams ---------------------------------------------------------------------------


async def test_stream_yields_deltas_then_one_final_chunk_with_the_last_usage(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.thought, fake.thoughts_tokens = "Thinking first.", 3
    events = await collect(provider, HELLO)
    head, thought, *content, _ = events
    assert (head, thought) == (Meta("fake-response-1", MODEL), ReasoningDelta("Thinking first."))
    assert content == [TextDelta(text) for text in fake.deltas]
    usage = Usage(12, 5 + 3, 12 + 5 + 3, cached_tokens=4, reasoning_tokens=3)
    assert finish(events) == Finish("stop", usage)


async def test_stream_takes_text_and_finish_reason_from_the_same_chunk(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    usage = b'"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}'
    last = (
        b'{"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS"}], '
    )
    body = sse_body(
        b'{"candidates": [{"content": {"parts": [{"text": "a"}]}}]}', last + usage + b"}"
    )
    fake.fail_next(Fault(raw_body=body))
    events = await collect(provider, HELLO)
    head, *rest = events
    assert rest == [TextDelta("a"), TextDelta("b"), Finish("length", Usage(3, 2, 5))]
    assert isinstance(head, Meta)
    assert head.id.startswith("gemini-")
    assert folded(events).id == head.id


async def test_stream_safety_stop_after_text_ends_with_content_filter(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.finish_reason = "SAFETY"
    events = await collect(provider, HELLO)
    assert "".join(deltas(events)) == "Hello from fake Gemini"
    assert finish(events).reason == "content_filter"


# -- broken streams --------------------------------------------------------------------------


@pytest.mark.parametrize(("after", "how"), [(0, "eof"), (2, "eof"), (99, "eof"), (2, "cut")])
async def test_stream_ending_without_a_finish_reason_raises_after_the_deltas(
    provider: GeminiProvider, fake: FakeGemini, after: int, how: StreamBreak
) -> None:
    fake.fail_next(Fault(break_after=after, break_with=how))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError):
        await collect(provider, HELLO, chunks)
    assert deltas(chunks) == fake.deltas[:after]


@pytest.mark.parametrize(("how", "kind"), [("malformed", "malformed"), ("error_event", "INTERNAL")])
async def test_bad_frame_after_the_first_chunk_interrupts_the_stream(
    provider: GeminiProvider, fake: FakeGemini, how: StreamBreak, kind: str
) -> None:
    fake.fail_next(Fault(break_after=1, break_with=how, error_message=f"oops {KEY}"))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError, match=kind) as caught:
        await collect(provider, HELLO, chunks)
    assert len(deltas(chunks)) == 1
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("how", "error"),
    [("malformed", UpstreamUnavailableError), ("error_event", UpstreamRateLimitedError)],
)
async def test_bad_frame_before_any_chunk_raises_the_mapped_error_not_interrupted(
    provider: GeminiProvider, fake: FakeGemini, how: StreamBreak, error: type[UpstreamError]
) -> None:
    fake.fail_next(Fault(break_after=0, break_with=how, error_type="RESOURCE_EXHAUSTED"))
    with pytest.raises(error) as caught:
        await collect(provider, HELLO)
    assert type(caught.value) is error
