"""The real process: start-up, JSON logs, health through shutdown, and SIGTERM mid-stream."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from gateway.pipeline.drain import SHUTTING_DOWN
from gateway.runtime.server import Server
from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from providers.base import ProviderSettings
from tests.conftest import StartGateway, test_settings
from tests.processes import GatewayProcess, spawn
from tests.sse import read_sse

LONG_PROMPT = " ".join(f"word{i}" for i in range(40))


@pytest.fixture
async def paced_gateway() -> AsyncIterator[GatewayProcess]:
    """A gateway whose mock streams about 50 tokens at 25 tokens/s (two seconds a stream)."""
    started = await spawn(MOCK_TOKENS_PER_SECOND="25", SHUTDOWN_GRACE_SECONDS="10")
    yield started
    if started.process.returncode is None:
        started.process.kill()
        await started.wait_exit()


async def read_rest(call: Any) -> list[pb.StreamCompleteResponse]:
    """Read a stream to its end with `read()` (gRPC forbids mixing it with `async for`)."""
    messages = []
    while (message := await call.read()) is not grpc.aio.EOF:
        messages.append(message)
    return messages


async def test_sigterm_lets_an_inflight_grpc_stream_finish_then_exits_zero(
    paced_gateway: GatewayProcess,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{paced_gateway.grpc_port}") as channel:
        stub = pb_grpc.GatewayServiceStub(channel)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        call = stub.StreamComplete(
            pb.StreamCompleteRequest(
                model="mock", messages=[pb.Message(role="user", content=LONG_PROMPT)]
            )
        )
        first = await call.read()
        assert first.delta
        paced_gateway.process.send_signal(signal.SIGTERM)
        # Health turns NOT_SERVING while the stream is still running.
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        rest = await read_rest(call)
        assert await call.code() == grpc.StatusCode.OK
    text = first.delta + "".join(m.delta for m in rest)
    assert text.endswith(LONG_PROMPT)
    assert rest[-1].finish_reason == "stop"
    assert await paced_gateway.wait_exit() == 0


async def test_sigterm_lets_an_inflight_sse_stream_finish_then_exits_zero(
    paced_gateway: GatewayProcess,
) -> None:
    body = {"model": "mock", "messages": [{"role": "user", "content": LONG_PROMPT}]}
    url = f"http://127.0.0.1:{paced_gateway.http_port}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "/v1/complete:stream", data=orjson.dumps(body)) as reply,
    ):
        first_line = await reply.content.readline()
        assert first_line.startswith(b"data: ")
        paced_gateway.process.send_signal(signal.SIGTERM)
        events = await read_sse(reply)
    assert events[-1] == ("message", "[DONE]")
    last = orjson.loads(events[-2][1])
    assert last["finish_reason"] == "stop"
    assert await paced_gateway.wait_exit() == 0


async def test_draining_gateway_refuses_new_calls(paced_gateway: GatewayProcess) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{paced_gateway.grpc_port}") as channel:
        stub = pb_grpc.GatewayServiceStub(channel)
        messages = [pb.Message(role="user", content=LONG_PROMPT)]
        inflight = stub.StreamComplete(pb.StreamCompleteRequest(model="mock", messages=messages))
        await inflight.read()
        paced_gateway.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Complete(pb.CompleteRequest(model="mock", messages=messages))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        await read_rest(inflight)
    assert await paced_gateway.wait_exit() == 0


async def test_every_log_line_of_a_request_carries_its_request_id(
    paced_gateway: GatewayProcess,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{paced_gateway.grpc_port}") as channel:
        stub = pb_grpc.GatewayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Complete(
                pb.CompleteRequest(model="nope", messages=[pb.Message(role="user", content="x")]),
                metadata=(("x-request-id", "trace-me-7"),),
            )
    paced_gateway.process.send_signal(signal.SIGTERM)
    assert await paced_gateway.wait_exit() == 0
    finished = [e for e in paced_gateway.logs if e.get("msg") == "request finished"]
    assert [(e["request_id"], e["status"]) for e in finished] == [("trace-me-7", "NOT_FOUND")]


async def test_sigint_also_shuts_down_cleanly() -> None:
    started = await spawn()
    started.process.send_signal(signal.SIGINT)
    assert await started.wait_exit() == 0
    assert started.logs[-1]["msg"] == "gateway stopped"


async def test_health_is_not_serving_until_ready_and_again_once_draining() -> None:
    gateway = Server(test_settings())
    await gateway.open()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel,
            aiohttp.ClientSession() as http,
        ):
            health = health_pb2_grpc.HealthStub(channel)
            stub = pb_grpc.GatewayServiceStub(channel)
            url = f"http://127.0.0.1:{gateway.http_port}"
            watch = health.Watch(health_pb2.HealthCheckRequest(service="gateway.v1.GatewayService"))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            async with http.get(url + "/readyz") as reply:
                assert reply.status == 503
            async with http.get(url + "/healthz") as reply:
                assert reply.status == 200  # alive while starting
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Complete(
                    pb.CompleteRequest(
                        model="mock", messages=[pb.Message(role="user", content="x")]
                    )
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

            await gateway.mark_ready()
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            async with http.get(url + "/readyz") as reply:
                assert reply.status == 200

            stopping = asyncio.create_task(gateway.stop())
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            await stopping
    finally:
        await gateway.stop()


async def test_log_level_debug_shows_the_gateways_debug_lines_and_no_third_party_chatter() -> None:
    started = await spawn(LOG_LEVEL="DEBUG", WORKERS="2")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{started.http_port}/v1/complete",
            data=b'{"model": "mock", "messages": [{"role": "user", "content": "hi"}]}',
        ) as reply,
    ):
        assert reply.status == 200
    assert await started.stop() == 0
    ours = ("gateway", "providers", "resilience", "cache", "metrics")
    chatter = [e for e in started.logs if e["logger"].split(".")[0] not in ours]
    assert chatter == []
    assert any(e["level"] == "debug" for e in started.logs)


def requests_counted(rpc: str, transport: str, code: str) -> float:
    """`gateway_requests_total` for one label set, in this process."""
    value = REGISTRY.get_sample_value(
        "gateway_requests_total", {"rpc": rpc, "transport": transport, "code": code}
    )
    return value or 0.0


async def test_calls_open_when_the_grace_runs_out_end_unavailable_and_are_counted_so(
    start_gateway: StartGateway,
) -> None:
    slow = ProviderSettings(
        name="slow",
        kind="mock",
        models=("slow",),
        options={"latency_ms": 30_000},  # its unary answer would take 30 s
    )
    paced = ProviderSettings(
        name="mock", kind="mock", models=("mock",), options={"tokens_per_second": 20}
    )
    gw = await start_gateway(providers=(paced, slow), shutdown_grace_seconds=0.5)
    before = {
        (rpc, transport): requests_counted(rpc, transport, "UNAVAILABLE")
        for rpc in ("Complete", "StreamComplete")
        for transport in ("http", "grpc")
    }
    body = {"model": "mock", "messages": [{"role": "user", "content": LONG_PROMPT * 5}]}
    unary = {"model": "slow", "messages": [{"role": "user", "content": "hi"}]}
    url = gw.http_url
    async with gw.http.post(url + "/v1/complete:stream", data=orjson.dumps(body)) as stream:
        assert (await stream.content.readline()).startswith(b"data: ")
        unary_call = asyncio.create_task(
            gw.http.post(url + "/v1/complete", data=orjson.dumps(unary))
        )
        grpc_call = gw.stub.Complete(
            pb.CompleteRequest(model="slow", messages=[pb.Message(role="user", content="hi")])
        )
        await asyncio.sleep(0.2)  # both are waiting on the provider
        stopping = asyncio.create_task(gw.gateway.stop())
        events = await read_sse(stream)
        async with await unary_call as reply:
            error = orjson.loads(await reply.read())["error"]
            assert reply.status == 503
            assert reply.headers["Retry-After"] == "1"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await grpc_call
        await stopping
    assert events[-2][0] == "error"
    assert orjson.loads(events[-2][1])["error"]["code"] == "UNAVAILABLE"
    assert events[-1] == ("message", "[DONE]")
    assert (error["code"], error["message"]) == ("UNAVAILABLE", SHUTTING_DOWN)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == SHUTTING_DOWN
    after = {key: requests_counted(*key, "UNAVAILABLE") for key in before}
    assert {key: after[key] - before[key] for key in before} == {
        ("Complete", "http"): 1,
        ("Complete", "grpc"): 1,
        ("StreamComplete", "http"): 1,
        ("StreamComplete", "grpc"): 0,
    }
