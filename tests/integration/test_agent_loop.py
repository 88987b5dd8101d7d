"""An agent's requests end to end over gRPC and JSON, against the built-in mock: a two-turn
tool loop, parallel calls, images (data URLs, and https URLs the gateway fetches from an
allow-listed server), a JSON-schema answer, the cache replaying a tool-call stream, and a
fallback that skips a deployment unable to take images."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import orjson
import pytest
from google.protobuf.struct_pb2 import Struct

from gateway.config.settings import UpstreamSettings
from gateway.pipeline.image_fetch import ImageFetchPolicy
from gateway.pipeline.image_guard import AddressPolicy
from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.image_server import PNG, ImageServer
from tests.fakes.tls import LoopbackAuthority
from tests.sse import read_sse
from tests.upstream_support import authority_fixture  # noqa: F401

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
WEATHER_JSON = {"name": "get_weather", "description": "Weather now", "parameters": WEATHER_SCHEMA}
TIME_JSON = {"name": "get_time"}
ASK = "What is the weather in Paris?"


def struct(value: dict[str, Any]) -> Struct:
    made = Struct()
    made.update(value)
    return made


def weather_tool() -> pb.Tool:
    return pb.Tool(name="get_weather", description="Weather now", parameters=struct(WEATHER_SCHEMA))


async def post(gw: RunningGateway, body: dict[str, Any]) -> dict[str, Any]:
    async with gw.http.post(f"{gw.http_url}/v1/complete", data=orjson.dumps(body)) as reply:
        answer: dict[str, Any] = await reply.json()
        assert reply.status == 200, answer
        return answer


async def post_stream(gw: RunningGateway, body: dict[str, Any]) -> list[dict[str, Any]]:
    url = f"{gw.http_url}/v1/complete:stream"
    async with gw.http.post(url, data=orjson.dumps(body)) as reply:
        assert reply.status == 200
        events = await read_sse(reply)
    return [orjson.loads(data) for _, data in events if data != "[DONE]"]


# -- the tool loop --------------------------------------------------------------------------------


async def test_a_two_turn_tool_loop_over_grpc(gw: RunningGateway) -> None:
    ask = pb.Message(role="user", content=ASK)
    first = await gw.stub.Complete(
        pb.CompleteRequest(model="mock", messages=[ask], tools=[weather_tool()])
    )

    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert (call.name, json.loads(call.arguments)) == (
        "get_weather",
        {"city": "sample", "unit": "celsius"},
    )
    history = [
        ask,
        pb.Message(role="assistant", tool_calls=first.tool_calls),
        pb.Message(role="tool", tool_call_id=call.id, content="18 degrees and sunny"),
    ]
    second = await gw.stub.Complete(
        pb.CompleteRequest(model="mock", messages=history, tools=[weather_tool()])
    )

    assert (second.finish_reason, list(second.tool_calls)) == ("stop", [])
    assert second.content == "The tool get_weather returned: 18 degrees and sunny"


async def test_a_two_turn_tool_loop_over_json_with_reasoning_sent_back(gw: RunningGateway) -> None:
    body: dict[str, Any] = {
        "model": "mock",
        "messages": [{"role": "user", "content": ASK}],
        "tools": [WEATHER_JSON],
        "toolChoice": {"mode": "TOOL_CHOICE_MODE_TOOL", "name": "get_weather"},
        "reasoningEffort": "low",
    }
    first = await post(gw, body)

    assert first["finish_reason"] == "tool_calls"
    assert first["reasoning"] == "Reasoning (low): I will call get_weather."
    assert first["usage"]["reasoning_tokens"] == len(first["reasoning"].split())
    [call] = first["tool_calls"]
    body["messages"] += [
        {
            "role": "assistant",
            "tool_calls": first["tool_calls"],
            "reasoning": first["reasoning_parts"],
        },
        {"role": "tool", "tool_call_id": call["id"], "parts": [{"text": '{"temp": 18}'}]},
    ]
    second = await post(gw, body)

    assert second["finish_reason"] == "stop"
    assert second["content"] == 'The tool get_weather returned: {"temp": 18}'
    assert not second.get("tool_calls")


async def test_parallel_calls_stream_as_deltas_with_dense_indexes_over_both_transports(
    gw: RunningGateway,
) -> None:
    said = "call get_weather and get_time"
    request = pb.StreamCompleteRequest(
        model="mock",
        messages=[pb.Message(role="user", content=said)],
        tools=[weather_tool(), pb.Tool(name="get_time")],
    )
    grpc_deltas = [d async for m in gw.stub.StreamComplete(request) for d in m.tool_call_deltas]
    chunks = await post_stream(
        gw,
        {
            "model": "mock",
            "messages": [{"role": "user", "content": said}],
            "tools": [WEATHER_JSON, TIME_JSON],
        },
    )
    json_deltas = [d for c in chunks for d in c.get("tool_call_deltas", [])]

    for deltas in (
        [(d.index, d.id, d.name, d.arguments) for d in grpc_deltas],
        [
            (d.get("index", 0), d.get("id", ""), d.get("name", ""), d.get("arguments", ""))
            for d in json_deltas
        ],
    ):
        firsts = [(index, name) for index, id_, name, _ in deltas if id_]
        assert firsts == [(0, "get_weather"), (1, "get_time")]
        arguments = ["".join(a for i, _, _, a in deltas if i == n) for n in (0, 1)]
        assert [json.loads(a) for a in arguments] == [{"city": "sample", "unit": "celsius"}, {}]
    assert chunks[-1]["finish_reason"] == "tool_calls"


async def test_parallel_calls_off_calls_one_tool(gw: RunningGateway) -> None:
    answer = await post(
        gw,
        {
            "model": "mock",
            "messages": [{"role": "user", "content": "call get_weather and get_time"}],
            "tools": [WEATHER_JSON, TIME_JSON],
            "parallel_tool_calls": False,
        },
    )

    assert [c["name"] for c in answer["tool_calls"]] == ["get_weather"]


# -- structured output ----------------------------------------------------------------------------


async def test_a_json_schema_answer_follows_the_schema_over_both_transports(
    gw: RunningGateway,
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    form = pb.ResponseFormat(
        type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name="forecast", schema=struct(schema)
    )
    grpc_answer = await gw.stub.Complete(
        pb.CompleteRequest(
            model="mock",
            messages=[pb.Message(role="user", content="Paris")],
            response_format=form,
        )
    )
    json_answer = await post(
        gw,
        {
            "model": "mock",
            "messages": [{"role": "user", "content": "Paris"}],
            "response_format": {
                "type": "RESPONSE_FORMAT_TYPE_JSON_SCHEMA",
                "name": "forecast",
                "schema": schema,
            },
        },
    )

    # `minimum: 3` reached the provider as the integer 3, not 3.0.
    assert json.loads(grpc_answer.content) == {"city": "Paris", "days": 3}
    assert '"days": 3}' in grpc_answer.content
    assert json_answer["content"] == grpc_answer.content
    assert json_answer["finish_reason"] == "stop"


# -- images ---------------------------------------------------------------------------------------


@pytest.fixture
async def images(authority: LoopbackAuthority) -> AsyncIterator[ImageServer]:
    async with ImageServer(authority.server_context()) as server:
        yield server


def fetching_gateway(
    start_gateway: StartGateway, authority: LoopbackAuthority, *allow: str
) -> Awaitable[RunningGateway]:
    """A gateway trusting the image server's certificate, fetching from what `allow` lists."""
    return start_gateway(
        image_fetch=ImageFetchPolicy(addresses=AddressPolicy.from_entries(allow)),
        upstream=UpstreamSettings(ca_bundle=str(authority.ca_file)),
    )


