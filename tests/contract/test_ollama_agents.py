"""The Ollama adapter with agents' requests: tools, tool calls and results, images, JSON answers,
thinking and a seed, against the loopback fake of `POST /api/chat` (unary answers)."""

from __future__ import annotations

import base64
from dataclasses import replace

import orjson
import pytest

from providers.base import check_capabilities
from providers.errors import UpstreamBadRequestError
from providers.ollama import SPEC, OllamaProvider
from providers.types import (
    ChatRequest,
    ImagePart,
    Message,
    ReasoningPart,
    ResponseFormat,
    ResponseFormatType,
    Sampling,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)
from tests.contract.harness import Vendor, chat
from tests.fakes.ollama_server import Answer, FakeOllama, Fault
from tests.fakes.ollama_server import ToolCall as Call

MODEL = "llama3.2"
VENDOR = Vendor(FakeOllama, SPEC, name="ollama-local")
WEATHER = Tool(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = Tool("get_time")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
PNG_B64 = base64.b64encode(PNG).decode()


def ask(*turns: tuple[str, str] | Message, model: str = MODEL, **fields: object) -> ChatRequest:
    """A request for `model` of `turns`, with `fields` (tools, tool_choice...) set."""
    return replace(chat(model, *turns), **fields)  # type: ignore[arg-type]


WEATHER_IN_PARIS = ask(("user", "Weather in Paris?"), tools=(WEATHER,))


def refusal(provider: OllamaProvider, request: ChatRequest) -> str | None:
    return check_capabilities(request, provider.capabilities(request.model), provider.name)


# -- tool definitions and choice -------------------------------------------------------------


async def test_tools_go_as_functions_and_one_without_arguments_gets_an_empty_object_schema(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    await provider.complete(replace(WEATHER_IN_PARIS, tools=(WEATHER, CLOCK)))
    assert fake.requests[0].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        },
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
        },
    ]


async def test_tool_choice_none_sends_no_tools_and_auto_sends_them(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    await provider.complete(replace(WEATHER_IN_PARIS, tool_choice=ToolChoice(ToolChoiceMode.NONE)))
    await provider.complete(replace(WEATHER_IN_PARIS, tool_choice=ToolChoice(ToolChoiceMode.AUTO)))
    assert "tools" not in fake.requests[0].body
    tools = fake.requests[1].body["tools"]
    assert isinstance(tools, list)
    assert [tool["function"]["name"] for tool in tools] == ["get_weather"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"tool_choice": ToolChoice(ToolChoiceMode.REQUIRED)}, "tool_choice"),
        ({"tool_choice": ToolChoice(ToolChoiceMode.TOOL, "get_weather")}, "tool_choice"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
    ],
)
async def test_what_ollama_has_no_switch_for_is_refused_naming_field_and_provider(
    provider: OllamaProvider, fake: FakeOllama, fields: dict[str, object], field: str
) -> None:
    request = replace(WEATHER_IN_PARIS, **fields)  # type: ignore[arg-type]
    problem = refusal(provider, request)
    assert problem is not None
    assert problem.startswith(f"{field}:")
    assert "'ollama-local'" in problem
    with pytest.raises(UpstreamBadRequestError, match=field):
        await provider.complete(request)
    assert fake.requests == []


def test_auto_none_images_json_and_a_seed_are_declared_for_every_model(
    provider: OllamaProvider,
) -> None:
    can = provider.capabilities("qwen3:8b")
    assert (can.tools, can.images, can.json_object, can.json_schema, can.seed) == (True,) * 5
    assert can.tool_choices == {ToolChoiceMode.AUTO, ToolChoiceMode.NONE}
    assert (can.image_urls, can.tool_result_images, can.parallel_tool_calls_off) == (False,) * 3


