"""The Cohere adapter's streams against a loopback fake of the v2 Chat API."""

from __future__ import annotations

import pytest

from providers.cohere import SPEC, CohereProvider
from providers.errors import StreamInterruptedError, UpstreamUnavailableError
from providers.types import Finish, Meta, StreamEvent, TextDelta, Usage
from tests.contract.harness import Vendor, collect, deltas, finish, hello
from tests.fakes.base import StreamBreak, sse
from tests.fakes.cohere_server import FakeCohere, Fault

KEY = "co-test-0123456789abcdefSECRET"
HELLO = hello("command-a-03-2025")
VENDOR = Vendor(FakeCohere, SPEC, name="cohere-main", keys=(KEY,))
#: How a stream breaks after its start, and what the error then says.
BROKEN_STREAMS = [("malformed", "malformed reply"), ("error_event", "finish_reason ERROR")]


# -- whole streams ---------------------------------------------------------------------------


async def test_stream_yields_deltas_then_one_final_chunk_with_finish_reason_and_usage(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.finish_reason = "MAX_TOKENS"
    events = await collect(provider, HELLO)
    head, *content, _ = events
    assert head == Meta(fake.reply_id, "command-a-03-2025")
    assert content == [TextDelta(text) for text in fake.deltas]
    assert finish(events) == Finish("length", Usage(12, 5, 17, cached_tokens=4))


@pytest.mark.parametrize(
    ("event_lines", "type_fields", "done_marker"),
    [(False, True, False), (True, False, False), (True, True, True)],
    ids=["type-field-only", "event-line-only", "done-after-message-end"],
)
async def test_stream_is_read_whichever_way_events_are_typed(
    provider: CohereProvider, fake: FakeCohere, event_lines: bool, type_fields: bool,
    done_marker: bool,
) -> None:  # fmt: skip
    fake.event_lines, fake.type_fields, fake.done_marker = event_lines, type_fields, done_marker
    chunks: list[StreamEvent] = []
    await collect(provider, HELLO, chunks)
    assert "".join(deltas(chunks)) == fake.reply
    assert finish(chunks).reason == "stop"


async def test_stream_ignores_citation_debug_and_unknown_events(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.extra_events = [
        fake.event("citation-start", {"index": 0, "delta": {"message": {"citations": {}}}}),
        fake.event("citation-end", {"index": 0}),
        fake.event("debug", {"prompt": "secret prompt"}),
        fake.event("something-new", {"delta": {"message": {"content": {"text": "no"}}}}),
    ]
    chunks: list[StreamEvent] = []
    await collect(provider, HELLO, chunks)
    assert deltas(chunks) == fake.deltas
    assert finish(chunks).reason == "stop"


# -- broken streams --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["eof", "cut"])
async def test_stream_ending_without_message_end_raises_interrupted(
    provider: CohereProvider, fake: FakeCohere, how: StreamBreak
) -> None:
    fake.fail_next(Fault(break_after=2, break_with=how))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError):
        await collect(provider, HELLO, chunks)
    assert deltas(chunks) == fake.deltas[:2]


@pytest.mark.parametrize(("how", "said"), BROKEN_STREAMS)
async def test_broken_stream_after_the_first_chunk_raises_interrupted(
    provider: CohereProvider, fake: FakeCohere, how: StreamBreak, said: str
) -> None:
    fake.fail_next(Fault(break_after=1, break_with=how))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError, match=said):
        await collect(provider, HELLO, chunks)
    assert len(deltas(chunks)) == 1


@pytest.mark.parametrize(("how", "said"), BROKEN_STREAMS)
async def test_broken_stream_before_any_chunk_raises_unavailable_not_interrupted(
    provider: CohereProvider, fake: FakeCohere, how: StreamBreak, said: str
) -> None:
    fake.fail_next(Fault(break_after=0, break_with=how))
    with pytest.raises(UpstreamUnavailableError, match=said) as caught:
        await collect(provider, HELLO, [])
    assert not isinstance(caught.value, StreamInterruptedError)


async def test_text_a_content_start_carries_is_not_lost(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    def item(kind: str, text: str) -> bytes:
        content = {"type": "text", "text": text} if kind == "content-start" else {"text": text}
        return sse({"type": kind, "index": 0, "delta": {"message": {"content": content}}}, kind)

    end = {"type": "message-end", "delta": {"finish_reason": "COMPLETE"}}
    body = item("content-start", "Hi") + item("content-delta", " there") + sse(end, "message-end")
    fake.fail_next(Fault(raw_body=body))
    chunks = await collect(provider, HELLO)
    assert deltas(chunks) == ["Hi", " there"]
    assert finish(chunks) == Finish("stop", None)
