"""Bad input gets a clear INVALID_ARGUMENT/400 (413 for size) naming the field; no provider call."""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import orjson
import pytest

from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import MOCK, RunningGateway, StartGateway
from tests.fakes.openai_server import FakeOpenAI

MAX_BYTES = 64 * 1024
GOOD: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def gw(start_gateway: StartGateway, fake: FakeOpenAI) -> RunningGateway:
    openai = ProviderSettings(
        name="openai", kind="openai", base_url=fake.base_url, models=("gpt-4o-mini",)
    )
    return await start_gateway(providers=(MOCK, openai), max_request_bytes=MAX_BYTES)


JSON_CASES: list[tuple[str, bytes, str]] = [
    ("malformed JSON", b'{"model": "gpt-4o-mini", "messages": [', "body: malformed JSON"),
    ("not an object", b'["model"]', "body: must be a JSON object"),
    ("unknown field", orjson.dumps({**GOOD, "api_base": "http://evil"}), '"api_base"'),
    ("wrong type", orjson.dumps({**GOOD, "max_tokens": "many"}), "max_tokens"),
    ("wrong type", orjson.dumps({**GOOD, "messages": "hi"}), "messages"),
    ("wrong type", orjson.dumps({**GOOD, "temperature": "hot"}), "temperature"),
    ("bad duration", orjson.dumps({**GOOD, "timeout": "soon"}), "timeout"),
    ("empty messages", orjson.dumps({**GOOD, "messages": []}), "messages:"),
    ("negative max_tokens", orjson.dumps({**GOOD, "max_tokens": -5}), "max_tokens:"),
    ("bad role", orjson.dumps({**GOOD, "messages": [{"role": "x", "content": "y"}]}), "role"),
    ("missing model", orjson.dumps({"messages": GOOD["messages"]}), "model:"),
    ("stream not bool", orjson.dumps({**GOOD, "stream": "yes"}), "stream:"),
]


@pytest.mark.parametrize("path", ["/v1/complete", "/v1/complete:stream"])
@pytest.mark.parametrize(("case", "raw", "names"), JSON_CASES, ids=[c[0] for c in JSON_CASES])
async def test_json_bad_input_is_400_naming_the_field(
    gw: RunningGateway, fake: FakeOpenAI, path: str, case: str, raw: bytes, names: str
) -> None:
    async with gw.http.post(gw.http_url + path, data=raw) as reply:
        error = orjson.loads(await reply.read())["error"]
    assert reply.status == 400, case
    assert error["code"] == "INVALID_ARGUMENT"
    assert names in error["message"]
    assert fake.requests == []


@pytest.mark.parametrize("path", ["/v1/complete", "/v1/complete:stream"])
async def test_json_oversize_body_is_413(gw: RunningGateway, fake: FakeOpenAI, path: str) -> None:
    huge = {**GOOD, "messages": [{"role": "user", "content": "x" * (MAX_BYTES + 1)}]}
    async with gw.http.post(gw.http_url + path, data=orjson.dumps(huge)) as reply:
        error = orjson.loads(await reply.read())["error"]
    assert reply.status == 413
    assert error["code"] == "INVALID_ARGUMENT"
    assert str(MAX_BYTES) in error["message"]
    assert fake.requests == []


GRPC_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("empty messages", {"messages": []}, "messages:"),
    ("negative max_tokens", {"max_tokens": -1}, "max_tokens:"),
    ("temperature too high", {"temperature": 3.5}, "temperature:"),
    ("bad role", {"messages": [pb.Message(role="robot", content="hi")]}, "messages[0].role"),
    ("missing model", {"model": ""}, "model:"),
]


def grpc_request(message_type: type[Any], overrides: dict[str, Any]) -> Any:
    fields: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [pb.Message(role="user", content="hi")],
    }
    return message_type(**{**fields, **overrides})


