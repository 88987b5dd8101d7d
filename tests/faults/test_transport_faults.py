"""Transports under abuse, against real `python -m gateway` processes.

SIGTERM with streams that outlive the grace, a fuzzed gRPC port (raw HTTP/2 frames carrying
truncated, corrupted and lying messages), and connections that trickle their headers or bodies.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2

from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.faults.raw_grpc import RawAnswer, frame, raw_call
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


COMPLETE = "/gateway.v1.GatewayService/Complete"
STREAM_COMPLETE = "/gateway.v1.GatewayService/StreamComplete"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
#: Every fuzzed call must be answered within this (none may hang).
ANSWER_BOUND_SECONDS = 5.0
INVALID_ARGUMENT = str(grpc.StatusCode.INVALID_ARGUMENT.value[0])
NEVER = {str(grpc.StatusCode.UNKNOWN.value[0]), str(grpc.StatusCode.INTERNAL.value[0])}
GOOD_REQUEST = pb.CompleteRequest(
    model="mock",
    messages=[pb.Message(role="system", content="be brief"), pb.Message(role="user", content="hi")],
    temperature=0.5,
    max_tokens=8,
    metadata={"tenant": "fuzz"},
).SerializeToString()


def fuzzed_messages() -> list[tuple[str, bytes]]:
    """A fixed set of broken request bodies: (name, DATA bytes as sent)."""
    rng = random.Random(14)  # noqa: S311 (a fixed fuzz corpus, not a secret)
    cases = [(f"truncated-{n}", frame(GOOD_REQUEST[:n])) for n in range(1, len(GOOD_REQUEST), 3)]
    for number in range(40):
        corrupted = bytearray(GOOD_REQUEST)
        for _ in range(rng.randint(1, 3)):
            corrupted[rng.randrange(len(corrupted))] = rng.randrange(256)
        cases.append((f"corrupted-{number}", frame(bytes(corrupted))))
    cases += [
        ("invalid-utf8", frame(b"\x0a\x02\xc3\x28" + GOOD_REQUEST)),
        ("inner-length-lies", frame(b"\x0a\x7fmock")),
        ("garbage", frame(bytes(rng.randrange(256) for _ in range(64)))),
        ("prefix-longer-than-data", frame(GOOD_REQUEST, length=len(GOOD_REQUEST) + 50)),
        ("prefix-shorter-than-data", frame(GOOD_REQUEST, length=len(GOOD_REQUEST) - 7)),
        ("prefix-only", frame(b"", length=100)),
        ("half-a-prefix", b"\x00\x00"),
        ("no-message", b""),
    ]
    return cases


REQUEST_TYPES: dict[str, type[Message]] = {
    COMPLETE: pb.CompleteRequest,
    STREAM_COMPLETE: pb.StreamCompleteRequest,
    HEALTH_CHECK: health_pb2.HealthCheckRequest,
}


def decodes(body: bytes, path: str) -> bool:
    """Whether `body` holds one whole message of `path`'s request type that decodes."""
    if len(body) < 5 or int.from_bytes(body[1:5], "big") != len(body) - 5:
        return False
    try:
        REQUEST_TYPES[path].FromString(body[5:])
    except DecodeError:
        return False
    return True


async def timed_call(port: int, path: str, body: bytes) -> tuple[RawAnswer, float]:
    started = time.monotonic()
    answer = await raw_call(port, path, body)
    return answer, time.monotonic() - started


async def test_fuzzed_grpc_messages_get_invalid_argument_fast_and_one_short_log_line() -> None:
    gw = await spawn(BODY_READ_TIMEOUT_SECONDS="2")
    try:
        cases = fuzzed_messages()
        logged_before = len(gw.logs)
        undecodable = 0
        for path in (COMPLETE, STREAM_COMPLETE, HEALTH_CHECK):
            for name, body in cases:
                answer, took = await timed_call(gw.grpc_port, path, body)
                assert took < ANSWER_BOUND_SECONDS, (path, name)
                assert answer.status is not None, (path, name)
                assert answer.status not in NEVER, (path, name, answer.message)
                if not decodes(body, path):
                    undecodable += 1
                    assert answer.status == INVALID_ARGUMENT, (path, name, answer.message)
                    assert "Error" not in answer.message  # no exception names, no parser text
                    assert len(answer.message) < 120
        await asyncio.sleep(0.2)  # the last lines reach the log
        lines = [e for e in gw.logs[logged_before:] if e.get("msg") != "request finished"]
    finally:
        gw.process.terminate()
        await gw.wait_exit()
    assert undecodable > 100
    assert len(lines) <= undecodable
    for entry in lines:
        assert "exc" not in entry
        assert len(orjson.dumps(entry)) < 400
        assert not entry["logger"].startswith("grpc")


