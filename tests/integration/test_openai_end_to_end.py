"""The gateway in front of a loopback fake OpenAI server, over both transports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from sqlalchemy import select

from gateway.pipeline.pricing import DEFAULT_PRICES
from gateway.store.engine import create_engine
from gateway.store.models import requests
from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import MOCK, RunningGateway, StartGateway
from tests.fakes.base import StreamBreak
from tests.fakes.openai_server import FakeOpenAI, Fault
from tests.sse import read_sse

API_KEY = "sk-test-0123456789abcdef"
#: Streams with one message per upstream chunk (no coalescing): the fake's own pieces.
PER_CHUNK = (("x-stream-coalescing", "off"),)
MODEL = "gpt-4o-mini"
MESSAGES = [pb.Message(role="system", content="Be brief."), pb.Message(role="user", content="Hi")]
BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
}
DISCONNECT_WAIT = 5.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def gw(start_gateway: StartGateway, fake: FakeOpenAI) -> RunningGateway:
    openai = ProviderSettings(
        name="openai", kind="openai", base_url=fake.base_url, api_keys=(API_KEY,), models=(MODEL,)
    )
    # One try per call: these tests pin how each upstream answer maps, not the retry policy.
    # A fake is not the vendor's public API: list prices apply to it only as configured prices.
    return await start_gateway(providers=(MOCK, openai), primary_retries=0, prices=DEFAULT_PRICES)


async def read_stream(call: Any) -> list[pb.StreamCompleteResponse]:
    return [message async for message in call]


async def circuit_after_the_cancel(gw: RunningGateway) -> tuple[int, int]:
    """The openai circuit's (state, consecutive failures): a cancel must leave it as it was."""
    reply = await gw.stub.ProviderStatus(pb.ProviderStatusRequest(provider="openai"))
    return reply.providers[0].circuit_state, reply.providers[0].consecutive_failures


async def ledger_statuses(gw: RunningGateway) -> list[tuple[str, str, str]]:
    """(transport, rpc, status) of every call in the ledger, once the gateway has stopped
    (stopping flushes the rows still buffered)."""
    await gw.gateway.stop()
    engine = create_engine(gw.gateway.settings.database_url)
    try:
        async with engine.connect() as connection:
            query = select(requests.c.transport, requests.c.rpc, requests.c.status)
            return [tuple(row) for row in await connection.execute(query)]
    finally:
        await engine.dispose()


async def collect(call: Any, into: list[pb.StreamCompleteResponse]) -> None:
    """Append each message of `call` to `into` until the stream ends or fails."""
    async for message in call:
        into.append(message)


async def test_grpc_complete_returns_what_the_fake_produced(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    response = await gw.stub.Complete(
        pb.CompleteRequest(model=MODEL, messages=MESSAGES, temperature=0, max_tokens=20)
    )
    assert response.content == fake.reply
    assert response.provider == "openai"
    assert response.model == MODEL
    assert response.finish_reason == "stop"
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 5, 17)
    assert usage.cached_tokens == 4


