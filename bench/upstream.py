"""A fast fake OpenAI upstream: `python -m bench.upstream --port 0 [--delay-ms N] [--pace-ms G]`.

It answers `POST /v1/chat/completions` with pre-built bytes: a `chat.completion` JSON body, or
(when the request body asks for `"stream": true`) a `text/event-stream` of 20 content chunks, a
finish chunk, a usage chunk and `data: [DONE]`. `GET /stats` returns how many completions it
served (the harness checks that a peer really reached it). It is a raw `asyncio.Protocol` on
uvloop speaking HTTP/1.1 with keep-alive, so a benchmark measures the gateway, not the fake.

A stream is sent in one write unless it is paced: then its 20 content chunks leave G ms apart
(the finish chunk, the usage chunk and `[DONE]` G ms after the last one), as a model streams.
`--pace-ms G` paces every stream; a request whose body holds `[pace G ms]` (in a message's
text, which a gateway passes on unchanged) is paced at G whatever the option says.

It prints one JSON line, `{"port": N}`, once it listens, and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from collections import deque
from collections.abc import Sequence
from typing import Final, cast

MODEL: Final = "gpt-4o-mini"
COMPLETION_ID: Final = "chatcmpl-bench0000000000000000000001"
CREATED: Final = 1_700_000_000
CHUNKS: Final = 20
USAGE: Final = {"prompt_tokens": 9, "completion_tokens": CHUNKS, "total_tokens": 9 + CHUNKS}
CONTENT: Final = "tok " * CHUNKS
MAX_HEAD: Final = 64 * 1024
MAX_BODY: Final = 8 * 1024 * 1024


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def unary_body() -> bytes:
    """A realistic non-streamed Chat Completions reply."""
    return _json(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": CONTENT, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "system_fingerprint": "fp_bench",
        }
    )


def stream_body() -> bytes:
    """The whole Server-Sent Events body of a streamed reply (usage chunk included)."""

    def chunk(choices: list[object], **extra: object) -> bytes:
        event = {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": choices,
            **extra,
        }
        return b"data: " + _json(event) + b"\n\n"

    parts = [
        chunk([{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}])
        for _ in range(CHUNKS)
    ]
    parts.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    parts.append(chunk([], usage=USAGE))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def _response(status: str, content_type: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def _chunked_parts(status: str, content_type: str, body: bytes) -> list[bytes]:
    """A streamed answer as OpenAI sends it (chunked transfer encoding, one chunk per event), in
    the writes a paced stream makes: the head with the first content event, each further
    content event, then the finish and usage events with `[DONE]` and the end of the body."""
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
        "cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    events = [event + b"\n\n" for event in body.split(b"\n\n") if event]
    chunks = [b"%x\r\n%s\r\n" % (len(event), event) for event in events]
    parts = chunks[:CHUNKS]
    parts[0] = head.encode() + parts[0]
    parts.append(b"".join(chunks[CHUNKS:]) + b"0\r\n\r\n")
    return parts


UNARY: Final = _response("200 OK", "application/json", unary_body())
STREAM_PARTS: Final = _chunked_parts("200 OK", "text/event-stream", stream_body())
STREAM: Final = b"".join(STREAM_PARTS)
_PACE: Final = re.compile(rb"\[pace (\d+(?:\.\d+)?) ?ms\]")
NOT_FOUND: Final = _response(
    "404 Not Found", "application/json", b'{"error":{"message":"not found","type":"bench"}}'
)
BAD_REQUEST: Final = _response(
    "400 Bad Request", "application/json", b'{"error":{"message":"bad request","type":"bench"}}'
)


class Counters:
    """What the fake served, for `GET /stats`."""

    def __init__(self) -> None:
        self.unary = 0
        self.streams = 0
        self.connections = 0


class _Request:
    """One parsed request: method, path, whether it wants a stream, whether to close after, and
    the pace its stream asked for (None: the server's)."""

    __slots__ = ("close", "method", "pace", "path", "stream")

    def __init__(
        self, method: bytes, path: bytes, stream: bool, close: bool, pace: float | None
    ) -> None:
        self.method, self.path, self.stream, self.close = method, path, stream, close
        self.pace = pace


def _wants_stream(body: bytes) -> bool:
    return b'"stream":true' in body or b'"stream": true' in body


def _asked_pace(body: bytes) -> float | None:
    """The gap between chunks (seconds) a `[pace G ms]` in the body asks for, if any."""
    match = _PACE.search(body)
    return float(match.group(1)) / 1000 if match else None


def _parse_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body from `start`; (body, end offset), or None if incomplete."""
    body = bytearray()
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";", 1)[0].strip() or b"0", 16)
        at = line_end + 2
        if size == 0:
            # Trailer section: ends with an empty line.
            end = buffer.find(b"\r\n\r\n", at - 2)
            return (bytes(body), end + 4) if end >= 0 else None
        if len(buffer) < at + size + 2:
            return None
        body += buffer[at : at + size]
        at += size + 2


#: In an outbox, in place of bytes: close the connection.
_CLOSE: Final = b""


class FakeOpenAI(asyncio.Protocol):
    """HTTP/1.1 keep-alive over a raw transport; requests are answered in arrival order.

    An answer that is neither delayed nor paced is written at once. Others go to the
    connection's outbox as (time, bytes) and leave when their time comes, never before what
    was queued ahead of them.
    """

    def __init__(self, counters: Counters, delay: float, pace: float) -> None:
        self._counters = counters
        self._delay = delay
        self._pace = pace
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._closing = False
        self._outbox: deque[tuple[float, bytes]] = deque()
        self._last_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._counters.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._outbox.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while not self._closing:
            try:
                request = self._next_request()
            except ValueError:
                self._send(BAD_REQUEST, close=True)
                return
            if request is None:
                return
            self._answer(request)

    def _next_request(self) -> _Request | None:
        buffer = self._buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buffer) > MAX_HEAD:
                raise ValueError("request head too large")
            return None
        lines = bytes(buffer[:head_end]).split(b"\r\n")
        method, path, version = lines[0].split(b" ", 2)
        length, chunked = 0, False
        close = version == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if length > MAX_BODY:
            raise ValueError("request body too large")
        if chunked:
            decoded = _parse_chunked(buffer, head_end + 4)
            if decoded is None:
                return None
            body, end = decoded
        else:
            end = head_end + 4 + length
            if len(buffer) < end:
                return None
            body = bytes(buffer[head_end + 4 : end])
        del buffer[:end]
        stream = _wants_stream(body)
        pace = _asked_pace(body) if stream else None
        return _Request(method, path.split(b"?", 1)[0], stream, close, pace)

    def _answer(self, request: _Request) -> None:
        gap = 0.0
        parts: Sequence[bytes]
        if request.method == b"POST" and request.path.endswith(b"/chat/completions"):
            if request.stream:
                self._counters.streams += 1
                gap = self._pace if request.pace is None else request.pace
                parts = STREAM_PARTS if gap > 0 else (STREAM,)
            else:
                self._counters.unary += 1
                parts = (UNARY,)
        elif request.method == b"GET" and request.path == b"/stats":
            c = self._counters
            stats = _json({"unary": c.unary, "streams": c.streams, "connections": c.connections})
            parts = (_response("200 OK", "application/json", stats),)
        else:
            parts = (NOT_FOUND,)
        if request.close:
            self._closing = True
        if self._delay <= 0 and gap <= 0 and not self._outbox:
            self._send(parts[0], close=request.close)
            return
        # Every answer waits the same delay from its arrival, and leaves after those before it.
        loop = asyncio.get_running_loop()
        start = max(loop.time() + self._delay, self._last_at)
        for number, part in enumerate(parts):
            self._outbox.append((start + number * gap, part))
        self._last_at = start + (len(parts) - 1) * gap
        if request.close:
            self._outbox.append((self._last_at, _CLOSE))
        self._flush()

    def _flush(self) -> None:
        """Write what is due from the outbox; wake again when the next part is."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._outbox and self._outbox[0][0] <= now and self._transport is not None:
            _, part = self._outbox.popleft()
            self._send(part, close=not part)
        if self._outbox and self._transport is not None:
            self._timer = loop.call_at(self._outbox[0][0], self._flush)

    def _send(self, reply: bytes, *, close: bool) -> None:
        if self._transport is None:
            return
        if reply:
            self._transport.write(reply)
        if close:
            self._closing = True
            self._transport.close()


async def serve(port: int, delay_ms: float, pace_ms: float = 0.0) -> None:
    """Listen on 127.0.0.1:`port`, print the bound port as JSON, serve until a signal."""
    loop = asyncio.get_running_loop()
    counters = Counters()
    server = await loop.create_server(
        lambda: FakeOpenAI(counters, delay_ms / 1000, pace_ms / 1000),
        "127.0.0.1",
        port,
        backlog=4096,
    )
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(_json({"port": bound}).decode() + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    """Parse options and serve on uvloop."""
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait before each answer")
    parser.add_argument(
        "--pace-ms", type=float, default=0.0, help="gap between a stream's chunks (0: one write)"
    )
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port, args.delay_ms, args.pace_ms))


if __name__ == "__main__":
    main()
