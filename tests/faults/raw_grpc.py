"""A gRPC client made of raw HTTP/2 frames (h2), to send what no well-behaved client would."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events

#: How long one raw call may take before the test gives up on an answer.
ANSWER_TIMEOUT = 15.0


@dataclass
class RawAnswer:
    """What came back for one raw call: headers, trailers and the DATA bytes."""

    headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    reset: int | None = None

    @property
    def status(self) -> str | None:
        """`grpc-status` (from the trailers, or a trailers-only answer's headers)."""
        return self.trailers.get("grpc-status", self.headers.get("grpc-status"))

    @property
    def message(self) -> str:
        """`grpc-message` as sent (percent-encoded)."""
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))


def frame(payload: bytes, *, length: int | None = None, compressed: int = 0) -> bytes:
    """One gRPC length-prefixed message; `length` may lie about the payload's size."""
    size = len(payload) if length is None else length
    return struct.pack(">BI", compressed, size) + payload


async def raw_call(
    port: int,
    path: str,
    body: bytes,
    *,
    metadata: tuple[tuple[str, str], ...] = (),
    end_stream: bool = True,
) -> RawAnswer:
    """Send one request (headers, `body` as DATA, END_STREAM) and read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    connection.initiate_connection()
    stream = connection.get_next_available_stream_id()
    connection.send_headers(
        stream,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *metadata,
        ],
    )
    connection.send_data(stream, body, end_stream=end_stream)
    writer.write(connection.data_to_send())
    answer = RawAnswer()
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while not await _read_events(reader, writer, connection, stream, answer):
                pass
    finally:
        writer.close()
        await writer.wait_closed()
    return answer


async def _read_events(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    connection: h2.connection.H2Connection,
    stream: int,
    answer: RawAnswer,
) -> bool:
    """Read what arrived; True once the stream has ended (or the connection closed)."""
    data = await reader.read(65536)
    if not data:
        return True
    ended = False
    for event in connection.receive_data(data):
        if getattr(event, "stream_id", stream) != stream:
            continue
        if isinstance(event, h2.events.ResponseReceived):
            answer.headers = _text(event.headers)
        elif isinstance(event, h2.events.TrailersReceived):
            answer.trailers = _text(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            answer.data += event.data
            connection.acknowledge_received_data(event.flow_controlled_length, stream)
        elif isinstance(event, h2.events.StreamReset):
            answer.reset = event.error_code
            ended = True
        elif isinstance(event, h2.events.StreamEnded | h2.events.ConnectionTerminated):
            ended = True
    writer.write(connection.data_to_send())
    return ended


def _text(headers: object) -> dict[str, str]:
    pairs = headers if isinstance(headers, list) else []
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v)
        )
        for k, v in pairs
    }