async def test_a_message_shorter_than_its_length_prefix_is_answered_at_once() -> None:
    gw = await spawn()
    try:
        for path in (COMPLETE, STREAM_COMPLETE):
            body = frame(GOOD_REQUEST, length=len(GOOD_REQUEST) + 50)
            answer, took = await timed_call(gw.grpc_port, path, body)
            assert answer.status == INVALID_ARGUMENT
            assert took < 2
    finally:
        gw.process.terminate()
        await gw.wait_exit()


async def test_a_request_message_that_never_comes_is_cut_at_the_read_bound() -> None:
    gw = await spawn(BODY_READ_TIMEOUT_SECONDS="1")
    try:
        started = time.monotonic()
        answer = await raw_call(gw.grpc_port, COMPLETE, GOOD_REQUEST[:3], end_stream=False)
        took = time.monotonic() - started
        assert answer.status == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0])
        assert 0.9 < took < 3
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{gw.metrics_port}/metrics") as reply,
        ):
            text = await reply.text()
        assert 'gateway_request_reads_cut_total{phase="message",transport="grpc"} 1.0' in text
    finally:
        gw.process.terminate()
        await gw.wait_exit()


READ_BOUND_SECONDS = 1.0
RESET = b"<connection reset>"
#: Past the bound, a cut may wait for the next sweep and the loop: never more than this.
CUT_SLACK_SECONDS = 2.5


async def held_for(
    port: int, first: bytes, trickle: bytes = b"", every: float = 0.2
) -> tuple[float, bytes]:
    """Connect, send `first`, then `trickle` every `every` s; how long until the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first)
    started = time.monotonic()

    async def dribble() -> None:
        while trickle:
            await asyncio.sleep(every)
            writer.write(trickle)

    dribbling = asyncio.create_task(dribble())
    try:
        answer = await asyncio.wait_for(reader.read(), 10)  # to EOF: the server closed
    except ConnectionResetError:
        # Bytes still trickling in when the server closes make its kernel answer with a reset,
        # which may overtake the 408 it had sent: a cut all the same.
        answer = RESET
    finally:
        dribbling.cancel()
        writer.close()
    return time.monotonic() - started, answer


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 if absent)."""
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


async def test_connections_trickling_heads_or_bodies_are_cut_within_the_bound_and_counted() -> None:
    bound = str(READ_BOUND_SECONDS)
    gw = await spawn(HEADER_READ_TIMEOUT_SECONDS=bound, BODY_READ_TIMEOUT_SECONDS=bound)
    port = gw.http_port
    head = b"POST /v1/complete HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n"
    partial_head = b"POST /v1/complete HTTP/1.1\r\nHost: gw\r\n"
    try:
        slow = [
            *(held_for(port, head + b'{"model": ') for _ in range(150)),  # 10 of 1000 bytes
            *(held_for(port, head, trickle=b" ") for _ in range(20)),  # a byte every 0.2 s
            *(held_for(port, partial_head) for _ in range(50)),
            *(held_for(port, partial_head, trickle=b"X-Slow: 1\r\n") for _ in range(10)),
            *(held_for(port, b"") for _ in range(20)),  # connect, then say nothing
        ]
        outcomes = await asyncio.gather(*slow)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{port}/v1/complete",
                data=orjson.dumps(
                    {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
                ),
            ) as still_serving,
            http.get(f"http://127.0.0.1:{gw.metrics_port}/metrics") as scraped,
        ):
            assert still_serving.status == 200
            text = await scraped.text()
    finally:
        gw.process.terminate()
        await gw.wait_exit()
    for took, _ in outcomes:
        assert READ_BOUND_SECONDS * 0.9 < took < READ_BOUND_SECONDS + CUT_SLACK_SECONDS
    assert all(answer.startswith(b"HTTP/1.1 408 ") for _, answer in outcomes[:150])
    trickled = [answer for _, answer in outcomes[150:170]]
    assert all(answer.startswith(b"HTTP/1.1 408 ") or answer == RESET for answer in trickled)
    assert all(answer == b"" for _, answer in outcomes[170:])  # a head never read: just closed
    cut = "gateway_request_reads_cut_total"
    assert metric(text, cut, transport="http", phase="body") == 170
    assert metric(text, cut, transport="http", phase="head") == 80
    lines = [e for e in gw.logs if str(e.get("msg", "")).startswith("request cut")]
    assert 1 <= len(lines) <= 250
    assert all("exc" not in line and len(orjson.dumps(line)) < 400 for line in lines)