async def test_a_data_url_image_reaches_the_mock_as_bytes(gw: RunningGateway) -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    message = pb.Message(
        role="user", parts=[pb.ContentPart(text="look"), pb.ContentPart(image=pb.Image(url=url))]
    )

    answer = await gw.stub.Complete(pb.CompleteRequest(model="mock", messages=[message]))

    assert answer.content.endswith(f"look [image image/png {len(PNG)} bytes]")


async def test_an_https_image_is_fetched_from_an_allow_listed_server_over_both_transports(
    start_gateway: StartGateway, authority: LoopbackAuthority, images: ImageServer
) -> None:
    gw = await fetching_gateway(start_gateway, authority, "127.0.0.1/32")
    url = images.url("/cat.png")
    message = pb.Message(
        role="user", parts=[pb.ContentPart(text="look"), pb.ContentPart(image=pb.Image(url=url))]
    )

    grpc_answer = await gw.stub.Complete(pb.CompleteRequest(model="mock", messages=[message]))
    json_answer = await post(
        gw,
        {
            "model": "mock",
            "messages": [{"role": "user", "parts": [{"text": "look"}, {"image": {"url": url}}]}],
        },
    )

    expected = f"look [image image/png {len(PNG)} bytes]"
    assert grpc_answer.content.endswith(expected)
    assert json_answer["content"].endswith(expected)
    assert images.hits == {"/cat.png": 2}  # once per call