@pytest.mark.parametrize(("case", "overrides", "names"), GRPC_CASES, ids=[c[0] for c in GRPC_CASES])
async def test_grpc_bad_input_is_invalid_argument_naming_the_field(
    gw: RunningGateway, fake: FakeOpenAI, case: str, overrides: dict[str, Any], names: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await gw.stub.Complete(grpc_request(pb.CompleteRequest, overrides))
    stream = gw.stub.StreamComplete(grpc_request(pb.StreamCompleteRequest, overrides))
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        _ = [m async for m in stream]
    for caught in (unary, streamed):
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
        assert names in (caught.value.details() or "")
    assert fake.requests == []


async def test_grpc_oversize_message_is_refused(gw: RunningGateway, fake: FakeOpenAI) -> None:
    big = [pb.Message(role="user", content="x" * (MAX_BYTES + 1))]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.Complete(pb.CompleteRequest(model="gpt-4o-mini", messages=big))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert fake.requests == []


async def test_unknown_route_is_a_json_404(gw: RunningGateway) -> None:
    async with gw.http.post(gw.http_url + "/v1/nothing", data=b"{}") as reply:
        error = orjson.loads(await reply.read())["error"]
    assert reply.status == 404
    assert "/v1/nothing" in error["message"]


GOOD_MESSAGE = grpc_request(pb.CompleteRequest, {}).SerializeToString()
UNDECODABLE: list[tuple[str, bytes]] = [
    ("truncated", GOOD_MESSAGE[:-3]),
    ("garbage", b"\xff" * 8),
    ("invalid utf-8", b"\x0a\x02\xc3\x28"),
    ("inner length lies", b"\x0a\x7fgpt"),
]


def as_bytes(message: bytes) -> bytes:
    return message


@pytest.mark.parametrize(("case", "raw"), UNDECODABLE, ids=[c[0] for c in UNDECODABLE])
async def test_grpc_undecodable_message_is_invalid_argument_without_implementation_detail(
    gw: RunningGateway, fake: FakeOpenAI, case: str, raw: bytes
) -> None:
    service = "/gateway.v1.GatewayService/"
    unary = gw.channel.unary_unary(
        service + "Complete", request_serializer=as_bytes, response_deserializer=as_bytes
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught_unary:
        await unary(raw)
    streamed = gw.channel.unary_stream(
        service + "StreamComplete", request_serializer=as_bytes, response_deserializer=as_bytes
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught_stream:
        _ = [m async for m in streamed(raw)]
    health = gw.channel.unary_unary(
        "/grpc.health.v1.Health/Check", request_serializer=as_bytes, response_deserializer=as_bytes
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught_health:
        await health(b"\x0a\x7fgateway")
    for caught in (caught_unary, caught_stream, caught_health):
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
        details = caught.value.details() or ""
        assert details.startswith("request message: undecodable")
        assert "Error" not in details
        assert "protobuf" not in details
    assert fake.requests == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "x-gzip"])
async def test_a_content_encoding_the_body_does_not_have_is_400(
    gw: RunningGateway, fake: FakeOpenAI, encoding: str
) -> None:
    headers = {"Content-Encoding": encoding}
    async with gw.http.post(
        gw.http_url + "/v1/complete", data=orjson.dumps(GOOD), headers=headers
    ) as reply:
        error = orjson.loads(await reply.read())["error"]
    assert reply.status == 400
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["message"] == f"body: not valid {encoding} data (Content-Encoding: {encoding})"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("identity", bytes)],
)
async def test_a_body_compressed_as_its_content_encoding_says_is_accepted(
    gw: RunningGateway, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    body = {**GOOD, "model": "mock"}
    async with gw.http.post(
        gw.http_url + "/v1/complete",
        data=encode(orjson.dumps(body)),
        headers={"Content-Encoding": encoding},
    ) as reply:
        assert reply.status == 200
        assert orjson.loads(await reply.read())["provider"] == "mock"


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "made-up", "gzip, gzip"])
async def test_an_unsupported_content_encoding_is_415(
    gw: RunningGateway, fake: FakeOpenAI, encoding: str
) -> None:
    async with gw.http.post(
        gw.http_url + "/v1/complete",
        data=orjson.dumps(GOOD),
        headers={"Content-Encoding": encoding},
    ) as reply:
        error = orjson.loads(await reply.read())["error"]
    assert reply.status == 415
    assert error["code"] == "INVALID_ARGUMENT"
    assert "gzip, deflate or identity" in error["message"]
    assert fake.requests == []


async def test_a_compressed_body_is_held_to_the_size_limit_once_decompressed(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    bomb = gzip.compress(b" " * (50 * MAX_BYTES))  # 50 times the limit, a few KiB on the wire
    async with gw.http.post(
        gw.http_url + "/v1/complete", data=bomb, headers={"Content-Encoding": "gzip"}
    ) as reply:
        error = orjson.loads(await reply.read())["error"]
    assert reply.status == 413
    assert str(MAX_BYTES) in error["message"]
    assert fake.requests == []


async def send_head(port: int, head: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.replace("\n", "\r\n").encode())
    await writer.drain()
    return reader, writer


async def test_a_body_that_stops_coming_gets_408_and_the_connection_closes(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(body_read_timeout_seconds=0.5)
    head = "POST /v1/complete HTTP/1.1\nHost: gw\nContent-Length: 1000\n\n"
    reader, writer = await send_head(gw.gateway.http_port, head)
    writer.write(b'{"model": ')
    started = time.monotonic()
    answer = await asyncio.wait_for(reader.read(), 5)  # read to EOF: the server closed
    writer.close()
    assert 0.4 < time.monotonic() - started < 3
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408 ")
    error = orjson.loads(body)["error"]
    assert error["code"] == "DEADLINE_EXCEEDED"
    assert error["message"] == "body: not received within 0.5s"


async def test_credentials_are_checked_before_the_body_is_read(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(auth_tokens=("right-token",), body_read_timeout_seconds=30.0)
    for credential in ("", "Authorization: Bearer wrong-token\n"):
        head = f"POST /v1/complete HTTP/1.1\nHost: gw\n{credential}Content-Length: 1000\n\n"
        reader, writer = await send_head(gw.gateway.http_port, head)  # and no body at all
        status = await asyncio.wait_for(reader.readline(), 2)
        writer.close()
        assert status.startswith(b"HTTP/1.1 401 ")
