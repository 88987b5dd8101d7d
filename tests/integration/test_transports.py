"""Both transports serve all three RPCs from the one core, with the built-in mock provider."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.v1 import gateway_pb2 as pb
from tests.conftest import RunningGateway
from tests.sse import read_sse

HELLO = [pb.Message(role="user", content="hello gateway")]
HELLO_JSON = {"model": "mock", "messages": [{"role": "user", "content": "hello gateway"}]}


async def test_grpc_complete_returns_the_mock_completion(gw: RunningGateway) -> None:
    response = await gw.stub.Complete(pb.CompleteRequest(model="mock", messages=HELLO))
    assert response.provider == "mock"
    assert response.model == "mock"
    assert response.content.endswith("You said: hello gateway")
    assert response.finish_reason == "stop"
    assert response.usage.completion_tokens == len(response.content.split())
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )
    assert [a.outcome for a in response.attempts] == [pb.ATTEMPT_OUTCOME_SUCCESS]


PER_CHUNK = (("x-stream-coalescing", "off"),)


async def test_grpc_stream_opted_out_of_coalescing_sends_one_message_per_delta(
    gw: RunningGateway,
) -> None:
    request = pb.StreamCompleteRequest(model="mock", messages=HELLO)
    call = gw.stub.StreamComplete(request, metadata=PER_CHUNK)
    messages = [m async for m in call]
    assert await call.code() == grpc.StatusCode.OK
    *deltas, last = messages
    text = "".join(m.delta for m in deltas)
    assert text.endswith("You said: hello gateway")
    assert [m.delta.strip() for m in deltas] == text.split()  # the mock's chunks: a word each
    assert all(not m.finish_reason for m in deltas)
    assert (last.delta, last.finish_reason) == ("", "stop")
    assert last.usage.completion_tokens == len(text.split())
    assert {m.id for m in messages} == {deltas[0].id}


async def test_grpc_stream_sends_deltas_that_waited_merged_with_the_same_text(
    gw: RunningGateway,
) -> None:
    request = pb.StreamCompleteRequest(model="mock", messages=HELLO)
    per_chunk = [m async for m in gw.stub.StreamComplete(request, metadata=PER_CHUNK)]
    call = gw.stub.StreamComplete(request)
    merged = [m async for m in call]
    assert await call.code() == grpc.StatusCode.OK
    # The mock yields its words without waiting: all of them wait for the first write.
    assert len(merged) < len(per_chunk)
    assert "".join(m.delta for m in merged) == "".join(m.delta for m in per_chunk)
    assert merged[-1].finish_reason == "stop"
    assert merged[-1].usage == per_chunk[-1].usage
    assert all(not m.finish_reason for m in merged[:-1])


async def test_grpc_provider_status_lists_deployments(gw: RunningGateway) -> None:
    response = await gw.stub.ProviderStatus(pb.ProviderStatusRequest())
    configured = [p for p in response.providers if p.configured]
    assert [p.name for p in configured] == ["mock"]
    assert configured[0].kind == "mock"
    assert list(configured[0].models) == ["mock"]
    assert configured[0].circuit_state == pb.CIRCUIT_STATE_CLOSED


async def test_provider_status_lists_unconfigured_adapter_kinds_as_such(
    gw: RunningGateway,
) -> None:
    response = await gw.stub.ProviderStatus(pb.ProviderStatusRequest())
    unconfigured = {p.name: p for p in response.providers if not p.configured}
    assert "openai" in unconfigured
    assert "gpt-4o-mini" in unconfigured["openai"].models
    assert not unconfigured["openai"].healthy


async def test_grpc_provider_status_for_an_unknown_provider_is_not_found(
    gw: RunningGateway,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.ProviderStatus(pb.ProviderStatusRequest(provider="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "mock" in (caught.value.details() or "")


async def test_grpc_unary_echoes_the_callers_request_id_in_trailing_metadata(
    gw: RunningGateway,
) -> None:
    call = gw.stub.Complete(
        pb.CompleteRequest(model="mock", messages=HELLO), metadata=(("x-request-id", "req-42"),)
    )
    await call
    assert ("x-request-id", "req-42") in tuple(await call.trailing_metadata())
    assert ("x-request-id", "req-42") not in tuple(await call.initial_metadata())


async def test_grpc_generates_a_request_id_when_none_is_sent(gw: RunningGateway) -> None:
    call = gw.stub.Complete(pb.CompleteRequest(model="mock", messages=HELLO))
    await call
    ids = [v for k, v in tuple(await call.trailing_metadata()) if k == "x-request-id"]
    assert len(ids) == 1
    assert len(str(ids[0])) == 32


async def test_grpc_unary_error_carries_the_request_id_in_trailing_metadata(
    gw: RunningGateway,
) -> None:
    call = gw.stub.Complete(
        pb.CompleteRequest(model="gpt-99", messages=HELLO), metadata=(("x-request-id", "r-7"),)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert ("x-request-id", "r-7") in tuple(caught.value.trailing_metadata() or ())


async def test_grpc_stream_sends_the_request_id_in_initial_metadata(gw: RunningGateway) -> None:
    call = gw.stub.StreamComplete(
        pb.StreamCompleteRequest(model="mock", messages=HELLO),
        metadata=(("x-request-id", "req-43"),),
    )
    assert ("x-request-id", "req-43") in tuple(await call.initial_metadata())
    assert [m async for m in call][-1].finish_reason == "stop"


async def test_grpc_unknown_model_is_not_found_listing_known_models(gw: RunningGateway) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.Complete(pb.CompleteRequest(model="gpt-99", messages=HELLO))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "known models: mock" in (caught.value.details() or "")


async def test_provider_slash_model_syntax_routes_to_that_provider(gw: RunningGateway) -> None:
    response = await gw.stub.Complete(pb.CompleteRequest(model="mock/any-name", messages=HELLO))
    assert response.provider == "mock"
    assert response.model == "any-name"


async def test_grpc_health_reports_serving_overall_and_per_service(gw: RunningGateway) -> None:
    for service in ("", "gateway.v1.GatewayService"):
        reply = await gw.health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_grpc_reflection_lists_the_services(gw: RunningGateway) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(gw.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names |= {s.name for s in reply.list_services_response.service}
    assert {"gateway.v1.GatewayService", "grpc.health.v1.Health"} <= names


async def post_json(gw: RunningGateway, path: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
    """POST `body` as JSON; return the status and the decoded JSON reply."""
    async with gw.http.post(gw.http_url + path, data=orjson.dumps(body), **kwargs) as reply:
        return reply.status, orjson.loads(await reply.read())


async def test_json_complete_returns_snake_case_fields(gw: RunningGateway) -> None:
    status, body = await post_json(gw, "/v1/complete", HELLO_JSON)
    assert status == 200
    assert body["provider"] == "mock"
    assert body["content"].endswith("You said: hello gateway")
    assert body["finish_reason"] == "stop"
    assert body["cached"] is False
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )
    assert body["attempts"][0]["outcome"] == "ATTEMPT_OUTCOME_SUCCESS"


async def test_json_accepts_lower_camel_case_fields(gw: RunningGateway) -> None:
    status, body = await post_json(gw, "/v1/complete", {**HELLO_JSON, "maxTokens": 3})
    assert status == 200
    assert body["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


async def test_json_and_grpc_give_the_same_answer(gw: RunningGateway) -> None:
    _, body = await post_json(gw, "/v1/complete", HELLO_JSON)
    response = await gw.stub.Complete(pb.CompleteRequest(model="mock", messages=HELLO))
    assert (body["id"], body["content"]) == (response.id, response.content)


@pytest.mark.parametrize(
    ("path", "extra"), [("/v1/complete:stream", {}), ("/v1/complete", {"stream": True})]
)
@pytest.mark.parametrize("coalescing", ["on", "off"])
async def test_json_stream_sends_sse_deltas_then_done(
    gw: RunningGateway, path: str, extra: dict[str, Any], coalescing: str
) -> None:
    headers = {"x-stream-coalescing": coalescing}
    body = orjson.dumps({**HELLO_JSON, **extra})
    async with gw.http.post(gw.http_url + path, data=body, headers=headers) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = await read_sse(r)
    assert events[-1] == ("message", "[DONE]")
    chunks = [orjson.loads(data) for kind, data in events[:-1]]
    assert all(kind == "message" for kind, _ in events)
    text = "".join(c.get("delta", "") for c in chunks)
    assert text.endswith("You said: hello gateway")
    assert chunks[-1]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == len(text.split())
    if coalescing == "off":  # one event per mock word, then the last message
        assert [c["delta"].strip() for c in chunks] == [*text.split(), ""]
    else:  # the words waited for the first write: merged
        assert len(chunks) < len(text.split())


async def test_json_provider_status(gw: RunningGateway) -> None:
    async with gw.http.get(gw.http_url + "/v1/providers/status") as reply:
        body = orjson.loads(await reply.read())
    assert reply.status == 200
    assert body["providers"][0]["name"] == "mock"
    assert body["providers"][0]["circuit_state"] == "CIRCUIT_STATE_CLOSED"


async def test_json_echoes_the_callers_request_id(gw: RunningGateway) -> None:
    async with gw.http.post(
        gw.http_url + "/v1/complete",
        data=orjson.dumps(HELLO_JSON),
        headers={"x-request-id": "abc-123"},
    ) as reply:
        assert reply.headers["x-request-id"] == "abc-123"


async def test_json_error_carries_code_message_and_request_id(gw: RunningGateway) -> None:
    status, body = await post_json(
        gw, "/v1/complete", {**HELLO_JSON, "model": "nope"}, headers={"x-request-id": "r-9"}
    )
    assert status == 404
    assert body["error"]["code"] == "NOT_FOUND"
    assert "unknown model 'nope'" in body["error"]["message"]
    assert body["error"]["request_id"] == "r-9"


async def test_x_provider_header_pins_the_provider(gw: RunningGateway) -> None:
    status, body = await post_json(
        gw, "/v1/complete", {**HELLO_JSON, "model": "whatever"}, headers={"x-provider": "mock"}
    )
    assert status == 200
    assert (body["provider"], body["model"]) == ("mock", "whatever")


async def test_healthz_and_readyz_answer_while_serving(gw: RunningGateway) -> None:
    for path in ("/healthz", "/readyz"):
        async with gw.http.get(gw.http_url + path) as reply:
            assert reply.status == 200


async def test_metrics_endpoint_counts_requests(gw: RunningGateway) -> None:
    await gw.stub.Complete(pb.CompleteRequest(model="mock", messages=HELLO))
    async with gw.http.get(gw.metrics_url) as reply:
        text = await reply.text()
    assert 'gateway_requests_total{code="OK",rpc="Complete",transport="grpc"}' in text


async def raw_http(port: int, request: bytes) -> bytes:
    """Send raw bytes on a fresh connection and read the answer until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_http_server_header_names_no_versions(gw: RunningGateway) -> None:
    async with gw.http.post(gw.http_url + "/v1/complete", data=orjson.dumps(HELLO_JSON)) as ok:
        assert ok.status == 200
    async with gw.http.get(gw.http_url + "/v1/nothing") as missing:
        assert missing.status == 404
    async with gw.http.get(gw.metrics_url) as metrics:
        assert metrics.status == 200
    malformed = await raw_http(gw.gateway.http_port, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
    assert malformed.startswith(b"HTTP/1.")
    servers = [r.headers.get("Server") for r in (ok, missing, metrics)]
    servers += [
        line.split(b":", 1)[1].strip().decode()
        for line in malformed.split(b"\r\n")
        if line.lower().startswith(b"server:")
    ]
    assert servers == ["ai-gateway"] * 4