async def test_an_https_image_on_a_server_not_allow_listed_is_invalid_naming_the_field(
    start_gateway: StartGateway, authority: LoopbackAuthority, images: ImageServer
) -> None:
    gw = await fetching_gateway(start_gateway, authority)
    body = {
        "model": "mock",
        "messages": [
            {
                "role": "user",
                "parts": [{"text": "look"}, {"image": {"url": images.url("/cat.png")}}],
            }
        ],
    }

    async with gw.http.post(f"{gw.http_url}/v1/complete", data=orjson.dumps(body)) as reply:
        status, error = reply.status, (await reply.json())["error"]

    assert (status, error["code"]) == (400, "INVALID_ARGUMENT")
    assert error["message"].startswith(
        "messages[0].parts[1].image.url: cannot fetch the image: refused: a loopback address"
    )
    assert images.hits == {}


async def test_a_fallback_that_cannot_take_images_is_skipped(start_gateway: StartGateway) -> None:
    slow = ProviderSettings(
        name="slow", kind="mock", models=("slow",), options={"latency_ms": 5000}
    )
    text = ProviderSettings(
        name="text", kind="mock", models=("text",), options={"capabilities": "text"}
    )
    vision = ProviderSettings(name="vision", kind="mock", models=("vision",))
    gw = await start_gateway(
        providers=(slow, text, vision), per_try_timeout_seconds=0.2, primary_retries=0
    )
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    body = {
        "model": "slow",
        "fallback_models": ["text", "vision"],
        "messages": [{"role": "user", "parts": [{"text": "look"}, {"image": {"url": url}}]}],
    }

    answer = await post(gw, body)

    assert answer["provider"] == "vision"
    assert [(a["provider"], a["outcome"]) for a in answer["attempts"]] == [
        ("slow", "ATTEMPT_OUTCOME_TIMEOUT"),
        ("text", "ATTEMPT_OUTCOME_UNSUPPORTED"),
        ("vision", "ATTEMPT_OUTCOME_SUCCESS"),
    ]


# -- the cache ------------------------------------------------------------------------------------


async def test_the_cache_replays_a_tool_call_stream_exactly(start_gateway: StartGateway) -> None:
    gw = await start_gateway(cache_backend="memory")
    request = pb.StreamCompleteRequest(
        model="mock",
        messages=[pb.Message(role="user", content="call get_weather and get_time")],
        tools=[weather_tool(), pb.Tool(name="get_time")],
        temperature=0,
        reasoning_effort="medium",
    )

    first = [m async for m in gw.stub.StreamComplete(request)]
    again = [m async for m in gw.stub.StreamComplete(request)]

    def content(messages: list[pb.StreamCompleteResponse]) -> list[tuple[Any, ...]]:
        return [
            (
                m.delta,
                m.reasoning_delta,
                [(d.index, d.id, d.name, d.arguments) for d in m.tool_call_deltas],
                m.finish_reason,
                list(m.reasoning_parts),
            )
            for m in messages
        ]

    assert content(again) == content(first)
    assert [m.cached for m in again if m.finish_reason] == [True]
    assert [m.cached for m in first if m.finish_reason] == [False]
    assert any(m.tool_call_deltas for m in again)
    assert any(m.reasoning_delta for m in again)


async def test_an_https_image_for_gemini_is_fetched_and_sent_inline_never_dropped(
    start_gateway: StartGateway, authority: LoopbackAuthority, images: ImageServer
) -> None:
    async with FakeGemini() as gemini:
        gw = await start_gateway(
            providers=(
                ProviderSettings(
                    name="gemini",
                    kind="gemini",
                    base_url=gemini.base_url,
                    api_keys=("k",),
                    models=("gemini-2.5-flash",),
                ),
            ),
            image_fetch=ImageFetchPolicy(addresses=AddressPolicy.from_entries(("127.0.0.1",))),
            upstream=UpstreamSettings(ca_bundle=str(authority.ca_file)),
        )
        url = images.url("/cat.png")
        message = pb.Message(
            role="user",
            parts=[pb.ContentPart(text="look"), pb.ContentPart(image=pb.Image(url=url))],
        )

        await gw.stub.Complete(pb.CompleteRequest(model="gemini-2.5-flash", messages=[message]))

        [sent] = gemini.requests
        assert sent.body["contents"] == [
            {
                "role": "user",
                "parts": [
                    {"text": "look"},
                    {
                        "inlineData": {
                            "mimeType": "image/png",
                            "data": base64.b64encode(PNG).decode(),
                        }
                    },
                ],
            }
        ]
        assert gemini.rejections == []
