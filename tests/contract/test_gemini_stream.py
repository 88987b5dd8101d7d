"""The Gemini adapter's streams against a loopback fake of the Gemini API.

A Gemini stream has no [DONE]: it ends normally only when the body ends after a chunk that
carries a `finishReason`.
"""

from __future__ import annotations

import pytest

from gateway.errors import (
    StreamInterruptedError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.base import ChatChunk, Usage
from providers.gemini import SPEC, GeminiProvider
from tests.contract.harness import Vendor, collect, hello
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
    *deltas, final = await collect(provider, HELLO)
    assert [c.delta for c in deltas] == fake.deltas
    assert all(c.finish_reason is None and c.usage is None for c in deltas)
    assert all((c.id, c.model) == ("fake-response-1", MODEL) for c in [*deltas, final])
    assert (final.delta, final.finish_reason) == ("", "stop")
    assert final.usage == Usage(12, 5 + 3, 12 + 5 + 3, cached_tokens=4)


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
    chunks = await collect(provider, HELLO)
    assert [(c.delta, c.finish_reason) for c in chunks] == [
        ("a", None),
        ("b", None),
        ("", "length"),
    ]
    assert chunks[-1].usage == Usage(3, 2, 5)
    assert chunks[0].id.startswith("gemini-")
    assert chunks[0].id == chunks[-1].id


async def test_stream_safety_stop_after_text_ends_with_content_filter(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.finish_reason = "SAFETY"
    *deltas, final = await collect(provider, HELLO)
    assert "".join(c.delta for c in deltas) == "Hello from fake Gemini"
    assert final.finish_reason == "content_filter"


# -- broken streams --------------------------------------------------------------------------


@pytest.mark.parametrize(("after", "how"), [(0, "eof"), (2, "eof"), (99, "eof"), (2, "cut")])
async def test_stream_ending_without_a_finish_reason_raises_after_the_deltas(
    provider: GeminiProvider, fake: FakeGemini, after: int, how: StreamBreak
) -> None:
    fake.fail_next(Fault(break_after=after, break_with=how))
    chunks: list[ChatChunk] = []
    with pytest.raises(StreamInterruptedError):
        await collect(provider, HELLO, chunks)
    assert [c.delta for c in chunks] == fake.deltas[:after]


@pytest.mark.parametrize(("how", "kind"), [("malformed", "malformed"), ("error_event", "INTERNAL")])
async def test_bad_frame_after_the_first_chunk_interrupts_the_stream(
    provider: GeminiProvider, fake: FakeGemini, how: StreamBreak, kind: str
) -> None:
    fake.fail_next(Fault(break_after=1, break_with=how, error_message=f"oops {KEY}"))
    chunks: list[ChatChunk] = []
    with pytest.raises(StreamInterruptedError, match=kind) as caught:
        await collect(provider, HELLO, chunks)
    assert len(chunks) == 1
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