async def test_fake_sees_the_key_the_request_id_and_the_request(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    await gw.stub.Complete(
        pb.CompleteRequest(model=MODEL, messages=MESSAGES, temperature=0, max_tokens=20),
        metadata=(("x-request-id", "req-to-upstream"),),
    )
    [seen] = fake.requests
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["x-request-id"] == "req-to-upstream"
    assert seen.body["model"] == MODEL
    assert seen.body["messages"] == BODY["messages"]
    assert (seen.body["temperature"], seen.body["max_tokens"]) == (0, 20)
    assert "stream" not in seen.body


async def test_json_complete_returns_what_the_fake_produced(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    async with gw.http.post(gw.http_url + "/v1/complete", data=orjson.dumps(BODY)) as reply:
        body = orjson.loads(await reply.read())
    assert reply.status == 200
    assert body["content"] == fake.reply
    assert body["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "total_tokens": 17,
        "cached_tokens": 4,
        "cache_creation_tokens": 0,
        "reasoning_tokens": 0,
    }
    # gpt-4o-mini: 8 uncached x $0.15 + 4 cached x $0.075 + 5 out x $0.60, per million tokens
    assert body["cost_usd"] == pytest.approx(4.5e-6)


async def test_grpc_stream_relays_the_fakes_deltas_and_usage(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    request = pb.StreamCompleteRequest(model=MODEL, messages=MESSAGES)
    messages = await read_stream(gw.stub.StreamComplete(request, metadata=PER_CHUNK))
    *deltas, last = messages
    assert [m.delta for m in deltas] == fake.deltas
    assert last.finish_reason == "stop"
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (12, 5)
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}


async def test_sse_stream_relays_the_fakes_deltas_and_usage(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    async with gw.http.post(gw.http_url + "/v1/complete:stream", data=orjson.dumps(BODY)) as r:
        events = await read_sse(r)
    assert events[-1] == ("message", "[DONE]")
    chunks = [orjson.loads(data) for _, data in events[:-1]]
    assert "".join(c.get("delta", "") for c in chunks) == fake.reply
    assert chunks[-1]["usage"]["completion_tokens"] == 5


async def test_grpc_stream_cut_by_upstream_ends_unavailable_not_ok(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(break_after=2, break_with="cut"))
    request = pb.StreamCompleteRequest(model=MODEL, messages=MESSAGES)
    call = gw.stub.StreamComplete(request, metadata=PER_CHUNK)
    received: list[pb.StreamCompleteResponse] = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(call, received)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    # A reset connection may drop bytes already sent, so the second delta may not arrive.
    assert 1 <= len(received) <= 2
    assert [m.delta for m in received] == fake.deltas[: len(received)]
    assert not any(m.finish_reason for m in received)


@pytest.mark.parametrize("how", ["cut", "eof", "malformed", "error_event"])
async def test_sse_stream_broken_upstream_ends_with_an_error_event(
    gw: RunningGateway, fake: FakeOpenAI, how: StreamBreak
) -> None:
    fake.fail_next(Fault(break_after=2, break_with=how))
    url = gw.http_url + "/v1/complete:stream"
    async with gw.http.post(url, data=orjson.dumps(BODY), headers=dict(PER_CHUNK)) as r:
        assert r.status == 200
        events = await read_sse(r)
    kinds = [kind for kind, _ in events]
    assert kinds[-2:] == ["error", "message"]
    assert events[-1] == ("message", "[DONE]")
    chunks = [orjson.loads(data) for _, data in events[:-2]]
    assert 1 <= len(chunks) <= 2
    assert [c["delta"] for c in chunks] == fake.deltas[: len(chunks)]
    error = orjson.loads(events[-2][1])["error"]
    assert error["code"] == "UNAVAILABLE"
    assert error["request_id"]


UPSTREAM_ERRORS = [
    (Fault(status=400, error_type="invalid_request_error"), grpc.StatusCode.INVALID_ARGUMENT, 400),
    (Fault(status=401, error_message=f"Incorrect API key provided: {API_KEY}"), None, 500),
    (Fault(status=404, error_code="model_not_found"), grpc.StatusCode.NOT_FOUND, 404),
    (Fault(status=429, headers={"retry-after": "7"}), grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (Fault(status=500), grpc.StatusCode.UNAVAILABLE, 503),
    (Fault(status=503), grpc.StatusCode.UNAVAILABLE, 503),
    (Fault(raw_body=b"<html>bad gateway</html>"), grpc.StatusCode.UNAVAILABLE, 503),
]


@pytest.mark.parametrize(("fault", "code", "http_status"), UPSTREAM_ERRORS)
async def test_upstream_errors_map_to_the_same_status_on_both_transports(
    gw: RunningGateway,
    fake: FakeOpenAI,
    fault: Fault,
    code: grpc.StatusCode | None,
    http_status: int,
) -> None:
    code = code or grpc.StatusCode.INTERNAL
    fake.fail_next(fault, fault)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.Complete(pb.CompleteRequest(model=MODEL, messages=MESSAGES))
    assert caught.value.code() == code
    assert API_KEY not in (caught.value.details() or "")
    async with gw.http.post(gw.http_url + "/v1/complete", data=orjson.dumps(BODY)) as reply:
        text = await reply.text()
    assert reply.status == http_status
    assert orjson.loads(text)["error"]["code"] == code.name
    assert API_KEY not in text
    if http_status == 429:
        assert reply.headers["Retry-After"] == "7"


async def test_upstream_error_before_the_first_chunk_gets_an_http_status(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(status=503))
    async with gw.http.post(gw.http_url + "/v1/complete:stream", data=orjson.dumps(BODY)) as r:
        body = orjson.loads(await r.read())
    assert r.status == 503
    assert body["error"]["code"] == "UNAVAILABLE"


async def test_grpc_cancel_aborts_the_upstream_request(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(delay=30))
    call = gw.stub.Complete(pb.CompleteRequest(model=MODEL, messages=MESSAGES))
    await asyncio.wait_for(fake.request_received.wait(), DISCONNECT_WAIT)
    call.cancel()
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)
    assert await call.code() == grpc.StatusCode.CANCELLED
    assert await circuit_after_the_cancel(gw) == (pb.CIRCUIT_STATE_CLOSED, 0)
    assert await ledger_statuses(gw) == [("grpc", "Complete", "CANCELLED")]


async def test_grpc_stream_cancel_aborts_the_upstream_stream(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(chunk_delay=1.0))
    call = gw.stub.StreamComplete(pb.StreamCompleteRequest(model=MODEL, messages=MESSAGES))
    await call.read()
    call.cancel()
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)
    assert await call.code() == grpc.StatusCode.CANCELLED
    assert await circuit_after_the_cancel(gw) == (pb.CIRCUIT_STATE_CLOSED, 0)
    assert await ledger_statuses(gw) == [("grpc", "StreamComplete", "CANCELLED")]


async def test_http_client_disconnect_aborts_the_upstream_request(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(delay=30))
    async with aiohttp.ClientSession() as client:
        request = asyncio.create_task(
            client.post(gw.http_url + "/v1/complete", data=orjson.dumps(BODY))
        )
        await asyncio.wait_for(fake.request_received.wait(), DISCONNECT_WAIT)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)
    assert await circuit_after_the_cancel(gw) == (pb.CIRCUIT_STATE_CLOSED, 0)
    assert await ledger_statuses(gw) == [("http", "Complete", "CANCELLED")]


async def test_sse_client_disconnect_aborts_the_upstream_stream(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(chunk_delay=1.0))
    async with aiohttp.ClientSession() as client:
        reply = await client.post(gw.http_url + "/v1/complete:stream", data=orjson.dumps(BODY))
        await reply.content.readline()
        reply.close()
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)
    assert await circuit_after_the_cancel(gw) == (pb.CIRCUIT_STATE_CLOSED, 0)
    assert await ledger_statuses(gw) == [("http", "StreamComplete", "CANCELLED")]


async def test_grpc_deadline_bounds_the_upstream_call(gw: RunningGateway, fake: FakeOpenAI) -> None:
    fake.fail_next(Fault(delay=30))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.Complete(pb.CompleteRequest(model=MODEL, messages=MESSAGES), timeout=0.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)


async def test_json_timeout_field_bounds_the_call_with_504(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(delay=30))
    body = {**BODY, "timeout": "0.3s"}
    async with gw.http.post(gw.http_url + "/v1/complete", data=orjson.dumps(body)) as reply:
        error = orjson.loads(await reply.read())["error"]
    assert reply.status == 504
    assert error["code"] == "DEADLINE_EXCEEDED"
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)
