"""`MockProvider` and the wave-2 shape: tool calls, tool results, JSON answers, images,
reasoning, each the same way every time and the same streamed as unary."""

from __future__ import annotations

import json

import pytest

from providers.base import ProviderSettings, check_capabilities
from providers.mock import MockProvider
from providers.mock_samples import sample_value
from providers.types import (
    ChatRequest,
    Completion,
    CompletionBuilder,
    Finish,
    ImagePart,
    Message,
    Meta,
    ReasoningDelta,
    ResponseFormat,
    ResponseFormatType,
    Sampling,
    StreamEvent,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
)

WEATHER = Tool(
    "get_weather",
    "The weather in a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1},
            "verbose": {"type": "boolean"},
        },
        "required": ["city", "unit", "days"],
    },
)
TIME = Tool("get_time", "The time now")
ASK = Message.of_text("user", "What is the weather in Paris?")


def mock() -> MockProvider:
    return MockProvider(ProviderSettings(name="mock", kind="mock"))


def request(*messages: Message, **fields: object) -> ChatRequest:
    return ChatRequest("mock", messages or (ASK,), **fields)  # type: ignore[arg-type]


async def both(provider: MockProvider, chat: ChatRequest) -> tuple[Completion, list[StreamEvent]]:
    """The unary answer, and the events of the same request streamed."""
    return await provider.complete(chat), [e async for e in provider.stream(chat)]


def folded(events: list[StreamEvent]) -> Completion:
    builder = CompletionBuilder()
    for event in events:
        builder.feed(event)
    return builder.build()


async def test_given_tools_it_calls_the_first_with_arguments_from_its_schema() -> None:
    answer = await mock().complete(request(tools=(WEATHER, TIME)))

    assert answer.finish_reason == "tool_calls"
    assert answer.content == ""
    [call] = answer.tool_calls
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "sample", "unit": "celsius", "days": 1}


async def test_a_named_tool_choice_calls_that_tool_and_a_tool_without_arguments_gets_braces() -> (
    None
):
    choice = ToolChoice(ToolChoiceMode.TOOL, "get_time")
    answer = await mock().complete(request(tools=(WEATHER, TIME), tool_choice=choice))

    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("get_time", "{}")]


async def test_tools_named_by_the_user_are_called_in_parallel_with_distinct_ids() -> None:
    ask = Message.of_text("user", "call get_weather and get_time please")
    answer = await mock().complete(request(ask, tools=(WEATHER, TIME)))

    assert [c.name for c in answer.tool_calls] == ["get_weather", "get_time"]
    assert len({c.id for c in answer.tool_calls}) == 2


async def test_parallel_calls_off_calls_one_tool() -> None:
    ask = Message.of_text("user", "call get_weather and get_time please")
    answer = await mock().complete(request(ask, tools=(WEATHER, TIME), parallel_tool_calls=False))

    assert [c.name for c in answer.tool_calls] == ["get_weather"]


async def test_tool_choice_none_answers_text() -> None:
    none = ToolChoice(ToolChoiceMode.NONE)
    answer = await mock().complete(request(tools=(WEATHER,), tool_choice=none))

    assert (answer.tool_calls, answer.finish_reason) == ((), "stop")
    assert "Paris" in answer.content


async def test_after_the_tool_result_it_answers_with_what_the_tool_returned() -> None:
    provider = mock()
    first = await provider.complete(request(tools=(WEATHER,)))
    call = first.tool_calls[0]
    history = (
        ASK,
        Message("assistant", tool_calls=first.tool_calls),
        Message("tool", (TextPart("18 degrees and sunny"),), tool_call_id=call.id),
    )

    second = await provider.complete(request(*history, tools=(WEATHER,)))

    assert second.finish_reason == "stop"
    assert second.tool_calls == ()
    assert second.content == "The tool get_weather returned: 18 degrees and sunny"


