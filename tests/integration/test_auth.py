"""INTERNAL_AUTH_TOKEN guards every GatewayService call on both transports; probes stay open."""

from __future__ import annotations

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2

from gateway.v1 import gateway_pb2 as pb
from tests.conftest import RunningGateway, StartGateway

TOKENS = ("token-one", "token-two")
REQUEST = pb.CompleteRequest(model="mock", messages=[pb.Message(role="user", content="hi")])
BODY = orjson.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture
async def guarded(start_gateway: StartGateway) -> RunningGateway:
    return await start_gateway(auth_tokens=TOKENS)


async def test_grpc_call_without_token_is_unauthenticated(guarded: RunningGateway) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await guarded.stub.Complete(REQUEST)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_grpc_call_with_wrong_token_is_unauthenticated(guarded: RunningGateway) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await guarded.stub.Complete(REQUEST, metadata=(("authorization", "Bearer nope"),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "nope" not in (caught.value.details() or "")


@pytest.mark.parametrize("token", TOKENS)
async def test_grpc_call_with_any_configured_token_succeeds(
    guarded: RunningGateway, token: str
) -> None:
    response = await guarded.stub.Complete(
        REQUEST, metadata=(("authorization", f"Bearer {token}"),)
    )
    assert response.provider == "mock"


async def test_grpc_stream_and_status_need_the_token_too(guarded: RunningGateway) -> None:
    stream = guarded.stub.StreamComplete(
        pb.StreamCompleteRequest(model="mock", messages=REQUEST.messages)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [m async for m in stream]
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await guarded.stub.ProviderStatus(pb.ProviderStatusRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_grpc_health_stays_open(guarded: RunningGateway) -> None:
    reply = await guarded.health.Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/complete"),
        ("POST", "/v1/complete:stream"),
        ("GET", "/v1/providers/status"),
    ],
)
async def test_json_routes_without_token_are_401(
    guarded: RunningGateway, method: str, path: str
) -> None:
    async with guarded.http.request(method, guarded.http_url + path, data=BODY) as reply:
        body = orjson.loads(await reply.read())
    assert reply.status == 401
    assert body["error"]["code"] == "UNAUTHENTICATED"


async def test_json_call_with_token_succeeds(guarded: RunningGateway) -> None:
    async with guarded.http.post(
        guarded.http_url + "/v1/complete",
        data=BODY,
        headers={"Authorization": "Bearer token-two"},
    ) as reply:
        assert reply.status == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_json_probes_stay_open(guarded: RunningGateway, path: str) -> None:
    async with guarded.http.get(guarded.http_url + path) as reply:
        assert reply.status == 200


async def test_without_configured_tokens_no_credential_is_needed(gw: RunningGateway) -> None:
    response = await gw.stub.Complete(REQUEST)
    assert response.provider == "mock"
