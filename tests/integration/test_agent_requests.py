"""Agent fields over both transports: refused where the request or the deployment cannot hold
them, with the field (and the provider) named, before any provider is called."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import RunningGateway, StartGateway

#: A mock deployment that takes text only, like the simplest vendor.
TEXT_MOCK = ProviderSettings(
    name="mock", kind="mock", models=("mock",), options={"capabilities": "text"}
)


async def json_error(gw: RunningGateway, body: dict[str, Any]) -> tuple[int, str]:
    async with gw.http.post(f"{gw.http_url}/v1/complete", json=body) as response:
        return response.status, (await response.json())["error"]["message"]


async def grpc_error(gw: RunningGateway, request: pb.CompleteRequest) -> tuple[Any, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.Complete(request)
    return caught.value.code(), caught.value.details() or ""


async def test_content_and_parts_together_are_invalid_over_both_transports(
    gw: RunningGateway,
) -> None:
    both = pb.Message(role="user", content="hi", parts=[pb.ContentPart(text="hi")])
    body = {
        "model": "mock",
        "messages": [{"role": "user", "content": "hi", "parts": [{"text": "hi"}]}],
    }

    assert await grpc_error(gw, pb.CompleteRequest(model="mock", messages=[both])) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "messages[0]: set content or parts, not both",
    )
    assert await json_error(gw, body) == (400, "messages[0]: set content or parts, not both")


async def test_what_the_deployment_cannot_do_is_invalid_naming_field_and_provider(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(providers=(TEXT_MOCK,))
    body = {
        "model": "mock",
        "messages": [{"role": "user", "content": "hi"}],
        "responseFormat": {"type": "RESPONSE_FORMAT_TYPE_JSON_OBJECT"},
        "seed": 3,
    }
    request = pb.CompleteRequest(
        model="mock",
        messages=[pb.Message(role="user", content="hi")],
        seed=3,
    )

    assert await grpc_error(gw, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "seed: provider 'mock' cannot take a seed",
    )
    assert await json_error(gw, body) == (
        400,
        "response_format.type: provider 'mock' cannot answer with a JSON object",
    )


async def test_a_stream_is_refused_the_same_way(gw: RunningGateway) -> None:
    request = pb.StreamCompleteRequest(
        model="mock",
        messages=[pb.Message(role="user", content="hi")],
        reasoning_effort="maximal",
    )
    call = gw.stub.StreamComplete(request)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("reasoning_effort: must be one of")