async def test_a_tool_call_streams_as_fragments_that_fold_into_the_unary_answer() -> None:
    answer, events = await both(mock(), request(tools=(WEATHER, TIME)))

    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0].id
    assert deltas[0].name == "get_weather"
    assert deltas[0].arguments == ""
    assert len(deltas) > 2
    assert all(not (d.id or d.name) for d in deltas[1:])
    assert isinstance(events[0], Meta)
    assert isinstance(events[-1], Finish)
    assert folded(events) == answer


async def test_a_json_object_answer_is_valid_json() -> None:
    form = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    answer, events = await both(mock(), request(response_format=form))

    assert json.loads(answer.content) == {"answer": "What is the weather in Paris?"}
    assert folded(events) == answer


async def test_a_json_schema_answer_follows_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "score": {"type": "number", "minimum": 0.5},
            "kind": {"$ref": "#/$defs/kind"},
            "note": {"type": "string"},
        },
        "required": ["city", "tags", "score", "kind"],
        "$defs": {"kind": {"type": "string", "enum": ["a", "b"]}},
        "additionalProperties": False,
    }
    form = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "answer", schema)

    answer = await mock().complete(request(response_format=form))

    said = "What is the weather in Paris?"
    assert answer.finish_reason == "stop"
    assert json.loads(answer.content) == {
        "city": said,
        "tags": [said, said],
        "score": 0.5,
        "kind": "a",
    }


def test_sample_values_follow_simple_schemas() -> None:
    assert sample_value({"type": ["null", "integer"], "maximum": -3}) == -3
    assert sample_value({"type": "string", "minLength": 8}, text="ab") == "abxxxxxx"
    assert sample_value({"type": "string", "format": "date"}) == "2026-01-01"
    assert sample_value({"anyOf": [{"type": "boolean"}, {"type": "string"}]}) is True
    assert sample_value({"const": 7}) == 7


async def test_images_are_taken_and_described() -> None:
    look = Message(
        "user", (TextPart("look"), ImagePart(data=b"\x89PNG....", media_type="image/png"))
    )
    provider = mock()

    answer = await provider.complete(request(look))

    assert answer.content.endswith("look [image image/png 8 bytes]")
    assert check_capabilities(request(look), provider.capabilities("mock"), "mock") is None


async def test_reasoning_effort_gives_reasoning_and_counts_its_tokens() -> None:
    answer, events = await both(mock(), request(tools=(WEATHER,), reasoning_effort="low"))

    assert answer.reasoning == "Reasoning (low): I will call get_weather."
    assert answer.usage.reasoning_tokens == len(answer.reasoning.split())
    assert answer.usage.completion_tokens > answer.usage.reasoning_tokens
    [part] = answer.reasoning_parts
    assert part.text == answer.reasoning
    assert part.signature
    kinds = [type(e) for e in events[1:-1]]
    assert kinds.index(ToolCallDelta) > kinds.index(ReasoningDelta)
    assert folded(events) == answer


async def test_no_reasoning_without_an_effort_or_with_none() -> None:
    for effort in (None, "none"):
        answer = await mock().complete(request(reasoning_effort=effort))
        assert (answer.reasoning, answer.reasoning_parts, answer.usage.reasoning_tokens) == (
            "",
            (),
            0,
        )


async def test_a_tool_call_cut_by_max_tokens_finishes_with_length() -> None:
    answer = await mock().complete(request(tools=(WEATHER,), sampling=Sampling(max_tokens=1)))

    assert answer.finish_reason == "length"


@pytest.mark.parametrize(
    "other",
    [
        {"tools": (TIME,)},
        {"response_format": ResponseFormat(ResponseFormatType.JSON_OBJECT)},
        {"reasoning_effort": "high"},
    ],
)
async def test_what_the_request_asks_changes_the_answers_id(other: dict[str, object]) -> None:
    assert (await mock().complete(request(**other))).id != (await mock().complete(request())).id


async def test_same_request_same_calls() -> None:
    chat = request(tools=(WEATHER, TIME), reasoning_effort="medium")
    assert await mock().complete(chat) == await mock().complete(chat)
    assert isinstance((await mock().complete(chat)).tool_calls[0], ToolCall)
