"""Answers with tool calls and reasoning as response messages: unary, streamed, and as JSON."""

from __future__ import annotations

import orjson

from gateway.pipeline.types import Answer, Done, StreamHead, StreamItem
from gateway.transports.json_codec import render_completion
from gateway.transports.proto_convert import StreamMessages, complete_response
from gateway.v1 import gateway_pb2 as pb
from providers.types import (
    Completion,
    ReasoningDelta,
    ReasoningPart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

USAGE = Usage(prompt_tokens=20, completion_tokens=30, total_tokens=50, reasoning_tokens=12)
CALLED = Completion(
    "c-1",
    "m",
    "",
    "tool_calls",
    USAGE,
    tool_calls=(
        ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
        ToolCall("call_2", "get_weather", '{"city":"Rome"}'),
    ),
    reasoning="Two cities.",
    reasoning_parts=(ReasoningPart("Two cities.", signature="sig-1"), ReasoningPart(redacted="x")),
)


def test_a_unary_answer_carries_its_tool_calls_reasoning_and_reasoning_tokens() -> None:
    response = complete_response(Answer(CALLED, "local", 0.001))

    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_1", "get_weather", '{"city":"Paris"}'),
        ("call_2", "get_weather", '{"city":"Rome"}'),
    ]
    assert response.reasoning == "Two cities."
    assert list(response.reasoning_parts) == [
        pb.ReasoningPart(text="Two cities.", signature="sig-1"),
        pb.ReasoningPart(redacted="x"),
    ]
    assert response.usage.reasoning_tokens == 12


def test_a_unary_answer_renders_as_snake_case_json() -> None:
    body = orjson.loads(
        render_completion(complete_response(Answer(CALLED, "local", 0.0)), defaults=True)
    )

    assert body["tool_calls"][0] == {
        "id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert body["reasoning"] == "Two cities."
    assert body["reasoning_parts"][0] == {
        "text": "Two cities.",
        "signature": "sig-1",
        "redacted": "",
        "tool_call_id": "",
    }
    assert body["usage"]["reasoning_tokens"] == 12
    assert body["finish_reason"] == "tool_calls"


def test_a_plain_answer_renders_empty_agent_fields() -> None:
    plain = Completion("c-1", "m", "hello", "stop", Usage(1, 1, 2))

    body = orjson.loads(
        render_completion(complete_response(Answer(plain, "p", 0.0)), defaults=True)
    )

    assert (body["tool_calls"], body["reasoning"], body["reasoning_parts"]) == ([], "", [])


def test_each_stream_event_is_one_message_and_reasoning_state_waits_for_the_last() -> None:
    messages = StreamMessages()
    items: list[StreamItem] = [
        StreamHead("c-1", "m", "local"),
        ReasoningDelta("Two "),
        ReasoningDelta("cities."),
        ReasoningDelta(signature="sig-1"),
        TextDelta("Checking."),
        ToolCallDelta(0, "call_1", "get_weather"),
        ToolCallDelta(0, arguments='{"city":'),
        ToolCallDelta(0, arguments='"Paris"}'),
        ToolCallDelta(1, "call_2", "get_weather", '{"city":"Rome"}'),
        Done(Answer(CALLED, "local", 0.0)),
    ]

    sent = [m for m in map(messages.message, items) if m is not None]

    assert [m.reasoning_delta for m in sent[:2]] == ["Two ", "cities."]
    assert sent[2].delta == "Checking."
    deltas = [(d.index, d.id, d.name, d.arguments) for m in sent[3:7] for d in m.tool_call_deltas]
    assert deltas == [
        (0, "call_1", "get_weather", ""),
        (0, "", "", '{"city":'),
        (0, "", "", '"Paris"}'),
        (1, "call_2", "get_weather", '{"city":"Rome"}'),
    ]
    assert {(m.id, m.provider) for m in sent} == {("c-1", "local")}
    last = sent[-1]
    assert len(sent) == 8
    assert last.finish_reason == "tool_calls"
    assert [p.signature for p in last.reasoning_parts] == ["sig-1", ""]
    assert last.usage.reasoning_tokens == 12


def test_stream_messages_render_their_deltas_as_snake_case_json() -> None:
    messages = StreamMessages()
    messages.message(StreamHead("c-1", "m", "local"))
    first = messages.message(ToolCallDelta(0, "call_1", "get_weather"))
    assert first is not None

    body = orjson.loads(render_completion(first, defaults=False))

    assert body == {
        "id": "c-1",
        "model": "m",
        "provider": "local",
        "tool_call_deltas": [{"id": "call_1", "name": "get_weather"}],
    }
