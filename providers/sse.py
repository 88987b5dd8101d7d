"""A Server-Sent Events reader for provider adapters.

Vendors stream completions as `text/event-stream` (OpenAI, Anthropic, Cohere...). This module
turns the body's lines into events following the WHATWG rules that matter to an API client:
`data:` lines accumulate (joined by newlines) until a blank line dispatches the event, `event:`
names it, a leading space after the colon is dropped, comment lines (starting with `:`) and
unknown fields are ignored, and LF or CRLF line endings are accepted (the lines come from
`readline`, which splits on LF, so a bare CR inside a line is not a line break here).

The reader consumes whole lines (as `aiohttp.StreamReader` yields them), so a multi-byte UTF-8
character split across network reads arrives intact. Data stays `bytes` because every consumer
hands it straight to `orjson.loads`, which takes bytes without a decode step.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

#: The event type of an event that has no `event:` field.
DEFAULT_EVENT = "message"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type and its data (the `data:` lines joined by newlines)."""

    data: bytes
    event: str = DEFAULT_EVENT


def _strip_line_ending(line: bytes) -> tuple[bytes, bool]:
    """Return the line without its terminator, and whether it had one."""
    if line.endswith(b"\n"):
        line = line[:-1]
        return (line[:-1] if line.endswith(b"\r") else line), True
    if line.endswith(b"\r"):
        return line[:-1], True
    return line, False


async def iter_sse_events(lines: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Yield the events of an SSE body given as an iterable of lines (such as `response.content`).

    An event still pending when the body ends is dispatched if its last line was complete
    (some servers omit the final blank line); an unterminated last line is a cut and dropped.
    Deciding whether the stream ended properly is the caller's job: that is vendor-specific.
    """
    data: list[bytes] = []
    event = DEFAULT_EVENT
    complete = True
    async for raw in lines:
        line, complete = _strip_line_ending(raw)
        if not complete:
            break
        if not line:
            if data:
                yield SSEEvent(b"\n".join(data), event)
            data, event = [], DEFAULT_EVENT
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace") or DEFAULT_EVENT
    if data and complete:
        yield SSEEvent(b"\n".join(data), event)
