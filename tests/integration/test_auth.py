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


# What every OpenAI SDK sends, whatever key it was given.
SDK_BEARER = "Bearer sk-proj-anything-the-sdk-was-given"


async def test_without_any_auth_a_bearer_credential_is_ignored_on_grpc(
    gw: RunningGateway,
) -> None:
    metadata = (("authorization", SDK_BEARER),)
    response = await gw.stub.Complete(REQUEST, metadata=metadata)
    assert response.provider == "mock"
    stream = gw.stub.StreamComplete(
        pb.StreamCompleteRequest(model="mock", messages=REQUEST.messages), metadata=metadata
    )
    assert [m async for m in stream][-1].finish_reason
    status = await gw.stub.ProviderStatus(pb.ProviderStatusRequest(), metadata=metadata)
    assert status.providers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/complete"),
        ("POST", "/v1/complete:stream"),
        ("GET", "/v1/providers/status"),
    ],
)
async def test_without_any_auth_a_bearer_credential_is_ignored_on_json(
    gw: RunningGateway, method: str, path: str
) -> None:
    headers = {"Authorization": SDK_BEARER}
    async with gw.http.request(method, gw.http_url + path, data=BODY, headers=headers) as reply:
        assert reply.status == 200, await reply.text()


async def test_an_admin_token_alone_leaves_calls_open_and_admin_routes_closed(
    start_gateway: StartGateway,
) -> None:
    running = await start_gateway(admin_tokens=("the-admin",))
    headers = {"Authorization": SDK_BEARER}
    async with running.http.post(
        running.http_url + "/v1/complete", data=BODY, headers=headers
    ) as reply:
        assert reply.status == 200
    async with running.http.get(running.http_url + "/v1/admin/keys", headers=headers) as reply:
        assert reply.status == 403
    async with running.http.get(running.http_url + "/v1/admin/keys") as reply:
        assert reply.status == 403


@pytest.mark.parametrize(
    "overrides",
    [
        {"require_api_key": True},
        {"jwt_secret": "a-jwt-secret-of-enough-length-for-hs256"},
    ],
    ids=["require_api_key", "jwt"],
)
async def test_with_auth_configured_an_unknown_bearer_credential_is_401(
    start_gateway: StartGateway, overrides: dict[str, object]
) -> None:
    running = await start_gateway(**overrides)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.stub.Complete(REQUEST, metadata=(("authorization", SDK_BEARER),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    headers = {"Authorization": SDK_BEARER}
    async with running.http.post(
        running.http_url + "/v1/complete", data=BODY, headers=headers
    ) as reply:
        assert reply.status == 401
