"""Callers' own deadlines against a slow but healthy provider, through a real gateway process.

A provider that answers every call after 300 ms is healthy; callers who allow 100 ms run out of
their own time. Each such call ends DEADLINE_EXCEEDED (504), whichever way the deadline came
(the body's `timeout`, `x-request-timeout`, the gRPC deadline), before a stream's first chunk or
after it, and none of them counts against the deployment's circuit: other tenants keep being
served. Half the callers allow 100 ms, half 100.4 ms: a deadline between two whole milliseconds
(as a gRPC deadline nearly always is) is where the gateway's event loop (uvloop: millisecond
timers, delays rounded) sets its timers off a fraction of a millisecond early.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import grpc
import orjson
import pytest
from aiohttp import web

from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.fakes.base import StreamPlan
from tests.fakes.openai_server import FakeOpenAI, Fault
from tests.processes import GatewayProcess, spawn
from tests.sse import read_sse

#: How long the healthy provider takes to answer (or to send each piece of a stream).
PROVIDER_DELAY = 0.3
#: What the impatient callers allow: 100 ms, and a fraction of a millisecond more.
CALLER_TIMEOUTS = (0.1, 0.1004)
#: The gap before a stream's second piece, and what callers allow who get its first piece (at
#: once) but not its second.
MID_STREAM_GAP = 0.4
MID_STREAM_TIMEOUTS = (0.2, 0.2004)
CALLERS = 12
MODEL = "gpt-slow"
GRPC_OK = grpc.StatusCode.OK


class FakeOpenAIFirstPieceAtOnce(FakeOpenAI):
    """A fake OpenAI whose streams send their first piece of text at once, whatever the fault:
    `chunk_delay` holds back only the pieces after it."""

    def stream_plan(self, request: web.Request, body: dict[str, object]) -> StreamPlan:
        plan = super().stream_plan(request, body)
        return replace(plan, first_content=plan.first_content + 1, content=plan.content - 1)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAIFirstPieceAtOnce(reply="one two three") as fake:
        fake.persistent_fault = Fault(delay=PROVIDER_DELAY)
        yield fake


@pytest.fixture
async def gateway(fake: FakeOpenAI) -> AsyncIterator[GatewayProcess]:
    process = await spawn(
        OPENAI_BASE_URL=fake.base_url,
        OPENAI_MODELS=MODEL,
        CIRCUIT_BREAKER_FAIL_MAX="3",
        CIRCUIT_BREAKER_RESET_TIMEOUT="60",
    )
    try:
        yield process
    finally:
        await process.stop()


def timeouts(choices: tuple[float, float]) -> list[float]:
    """One timeout per caller, alternating between the two `choices`."""
    return [choices[index % 2] for index in range(CALLERS)]


Requests = list[tuple[bytes, dict[str, str]]]


def body(**fields: object) -> bytes:
    message = {"role": "user", "content": "hello"}
    return orjson.dumps({"model": MODEL, "messages": [message], **fields})


def millis(seconds: float) -> str:
    return f"{seconds * 1000:g}ms"


async def json_calls(
    gateway: GatewayProcess,
    requests: Requests,
    path: str = "/v1/complete",
) -> list[tuple[int, str]]:
    """Each (body, headers) posted at once; each answer's status and its last SSE error code."""
    url = f"http://127.0.0.1:{gateway.http_port}{path}"
    async with aiohttp.ClientSession() as http:

        async def one(payload: bytes, headers: dict[str, str]) -> tuple[int, str]:
            async with http.post(url, data=payload, headers=headers) as response:
                if response.content_type != "text/event-stream":
                    await response.read()
                    return response.status, ""
                errors = [data for kind, data in await read_sse(response) if kind == "error"]
                code = orjson.loads(errors[-1])["error"]["code"] if errors else ""
                return response.status, code

        return list(await asyncio.gather(*(one(p, h) for p, h in requests)))


async def grpc_calls(
    gateway: GatewayProcess, deadlines: list[float], *, stream: bool = False
) -> list[tuple[grpc.StatusCode, int]]:
    """Each call at once with its gRPC deadline; each one's status and messages received."""
    message = pb.Message(role="user", content="hello")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = pb_grpc.GatewayServiceStub(channel)

        async def one(seconds: float) -> tuple[grpc.StatusCode, int]:
            received = 0
            try:
                if stream:
                    streamed = pb.StreamCompleteRequest(model=MODEL, messages=[message])
                    async for _ in stub.StreamComplete(streamed, timeout=seconds):
                        received += 1
                else:
                    request = pb.CompleteRequest(model=MODEL, messages=[message])
                    await stub.Complete(request, timeout=seconds)
                    received = 1
            except grpc.aio.AioRpcError as exc:
                return exc.code(), received
            return GRPC_OK, received

        return list(await asyncio.gather(*(one(t) for t in deadlines)))


