"""The SSE reader: the same events however the body is cut into pieces, by the WHATWG rules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from providers import sse
from providers.sse import SSEEvent, iter_sse_events
from providers.wire import MalformedReplyError

BODY = (
    b": a comment\n"
    b"data: first\n"
    b"\n"
    b"event: content_block_delta\r\n"
    b'data: {"text": "h\xc3\xa9"}\r\n'
    b"id: 7\r\n"
    b"\r\n"
    b"data:two\n"
    b"data:  lines\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EVENTS = [
    SSEEvent(b"first"),
    SSEEvent(b'{"text": "h\xc3\xa9"}', "content_block_delta"),
    SSEEvent(b"two\n lines"),
    SSEEvent(b"[DONE]"),
]


async def _pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _events(pieces: AsyncIterator[bytes]) -> list[SSEEvent]:
    return [event async for event in iter_sse_events(pieces)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(BODY)])
async def test_the_events_are_the_same_however_the_body_is_cut(size: int) -> None:
    assert await _events(_pieces(BODY, size)) == EVENTS


async def test_whole_lines_as_pieces_give_the_same_events() -> None:
    async def lines() -> AsyncIterator[bytes]:
        for line in BODY.splitlines(keepends=True):
            yield line

    assert await _events(lines()) == EVENTS


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        (b"data: last\n", [SSEEvent(b"last")]),  # no final blank line: still dispatched
        (b"data: last\r", [SSEEvent(b"last")]),  # a bare CR ends the body's last line
        (b"data: last\n\r", [SSEEvent(b"last")]),
        (b"data: last", []),  # cut mid-line: dropped
        (b"data: last\ndata: more", []),
    ],
)
async def test_an_event_pending_at_the_end_is_dispatched_only_if_its_last_line_is_whole(
    ending: bytes, expected: Sequence[SSEEvent]
) -> None:
    assert await _events(_pieces(b"data: first\n\n" + ending, 5)) == [
        SSEEvent(b"first"),
        *expected,
    ]


async def test_a_line_longer_than_the_limit_is_a_malformed_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sse, "MAX_LINE_BYTES", 100)
    with pytest.raises(MalformedReplyError):
        await _events(_pieces(b"data: ok\n\ndata: " + b"x" * 200, 16))
