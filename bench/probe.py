"""Real calls next to h2load: checking answers, and timing a stream's first chunk.

h2load times whole responses and cannot tell a gRPC error (HTTP 200, `grpc-status` in the
trailers) from a success, nor an SSE stream that ended in an `event: error`. So before a run
one real call checks the answer and gives its size (h2load's body bytes per request must match
it), and during stream runs a probe makes sequential streams and times their first chunk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
import grpc

from bench.services import GATEWAY_TOKEN
from bench.targets import Endpoint, Mode, Target, complete_request, stream_request
from gateway.v1 import gateway_pb2_grpc as pb_grpc

GRPC_FRAME_HEADER = 5
_METADATA = (("authorization", f"Bearer {GATEWAY_TOKEN}"),)
_TIMEOUT = 30.0


class CallError(RuntimeError):
    """A real call to a target failed or answered something other than a completion."""


@dataclass
class ProbeResult:
    """Sequential streams: time to first chunk and to the end of each (milliseconds)."""

    ttfc_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    errors: int = 0


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


async def reference_size(target: Target, mode: Mode) -> int:
    """Make one real call; the body bytes h2load should see per successful request."""
    if mode.grpc:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{target.grpc_port}") as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            if mode is Mode.GRPC:
                response = await stub.Complete(
                    complete_request(), metadata=_METADATA, timeout=_TIMEOUT
                )
                if "tok tok" not in response.content:
                    raise CallError(f"gRPC Complete answered {response!r}")
                return GRPC_FRAME_HEADER + int(response.ByteSize())
            size = 0
            call = stub.StreamComplete(stream_request(), metadata=_METADATA, timeout=_TIMEOUT)
            async for message in call:
                size += GRPC_FRAME_HEADER + message.ByteSize()
            if await call.code() != grpc.StatusCode.OK:
                raise CallError(f"gRPC StreamComplete ended with {await call.code()}")
            return size
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return len(await _http_call(session, target.endpoints[mode], mode.streams))


async def probe_streams(
    target: Target, mode: Mode, seconds: float, max_streams: int = 1000
) -> ProbeResult:
    """Sequential streams on one connection for `seconds` (at most `max_streams`)."""
    result = ProbeResult()
    stop_at = time.perf_counter() + seconds
    if mode is Mode.GRPC_STREAM:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{target.grpc_port}") as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            while time.perf_counter() < stop_at and len(result.total_ms) < max_streams:
                await _grpc_stream(stub, result)
        return result
    endpoint = target.endpoints[mode]
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
    try:
        async with session.post(endpoint.url, data=body, headers=_headers(endpoint)) as reply:
            if reply.status != 200:
                await reply.read()
                result.errors += 1
                return
            async for piece in reply.content.iter_any():
                if not first and b"data:" in seen[-8:] + piece:
                    first = time.perf_counter()
                seen = seen[-64:] + piece
    except (aiohttp.ClientError, TimeoutError):
        result.errors += 1
        return
    if not first or b"[DONE]" not in seen:
        result.errors += 1
        return
    result.ttfc_ms.append((first - started) * 1000)
    result.total_ms.append((time.perf_counter() - started) * 1000)


async def _grpc_stream(stub: pb_grpc.GatewayServiceStub, result: ProbeResult) -> None:
    started = time.perf_counter()
    first = 0.0
    try:
        call = stub.StreamComplete(stream_request(), metadata=_METADATA, timeout=_TIMEOUT)
        async for _ in call:
            if not first:
                first = time.perf_counter()
        ok = await call.code() == grpc.StatusCode.OK
    except grpc.RpcError:
        ok = False
    if not ok or not first:
        result.errors += 1
        return
    result.ttfc_ms.append((first - started) * 1000)
    result.total_ms.append((time.perf_counter() - started) * 1000)
