"""Agents through the gateway to a loopback fake OpenAI, over both transports: a two-turn tool
loop with parallel calls and an image, a streamed tool call, and a JSON-schema answer."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from google.protobuf import struct_pb2

from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import MOCK, RunningGateway, StartGateway
from tests.fakes.base import Answer, ToolCall
from tests.fakes.openai_server import FakeOpenAI

MODEL = "gpt-4o-mini"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16)).decode()
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
QUESTION = {
    "role": "user",
    "parts": [
        {"text": "Weather in Paris and Rome? Also, where is this?"},
        {"image": {"url": f"data:image/png;base64,{PNG}"}},
    ],
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def gw(start_gateway: StartGateway, fake: FakeOpenAI) -> RunningGateway:
    openai = ProviderSettings(
        name="openai", kind="openai", base_url=fake.base_url, api_keys=("sk-x",), models=(MODEL,)
    )
    return await start_gateway(providers=(MOCK, openai), primary_retries=0)


async def complete(gw: RunningGateway, body: dict[str, Any]) -> dict[str, Any]:
    async with gw.http.post(gw.http_url + "/v1/complete", data=orjson.dumps(body)) as reply:
        answer: dict[str, Any] = orjson.loads(await reply.read())
        assert reply.status == 200, answer
        return answer


async def test_a_two_turn_tool_loop_over_json(gw: RunningGateway, fake: FakeOpenAI) -> None:
    fake.script(
        Answer(
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}),
                ToolCall("get_weather", {"city": "Rome"}),
            ]
        ),
        Answer(text="Paris is sunny, Rome rainy."),
    )
    first = await complete(gw, {"model": MODEL, "messages": [QUESTION], "tools": [WEATHER]})
    assert first["finish_reason"] == "tool_calls"
    calls = first["tool_calls"]
    assert [(c["name"], c["arguments"]) for c in calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_weather", '{"city":"Rome"}'),
    ]
    assert calls[0]["id"] != calls[1]["id"]
    results = [
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "rain"},
    ]
    history = [QUESTION, {"role": "assistant", "tool_calls": calls}, *results]
    second = await complete(gw, {"model": MODEL, "messages": history, "tools": [WEATHER]})
    assert (second["content"], second["finish_reason"]) == ("Paris is sunny, Rome rainy.", "stop")
    sent = fake.requests[1].body["messages"]
    assert sent[1]["tool_calls"][1]["id"] == calls[1]["id"]  # type: ignore[index]
    assert sent[2:] == [  # type: ignore[index]
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "rain"},
    ]


async def test_a_streamed_tool_call_over_grpc(gw: RunningGateway, fake: FakeOpenAI) -> None:
    fake.script(Answer(text="Let me look.", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]))
    parameters = struct_pb2.Struct()
    parameters.update(WEATHER["parameters"])  # type: ignore[arg-type]
    request = pb.CompleteRequest(
        model=MODEL,
        messages=[pb.Message(role="user", content="Weather in Oslo?")],
        tools=[pb.Tool(name="get_weather", parameters=parameters)],
        tool_choice=pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_REQUIRED),
    )
    messages = [m async for m in gw.stub.StreamComplete(request)]
    text = "".join(m.delta for m in messages)
    deltas = [d for m in messages for d in m.tool_call_deltas]
    assert text == "Let me look."
    assert {d.index for d in deltas} == {0}
    assert [d.name for d in deltas if d.name] == ["get_weather"]
    assert "".join(d.arguments for d in deltas) == '{"city":"Oslo"}'
    assert messages[-1].finish_reason == "tool_calls"
    assert fake.requests[0].body["tool_choice"] == "required"


async def test_a_json_schema_answer_over_json(gw: RunningGateway, fake: FakeOpenAI) -> None:
    fake.script(Answer.json({"city": "Paris", "sunny": True}))
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "sunny": {"type": "boolean"}},
        "required": ["city", "sunny"],
        "additionalProperties": False,
    }
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "response_format": {
            "type": "RESPONSE_FORMAT_TYPE_JSON_SCHEMA",
            "name": "weather",
            "schema": schema,
            "strict": True,
        },
        "seed": 5,
    }
    answer = await complete(gw, body)
    assert orjson.loads(answer["content"]) == {"city": "Paris", "sunny": True}
    assert answer["finish_reason"] == "stop"
    sent = fake.requests[0].body
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": schema, "strict": True},
    }
    assert sent["seed"] == 5
