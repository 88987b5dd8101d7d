"""A Server-Sent Events reader for provider adapters.

Vendors stream completions as `text/event-stream` (OpenAI, Anthropic, Cohere...). This module
turns the body into events following the WHATWG rules that matter to an API client: `data:`
lines accumulate (joined by newlines) until a blank line dispatches the event, `event:` names
it, a leading space after the colon is dropped, comment lines (starting with `:`) and unknown
fields are ignored, and LF or CRLF line endings are accepted (lines are split on LF, so a bare
CR inside a line is not a line break here).

The reader takes the body as byte pieces of any size, as they arrive (`response.content.
iter_any()`): one wait per network read rather than per line, and lines (so UTF-8 characters)
split across reads are joined before they are looked at. Data stays `bytes` because every
consumer hands it straight to `orjson.loads`, which takes bytes without a decode step.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Final

from providers.wire import MalformedReplyError

#: The event type of an event that has no `event:` field.
DEFAULT_EVENT = "message"
#: The longest line accepted: a vendor stream that goes on without a line break is broken.
MAX_LINE_BYTES: Final = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type and its data (the `data:` lines joined by newlines)."""

    data: bytes
    event: str = DEFAULT_EVENT


class _EventParser:
    """Splits pieces of a body into lines and lines into events."""

    def __init__(self) -> None:
        self._partial = b""  # the start of a line whose end has not arrived yet
        self._data: list[bytes] = []
        self._event = DEFAULT_EVENT

    def feed(self, piece: bytes) -> Iterator[SSEEvent]:
        """The events that `piece` completes."""
        lines = piece.split(b"\n")
        if self._partial:
            lines[0] = self._partial + lines[0]
        self._partial = lines.pop()  # what follows the last LF: not a whole line yet
        if len(self._partial) > MAX_LINE_BYTES:
            raise MalformedReplyError(f"stream line longer than {MAX_LINE_BYTES} bytes")
        for line in lines:
            if line.startswith(b"data: "):  # nearly every line that is not blank: no call
                self._data.append(line[6:-1] if line.endswith(b"\r") else line[6:])
                continue
            event = self._line(line[:-1] if line.endswith(b"\r") else line)
            if event is not None:
                yield event

    def close(self) -> Iterator[SSEEvent]:
        """The event still pending at the end of the body, if its last line was complete.

        Some servers omit the final blank line; a last line with no line ending at all (a bare
        CR counts as one here) is a cut, and dropped with its event.
        """
        partial = self._partial
        if partial.endswith(b"\r"):
            event = self._line(partial[:-1])
            if event is not None:
                yield event
            partial = b""
        if self._data and not partial:
            yield SSEEvent(b"\n".join(self._data), self._event)

    def _line(self, line: bytes) -> SSEEvent | None:
        """Take one line (without its ending); the event it dispatches, if any."""
        if not line:
            event = SSEEvent(b"\n".join(self._data), self._event) if self._data else None
            self._data, self._event = [], DEFAULT_EVENT
            return event
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace") or DEFAULT_EVENT
        return None


async def iter_sse_events(body: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Yield the events of an SSE body given as byte pieces (such as `content.iter_any()`).

    Pieces may split lines anywhere; whole lines (such as iterating `response.content`) work
    too. An event still pending when the body ends is dispatched if its last line was complete;
    an unterminated last line is a cut and dropped. Deciding whether the stream ended properly
    is the caller's job: that is vendor-specific. A line longer than `MAX_LINE_BYTES` raises
    `MalformedReplyError`.
    """
    parser = _EventParser()
    async for piece in body:
        for event in parser.feed(piece):
            yield event
    for event in parser.close():
        yield event