async def test_a_model_without_tools_is_refused_by_ollama_as_a_bad_request(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.lacks.add("tools")
    with pytest.raises(UpstreamBadRequestError, match="does not support tools"):
        await provider.complete(WEATHER_IN_PARIS)


# -- tool calls out --------------------------------------------------------------------------


async def test_calls_keep_ollamas_ids_with_arguments_as_json_text_and_finish_tool_calls(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(
        Answer(
            text="Let me look.",
            tool_calls=[Call("get_weather", {"city": "Paris"}, id="call_paris01")],
        )
    )
    answer = await provider.complete(WEATHER_IN_PARIS)
    assert answer.content == "Let me look."
    assert answer.tool_calls == (ToolCall("call_paris01", "get_weather", '{"city":"Paris"}'),)
    assert answer.finish_reason == "tool_calls"


async def test_same_name_calls_without_ids_get_distinct_ids_and_no_arguments_is_braces(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(
        Answer(
            tool_calls=[
                Call("get_time", with_id=False),
                Call("get_time", with_id=False),
            ]
        )
    )
    answer = await provider.complete(replace(WEATHER_IN_PARIS, tools=(CLOCK,)))
    first, second = answer.tool_calls
    assert first.id.startswith("call_")
    assert first.id != second.id
    assert (first.arguments, second.arguments) == ("{}", "{}")
    assert answer.finish_reason == "tool_calls"


async def test_a_call_cut_by_the_token_limit_ends_with_length_not_tool_calls(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(Answer(tool_calls=[Call("get_weather", '{"city": "Par')], finish="length"))
    answer = await provider.complete(WEATHER_IN_PARIS)
    assert (answer.tool_calls, answer.finish_reason) == ((), "length")


async def test_whole_calls_on_a_reply_cut_by_the_token_limit_still_end_with_length(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    call = {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}
    reply = {
        "model": MODEL,
        "message": {"role": "assistant", "content": "", "tool_calls": [call]},
        "done": True,
        "done_reason": "length",
    }
    fake.fail_next(Fault(raw_body=orjson.dumps(reply)))
    answer = await provider.complete(WEATHER_IN_PARIS)
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [
        ("get_weather", '{"city":"Paris"}')
    ]
    assert answer.finish_reason == "length"


# -- history ---------------------------------------------------------------------------------

CALLED = Message(
    "assistant",
    tool_calls=(
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_2", "get_time"),
    ),
)


async def test_history_sends_calls_with_object_arguments_and_results_with_their_tools_name(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    request = ask(
        ("user", "Weather and time in Paris?"),
        CALLED,
        Message("tool", (TextPart("12:00"),), tool_call_id="call_2"),
        Message("tool", (TextPart("sunny"),), tool_call_id="call_1"),
        tools=(WEATHER, CLOCK),
    )
    await provider.complete(request)
    assert fake.requests[0].body["messages"] == [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                },
                {"id": "call_2", "function": {"name": "get_time", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "12:00", "tool_name": "get_time", "tool_call_id": "call_2"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_1"},
    ]


async def test_a_result_answering_no_earlier_call_is_refused_before_anything_is_sent(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    stray = Message("tool", (TextPart("sunny"),), tool_call_id="call_9")
    with pytest.raises(UpstreamBadRequestError, match="call_9"):
        await provider.complete(ask(("user", "Hi"), CALLED, stray, tools=(WEATHER, CLOCK)))
    assert fake.requests == []


# -- images ----------------------------------------------------------------------------------


async def test_data_urls_and_bytes_go_as_raw_base64_in_images(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    look = Message(
        "user",
        (
            TextPart("What are these?"),
            ImagePart(url=f"data:image/png;base64,{PNG_B64}"),
            ImagePart(data=PNG, media_type="image/png"),
        ),
    )
    await provider.complete(ask(look))
    assert fake.requests[0].body["messages"] == [
        {"role": "user", "content": "What are these?", "images": [PNG_B64, PNG_B64]}
    ]


async def test_an_https_image_is_left_to_the_gateway_and_refused_if_it_reaches_the_adapter(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    look = ask(Message("user", (TextPart("What is this?"), ImagePart(url="https://x.test/a.png"))))
    # Ollama fetches no URLs: the plan lets the image through because the gateway fetches it
    # and sends the bytes; one that still reaches the adapter as a URL is refused, never dropped.
    assert not provider.capabilities(look.model).image_urls
    assert refusal(provider, look) is None
    with pytest.raises(UpstreamBadRequestError, match="image URL"):
        await provider.complete(look)
    assert fake.requests == []


async def test_a_model_without_vision_is_refused_by_ollama_as_a_bad_request(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.lacks.add("vision")
    look = ask(Message("user", (ImagePart(data=PNG, media_type="image/png"),)))
    with pytest.raises(UpstreamBadRequestError, match="does not support vision"):
        await provider.complete(look)


# -- structured output -----------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"cities": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
    "required": ["cities"],
}


async def test_json_object_is_format_json_and_the_json_is_the_content(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(Answer.json({"city": "Paris"}))
    form = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    answer = await provider.complete(ask(("user", "A city as JSON"), response_format=form))
    assert fake.requests[0].body["format"] == "json"
    assert (answer.content, answer.finish_reason, answer.tool_calls) == (
        '{"city":"Paris"}',
        "stop",
        (),
    )


async def test_json_schema_is_the_format_itself_with_integral_numbers_as_integers(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    form = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "cities", SCHEMA, strict=True)
    await provider.complete(ask(("user", "Two cities"), response_format=form, tools=(WEATHER,)))
    body = fake.requests[0].body
    assert body["format"] == SCHEMA
    assert isinstance(body["format"]["properties"]["cities"]["minItems"], int)
    assert "tools" in body  # schema and tools keep both


# -- reasoning and seed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "effort", "think"),
    [
        ("qwen3:8b", "none", False),
        ("qwen3:8b", "medium", True),
        ("gpt-oss:20b", "low", "low"),
        ("gpt-oss:120b", "high", "high"),
    ],
)
async def test_reasoning_effort_becomes_think(
    provider: OllamaProvider, fake: FakeOllama, model: str, effort: str, think: object
) -> None:
    await provider.complete(ask(("user", "Hi"), model=model, reasoning_effort=effort))
    assert fake.requests[0].body["think"] == think


@pytest.mark.parametrize(
    ("model", "efforts"),
    [
        ("qwen3:8b", {"none", "medium"}),
        ("deepseek-r1", {"none", "medium"}),
        ("gpt-oss:20b", {"low", "medium", "high"}),
        ("library/gpt-oss", {"low", "medium", "high"}),
    ],
)
def test_levelled_models_take_levels_and_the_rest_a_switch(
    provider: OllamaProvider, model: str, efforts: set[str]
) -> None:
    assert provider.capabilities(model).reasoning_efforts == efforts


async def test_an_effort_the_model_cannot_take_is_refused_before_anything_is_sent(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    request = ask(("user", "Hi"), model="gpt-oss:20b", reasoning_effort="none")
    problem = refusal(provider, request)
    assert problem is not None
    assert problem.startswith("reasoning_effort:")
    with pytest.raises(UpstreamBadRequestError, match="reasoning_effort"):
        await provider.complete(request)
    assert fake.requests == []


async def test_thinking_comes_back_as_reasoning_never_as_content(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(Answer(reasoning="Paris is in France.", text="Sunny."))
    answer = await provider.complete(ask(("user", "Hi"), model="qwen3", reasoning_effort="medium"))
    assert (answer.reasoning, answer.content) == ("Paris is in France.", "Sunny.")
    assert answer.usage.reasoning_tokens == 0  # Ollama does not count them apart


async def test_a_model_without_thinking_is_refused_by_ollama_as_a_bad_request(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.lacks.add("thinking")
    with pytest.raises(UpstreamBadRequestError, match="does not support thinking"):
        await provider.complete(ask(("user", "Hi"), reasoning_effort="medium"))


async def test_an_assistant_turns_reasoning_goes_back_as_thinking(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    thought = Message(
        "assistant",
        tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Paris"}'),),
        reasoning=(ReasoningPart("Need the weather."),),
    )
    result = Message("tool", (TextPart("sunny"),), tool_call_id="call_1")
    await provider.complete(ask(("user", "Weather?"), thought, result, tools=(WEATHER,)))
    assert fake.requests[0].body["messages"][1]["thinking"] == "Need the weather."  # type: ignore[index]


async def test_the_seed_goes_in_options(provider: OllamaProvider, fake: FakeOllama) -> None:
    await provider.complete(ask(("user", "Hi"), sampling=Sampling(seed=42)))
    assert fake.requests[0].body["options"] == {"seed": 42}


async def test_a_two_turn_tool_loop_with_thinking_sends_the_first_answer_back(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(
        Answer(reasoning="Need the weather.", tool_calls=[Call("get_weather", {"city": "Paris"})]),
        Answer(text="Sunny in Paris."),
    )
    question = ask(("user", "Weather?"), model="qwen3", tools=(WEATHER,), reasoning_effort="medium")
    first = await provider.complete(question)
    (call,) = first.tool_calls
    turn = Message("assistant", tool_calls=first.tool_calls, reasoning=first.reasoning_parts)
    result = Message("tool", (TextPart("sunny"),), tool_call_id=call.id)
    second = await provider.complete(replace(question, messages=(*question.messages, turn, result)))
    assert (second.content, second.finish_reason) == ("Sunny in Paris.", "stop")
    messages = fake.requests[1].body["messages"]
    assert isinstance(messages, list)
    assistant, tool = messages[1:]
    assert assistant == {
        "role": "assistant",
        "content": "",
        "thinking": "Need the weather.",
        "tool_calls": [
            {"id": call.id, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        ],
    }
    assert tool == {
        "role": "tool",
        "content": "sunny",
        "tool_name": "get_weather",
        "tool_call_id": call.id,
    }
