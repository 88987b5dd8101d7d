"""An Anthropic tool loop with thinking on, through the whole gateway, over both transports:
the call and its thinking come back, and sent back with the result, the second turn works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from google.protobuf import struct_pb2

from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.anthropic_server import Answer, FakeAnthropic
from tests.fakes.script import ToolCall as Call

MODEL = "claude-sonnet-4-5"
CITY: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        server.script(
            Answer(
                reasoning="I should look it up.",
                text="Checking.",
                tool_calls=[Call("get_weather", {"city": "Paris"}), Call("get_weather")],
            ),
            Answer(reasoning="Both answered.", text="18C in Paris."),
        )
        yield server


@pytest.fixture
async def gw(start_gateway: StartGateway, fake: FakeAnthropic) -> RunningGateway:
    claude = ProviderSettings(
        name="claude", kind="anthropic", base_url=fake.base_url, api_keys=("k",), models=(MODEL,)
    )
    return await start_gateway(providers=(claude,))


def grpc_request(*messages: pb.Message) -> dict[str, Any]:
    parameters = struct_pb2.Struct()
    parameters.update(CITY)
    return {
        "model": MODEL,
        "messages": [pb.Message(role="user", content="Weather in Paris?"), *messages],
        "tools": [pb.Tool(name="get_weather", parameters=parameters)],
        "reasoning_effort": "low",
    }


async def test_a_grpc_tool_loop_with_thinking_works_on_its_second_turn(
    gw: RunningGateway, fake: FakeAnthropic
) -> None:
    first = await gw.stub.Complete(pb.CompleteRequest(**grpc_request()))
    assert (first.content, first.finish_reason) == ("Checking.", "tool_calls")
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_weather", "{}"),
    ]
    assert first.reasoning == "I should look it up."
    turn = pb.Message(
        role="assistant",
        content="Checking.",
        tool_calls=first.tool_calls,
        reasoning=first.reasoning_parts,
    )
    results = [
        pb.Message(role="tool", content="18C", tool_call_id=first.tool_calls[0].id),
        pb.Message(role="tool", content="unknown city", tool_call_id=first.tool_calls[1].id),
    ]
    second = await gw.stub.Complete(pb.CompleteRequest(**grpc_request(turn, *results)))
    assert (second.content, second.finish_reason) == ("18C in Paris.", "stop")
    assert fake.rejections == []
    assert fake.requests[1].body["thinking"] == {"type": "enabled", "budget_tokens": 2048}


async def test_a_streamed_grpc_tool_loop_numbers_calls_from_zero_after_the_text(
    gw: RunningGateway, fake: FakeAnthropic
) -> None:
    chunks = [c async for c in gw.stub.StreamComplete(pb.StreamCompleteRequest(**grpc_request()))]
    deltas = [d for c in chunks for d in c.tool_call_deltas]
    assert [d.index for d in deltas if d.id] == [0, 1]
    assert {d.index for d in deltas} == {0, 1}
    assert "".join(c.delta for c in chunks) == "Checking."
    assert chunks[-1].finish_reason == "tool_calls"
    parts = [p for c in chunks for p in c.reasoning_parts]
    assert [p.text for p in parts] == ["I should look it up."]
    calls = [pb.ToolCall(id=d.id, name=d.name, arguments="") for d in deltas if d.id]
    for d in deltas:
        calls[d.index].arguments += d.arguments
    turn = pb.Message(role="assistant", tool_calls=calls, reasoning=parts)
    results = [pb.Message(role="tool", content="18C", tool_call_id=c.id) for c in calls]
    request = pb.StreamCompleteRequest(**grpc_request(turn, *results))
    second = [c async for c in gw.stub.StreamComplete(request)]
    assert "".join(c.delta for c in second) == "18C in Paris."
    assert fake.rejections == []


async def test_a_json_tool_loop_with_thinking_works_on_its_second_turn(
    gw: RunningGateway, fake: FakeAnthropic
) -> None:
    asked: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"name": "get_weather", "parameters": CITY}],
        "reasoningEffort": "low",
    }
    async with gw.http.post(f"{gw.http_url}/v1/complete", json=asked) as response:
        assert response.status == 200
        first = orjson.loads(await response.read())
    assert first["finish_reason"] == "tool_calls"
    calls = first["tool_calls"]
    asked["messages"] += [
        {"role": "assistant", "tool_calls": calls, "reasoning": first["reasoning_parts"]},
        *({"role": "tool", "content": "18C", "tool_call_id": c["id"]} for c in calls),
    ]
    async with gw.http.post(f"{gw.http_url}/v1/complete", json=asked) as response:
        assert response.status == 200
        second = orjson.loads(await response.read())
    assert second["content"] == "18C in Paris."
    assert fake.rejections == []


async def test_a_json_request_leaving_a_call_unanswered_is_invalid_before_anthropic(
    gw: RunningGateway, fake: FakeAnthropic
) -> None:
    call = {"id": "toolu_01A", "name": "get_weather", "arguments": "{}"}
    asked = {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "user", "content": "Never mind."},
        ],
        "tools": [{"name": "get_weather", "parameters": CITY}],
    }
    async with gw.http.post(f"{gw.http_url}/v1/complete", json=asked) as response:
        status, error = response.status, (await response.json())["error"]["message"]
    assert status == 400
    assert error.startswith("messages[1].tool_calls[0]: provider 'claude' needs a tool result")
    assert fake.requests == []
