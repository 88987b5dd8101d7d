"""A fast fake OpenAI upstream: `python -m bench.upstream --port 0 [--delay-ms N]`.

It answers `POST /v1/chat/completions` with pre-built bytes: a `chat.completion` JSON body, or
(when the request body asks for `"stream": true`) a `text/event-stream` of 20 content chunks, a
finish chunk, a usage chunk and `data: [DONE]`. `GET /stats` returns how many completions it
served (the harness checks that a peer really reached it). It is a raw `asyncio.Protocol` on
uvloop speaking HTTP/1.1 with keep-alive, so a benchmark measures the gateway, not the fake.

It prints one JSON line, `{"port": N}`, once it listens, and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
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


def _chunked_response(status: str, content_type: str, body: bytes) -> bytes:
    """A streamed answer as OpenAI sends it: chunked transfer encoding, one chunk per event."""
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
        "cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    events = [event + b"\n\n" for event in body.split(b"\n\n") if event]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events)
    return head.encode() + chunks + b"0\r\n\r\n"


UNARY: Final = _response("200 OK", "application/json", unary_body())
STREAM: Final = _chunked_response("200 OK", "text/event-stream", stream_body())
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
    """One parsed request: method, path, whether it wants a stream, whether to close after."""

    __slots__ = ("close", "method", "path", "stream")

    def __init__(self, method: bytes, path: bytes, stream: bool, close: bool) -> None:
        self.method, self.path, self.stream, self.close = method, path, stream, close


def _wants_stream(body: bytes) -> bool:
    return b'"stream":true' in body or b'"stream": true' in body


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


class FakeOpenAI(asyncio.Protocol):
    """HTTP/1.1 keep-alive over a raw transport; requests are answered in arrival order."""

    def __init__(self, counters: Counters, delay: float) -> None:
        self._counters = counters
        self._delay = delay
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._pending = 0
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._counters.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

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
        return _Request(method, path.split(b"?", 1)[0], _wants_stream(body), close)

    def _answer(self, request: _Request) -> None:
        if request.method == b"POST" and request.path.endswith(b"/chat/completions"):
            if request.stream:
                self._counters.streams += 1
                reply = STREAM
            else:
                self._counters.unary += 1
                reply = UNARY
        elif request.method == b"GET" and request.path == b"/stats":
            c = self._counters
            stats = _json({"unary": c.unary, "streams": c.streams, "connections": c.connections})
            reply = _response("200 OK", "application/json", stats)
        else:
            reply = NOT_FOUND
        if self._delay > 0:
            self._pending += 1
            asyncio.get_running_loop().call_later(self._delay, self._send_later, reply, request)
            if request.close:
                self._closing = True
        else:
            self._send(reply, close=request.close)

    def _send_later(self, reply: bytes, request: _Request) -> None:
        # Delayed answers keep arrival order: every one waits the same delay.
        self._pending -= 1
        self._send(reply, close=request.close and self._pending == 0)

    def _send(self, reply: bytes, *, close: bool) -> None:
        if self._transport is None:
            return
        self._transport.write(reply)
        if close:
            self._closing = True
            self._transport.close()


async def serve(port: int, delay_ms: float) -> None:
    """Listen on 127.0.0.1:`port`, print the bound port as JSON, serve until a signal."""
    loop = asyncio.get_running_loop()
    counters = Counters()
    server = await loop.create_server(
        lambda: FakeOpenAI(counters, delay_ms / 1000), "127.0.0.1", port, backlog=4096
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
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port, args.delay_ms))


if __name__ == "__main__":
    main()
