"""Transports under abuse, against real `python -m gateway` processes.

SIGTERM with streams that outlive the grace, a fuzzed gRPC port (raw HTTP/2 frames carrying
truncated, corrupted and lying messages), and connections that trickle their headers or bodies.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import orjson
import pytest

from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.processes import GatewayProcess, spawn
from tests.sse import read_sse

LONG_PROMPT = " ".join(f"word{i}" for i in range(200))
GRACE_SECONDS = 1.0
STREAMS = 10


async def stopped(started: GatewayProcess) -> None:
    if started.process.returncode is None:
        started.process.kill()
        await started.wait_exit()


@pytest.fixture
async def slow_streams() -> AsyncIterator[GatewayProcess]:
    """A gateway whose mock streams 200 words at 20 words/s, far longer than its 1 s grace."""
    started = await spawn(MOCK_TOKENS_PER_SECOND="20", SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS))
    yield started
    await stopped(started)


async def open_sse(http: aiohttp.ClientSession, port: int) -> aiohttp.ClientResponse:
    body = {"model": "mock", "messages": [{"role": "user", "content": LONG_PROMPT}]}
    reply = await http.post(f"http://127.0.0.1:{port}/v1/complete:stream", data=orjson.dumps(body))
    assert reply.status == 200
    assert (await reply.content.readline()).startswith(b"data: ")
    return reply


async def grpc_outcome(call: Any) -> tuple[grpc.StatusCode, str]:
    """Read a stream to its end; its status code and details."""
    try:
        while await call.read() is not grpc.aio.EOF:
            pass
    except grpc.aio.AioRpcError:
        pass
    return await call.code(), await call.details() or ""


async def test_streams_outliving_the_grace_end_with_an_error_and_are_accounted_unavailable(
    slow_streams: GatewayProcess,
) -> None:
    gw = slow_streams
    async with (
        aiohttp.ClientSession() as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel,
    ):
        stub = pb_grpc.GatewayServiceStub(channel)
        request = pb.StreamCompleteRequest(
            model="mock", messages=[pb.Message(role="user", content=LONG_PROMPT)]
        )
        calls = [stub.StreamComplete(request) for _ in range(STREAMS)]
        for call in calls:
            assert (await call.read()).delta
        replies = [await open_sse(http, gw.http_port) for _ in range(STREAMS)]
        signalled = time.monotonic()
        gw.process.send_signal(signal.SIGTERM)
        sse_events = await asyncio.gather(*(read_sse(reply) for reply in replies))
        outcomes = await asyncio.gather(*(grpc_outcome(call) for call in calls))
        ended = time.monotonic() - signalled
    for events in sse_events:
        assert events[-1] == ("message", "[DONE]")
        kind, data = events[-2]
        assert kind == "error"
        error = orjson.loads(data)["error"]
        assert error["code"] == "UNAVAILABLE"
        assert "shutting down" in error["message"]
    for code, details in outcomes:
        assert code == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in details
    assert ended < GRACE_SECONDS + 5
    assert await gw.wait_exit() == 0
    finished = [e for e in gw.logs if e.get("msg") == "request finished"]
    assert sorted((e["transport"], e["status"]) for e in finished) == sorted(
        [("grpc", "UNAVAILABLE")] * STREAMS + [("http", "UNAVAILABLE")] * STREAMS
    )
    database = gw.environment["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        rows = db.execute("select transport, status from requests").fetchall()
    assert sorted(rows) == sorted(
        [("grpc", "UNAVAILABLE")] * STREAMS + [("http", "UNAVAILABLE")] * STREAMS
    )