async def finished_statuses(gateway: GatewayProcess, rpc: str) -> list[str]:
    """The status the gateway logged for each gRPC call of `rpc` it finished.

    The caller's own deadline ends a call on the client's side first: wait for the gateway's
    lines (on a busy machine a call may run out of time before it reaches the gateway at all:
    after 10 s, what was logged is the answer).
    """
    loop = asyncio.get_running_loop()
    until = loop.time() + 10.0
    while True:
        statuses = [
            entry["status"]
            for entry in gateway.logs
            if entry.get("msg") == "request finished"
            and (entry.get("transport"), entry.get("rpc")) == ("grpc", rpc)
        ]
        if len(statuses) >= CALLERS or loop.time() > until:
            return statuses
        await asyncio.sleep(0.05)


async def assert_recorded_as_deadline_exceeded(gateway: GatewayProcess, rpc: str) -> None:
    statuses = await finished_statuses(gateway, rpc)
    assert statuses, f"the gateway logged no {rpc} call"
    assert set(statuses) == {"DEADLINE_EXCEEDED"}


async def assert_circuit_untouched_and_a_patient_caller_served(
    gateway: GatewayProcess, fake: FakeOpenAI
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = pb_grpc.GatewayServiceStub(channel)
        status = await stub.ProviderStatus(pb.ProviderStatusRequest(provider="openai"))
    (info,) = status.providers
    assert (info.circuit_state, info.consecutive_failures, info.last_error) == (
        pb.CIRCUIT_STATE_CLOSED,
        0,
        "",
    )
    fake.persistent_fault = Fault(delay=PROVIDER_DELAY)
    url = f"http://127.0.0.1:{gateway.http_port}/v1/complete"
    async with aiohttp.ClientSession() as http, http.post(url, data=body(timeout="5s")) as response:
        assert response.status == 200, await response.text()


async def test_a_timeout_field_shorter_than_the_provider_is_504_and_spares_the_circuit(
    gateway: GatewayProcess, fake: FakeOpenAI
) -> None:
    requests: Requests = [(body(timeout=f"{t}s"), {}) for t in timeouts(CALLER_TIMEOUTS)]
    assert await json_calls(gateway, requests) == [(504, "")] * CALLERS
    await assert_circuit_untouched_and_a_patient_caller_served(gateway, fake)


async def test_x_request_timeout_shorter_than_the_provider_is_504_and_spares_the_circuit(
    gateway: GatewayProcess, fake: FakeOpenAI
) -> None:
    requests = [(body(), {"x-request-timeout": millis(t)}) for t in timeouts(CALLER_TIMEOUTS)]
    assert await json_calls(gateway, requests) == [(504, "")] * CALLERS
    await assert_circuit_untouched_and_a_patient_caller_served(gateway, fake)


async def test_a_grpc_deadline_shorter_than_the_provider_is_deadline_exceeded_sparing_the_circuit(
    gateway: GatewayProcess, fake: FakeOpenAI
) -> None:
    answers = await grpc_calls(gateway, timeouts(CALLER_TIMEOUTS))
    assert answers == [(grpc.StatusCode.DEADLINE_EXCEEDED, 0)] * CALLERS
    # Recorded as the caller's deadline too (gRPC itself may end the call at that deadline).
    await assert_recorded_as_deadline_exceeded(gateway, "Complete")
    await assert_circuit_untouched_and_a_patient_caller_served(gateway, fake)


async def test_streams_whose_deadline_ends_before_the_first_chunk_spare_the_circuit(
    gateway: GatewayProcess, fake: FakeOpenAI
) -> None:
    deadlines = timeouts(CALLER_TIMEOUTS)
    requests: Requests = [(body(timeout=f"{t}s"), {}) for t in deadlines[: CALLERS // 2]]
    requests += [(body(), {"x-request-timeout": millis(t)}) for t in deadlines[CALLERS // 2 :]]
    sse_answers = await json_calls(gateway, requests, "/v1/complete:stream")
    grpc_answers = await grpc_calls(gateway, deadlines, stream=True)
    assert sse_answers == [(504, "")] * CALLERS
    assert grpc_answers == [(grpc.StatusCode.DEADLINE_EXCEEDED, 0)] * CALLERS
    await assert_recorded_as_deadline_exceeded(gateway, "StreamComplete")
    await assert_circuit_untouched_and_a_patient_caller_served(gateway, fake)


async def test_streams_whose_deadline_ends_after_the_first_chunk_spare_the_circuit(
    gateway: GatewayProcess, fake: FakeOpenAI
) -> None:
    fake.persistent_fault = Fault(chunk_delay=MID_STREAM_GAP)
    deadlines = timeouts(MID_STREAM_TIMEOUTS)
    requests: Requests = [(body(timeout=f"{t}s"), {}) for t in deadlines[: CALLERS // 2]]
    requests += [(body(), {"x-request-timeout": millis(t)}) for t in deadlines[CALLERS // 2 :]]
    sse_answers = await json_calls(gateway, requests, "/v1/complete:stream")
    grpc_answers = await grpc_calls(gateway, deadlines, stream=True)
    # Each got its first piece, then the stream ended with the caller's own deadline.
    assert sse_answers == [(200, "DEADLINE_EXCEEDED")] * CALLERS
    assert grpc_answers == [(grpc.StatusCode.DEADLINE_EXCEEDED, 1)] * CALLERS
    await assert_recorded_as_deadline_exceeded(gateway, "StreamComplete")
    await assert_circuit_untouched_and_a_patient_caller_served(gateway, fake)
