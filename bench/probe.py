"""Real calls next to h2load: checking answers, and timing a stream's first chunk.

h2load times whole responses and cannot tell a gRPC error (HTTP 200, `grpc-status` in the
trailers) from a success, nor an SSE stream that ended in an `event: error`. So before a run
one real call checks the answer and gives its size (h2load's body bytes per request must reach
it), and during stream runs a probe makes sequential streams, times their first chunk and
counts their messages and bytes.

A streamed answer may legitimately be smaller than the reference when a target merges deltas
that piled up into fewer messages (the text is the same, the framing less). So for streams the
size to reach is the least a complete answer can be: all of the text plus the reference's
final message (finish reason, usage) and end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
import grpc

from bench.services import GATEWAY_TOKEN
from bench.targets import Endpoint, Mode, Target, complete_request
from bench.upstream import CONTENT
from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc

GRPC_FRAME_HEADER = 5
_METADATA = (("authorization", f"Bearer {GATEWAY_TOKEN}"),)
_TIMEOUT = 30.0


class CallError(RuntimeError):
    """A real call to a target failed or answered something other than a completion."""


#: The streamed text's bytes: a complete stream carries at least these, however framed.
TEXT_BYTES = len(CONTENT.encode())


#: Bytes a complete stream may carry fewer than the reference's floor: its final message holds
#: latencies and costs whose printed length varies call to call (`"0.012s"`, `"0.012113642s"`).
NUMBER_SLACK = 32


@dataclass(frozen=True, slots=True)
class Reference:
    """One real answer: its body bytes, the least a complete answer may carry, its messages."""

    size: int
    floor: int
    messages: int = 1


@dataclass
class ProbeResult:
    """Sequential streams: time to first chunk and to the end of each (milliseconds), and the
    messages and body bytes each delivered."""

    ttfc_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    errors: int = 0


def sse_messages(data: bytes) -> int:
    """The `data:` events of an SSE body, `[DONE]` not counted."""
    return data.count(b"data:") - data.count(b"data: [DONE]")


def _sse_floor(data: bytes) -> int:
    """The text, plus everything after the event that carried the last of it, less the slack
    for numbers printed at varying lengths."""
    last_text = data.rfind(CONTENT.encode()[-4:])
    end = data.find(b"\n\n", last_text)
    tail = len(data) - (end + 2) if last_text >= 0 and end >= 0 else len(data)
    return TEXT_BYTES + tail - NUMBER_SLACK


def stream_request_of(endpoint: Endpoint) -> pb.StreamCompleteRequest:
    """The gRPC stream request h2load sends to `endpoint` (its body less the 5-byte prefix)."""
    return pb.StreamCompleteRequest.FromString(endpoint.body.read_bytes()[GRPC_FRAME_HEADER:])


def _headers(endpoint: Endpoint) -> dict[str, str]:
    return dict(endpoint.headers)


async def _http_call(session: aiohttp.ClientSession, endpoint: Endpoint, stream: bool) -> bytes:
    body = endpoint.body.read_bytes()
    async with session.post(endpoint.url, data=body, headers=_headers(endpoint)) as reply:
        data = await reply.read()
        if reply.status != 200:
            raise CallError(f"HTTP {reply.status}: {data[:200]!r}")
    if stream and (b"[DONE]" not in data or b"event: error" in data):
        raise CallError(f"stream did not end with [DONE]: {data[-200:]!r}")
    if not stream and b"tok tok" not in data:
        raise CallError(f"not a completion: {data[:200]!r}")
    return data


async def reference(target: Target, mode: Mode) -> Reference:
    """Make one real call: the body bytes h2load should see per successful request."""
    endpoint = target.endpoints[mode]
    if mode.grpc:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{target.grpc_port}") as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            if mode is Mode.GRPC:
                response = await stub.Complete(
                    complete_request(), metadata=_METADATA, timeout=_TIMEOUT
                )
                if "tok tok" not in response.content:
                    raise CallError(f"gRPC Complete answered {response!r}")
                size = GRPC_FRAME_HEADER + int(response.ByteSize())
                return Reference(size, size)
            sizes: list[int] = []
            last = pb.StreamCompleteResponse()
            call = stub.StreamComplete(
                stream_request_of(endpoint), metadata=_METADATA, timeout=_TIMEOUT
            )
            async for message in call:
                sizes.append(GRPC_FRAME_HEADER + message.ByteSize())
                last = message
            if await call.code() != grpc.StatusCode.OK or not sizes:
                raise CallError(f"gRPC StreamComplete ended with {await call.code()}")
            # The last message may carry text merged into it: the floor counts the text once.
            last.delta = ""
            floor = TEXT_BYTES + GRPC_FRAME_HEADER + last.ByteSize() - NUMBER_SLACK
            return Reference(sum(sizes), min(sum(sizes), floor), len(sizes))
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        data = await _http_call(session, endpoint, mode.streams)
    if not mode.streams:
        return Reference(len(data), len(data))
    return Reference(len(data), min(len(data), _sse_floor(data)), sse_messages(data))


async def probe_streams(
    target: Target, mode: Mode, seconds: float, max_streams: int = 1000
) -> ProbeResult:
    """Sequential streams on one connection for `seconds` (at most `max_streams`)."""
    result = ProbeResult()
    stop_at = time.perf_counter() + seconds
    endpoint = target.endpoints[mode]
    if mode.grpc:
        request = stream_request_of(endpoint)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{target.grpc_port}") as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            while time.perf_counter() < stop_at and len(result.total_ms) < max_streams:
                await _grpc_stream(stub, request, result)
        return result
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        body = endpoint.body.read_bytes()
        while time.perf_counter() < stop_at and len(result.total_ms) < max_streams:
            await _sse_stream(session, endpoint, body, result)
    return result


async def _sse_stream(
    session: aiohttp.ClientSession, endpoint: Endpoint, body: bytes, result: ProbeResult
) -> None:
    started = time.perf_counter()
    first = 0.0
    seen = b""
    events = size = 0
    failed = False
    try:
        async with session.post(endpoint.url, data=body, headers=_headers(endpoint)) as reply:
            if reply.status != 200:
                await reply.read()
                result.errors += 1
                return
            async for piece in reply.content.iter_any():
                # A `data:` split over two pieces is counted once: its start is in `seen[-4:]`.
                events += (seen[-4:] + piece).count(b"data:")
                failed = failed or b"event: error" in seen[-16:] + piece
                if not first and events:
                    first = time.perf_counter()
                seen = seen[-64:] + piece
                size += len(piece)
    except (aiohttp.ClientError, TimeoutError):
        result.errors += 1
        return
    if not first or failed or b"[DONE]" not in seen:
        result.errors += 1
        return
    result.ttfc_ms.append((first - started) * 1000)
    result.total_ms.append((time.perf_counter() - started) * 1000)
    result.messages.append(events - 1)  # not `data: [DONE]`
    result.bytes.append(size)


async def _grpc_stream(
    stub: pb_grpc.GatewayServiceStub, request: pb.StreamCompleteRequest, result: ProbeResult
) -> None:
    started = time.perf_counter()
    first = 0.0
    messages = size = 0
    try:
        call = stub.StreamComplete(request, metadata=_METADATA, timeout=_TIMEOUT)
        async for message in call:
            if not first:
                first = time.perf_counter()
            messages += 1
            size += GRPC_FRAME_HEADER + message.ByteSize()
        ok = await call.code() == grpc.StatusCode.OK
    except grpc.RpcError:
        ok = False
    if not ok or not first:
        result.errors += 1
        return
    result.ttfc_ms.append((first - started) * 1000)
    result.total_ms.append((time.perf_counter() - started) * 1000)
    result.messages.append(messages)
    result.bytes.append(size)
