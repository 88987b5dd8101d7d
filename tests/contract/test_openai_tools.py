"""The OpenAI adapter's tool calling against a loopback fake: definitions, choice, the calls the
model makes (whole and streamed), and tool results in the history."""

from __future__ import annotations

from dataclasses import replace

import pytest

from providers.errors import UpstreamBadRequestError
from providers.http.client import UpstreamClient
from providers.openai import SPEC, OpenAIProvider
from providers.types import (
    ChatRequest,
    Finish,
    Message,
    Meta,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
)
from tests.contract.harness import Vendor, chat, collect, folded
from tests.fakes.base import Answer
from tests.fakes.base import ToolCall as Call
from tests.fakes.openai_server import FakeOpenAI

KEY = "sk-test-0123456789abcdefSECRET"
VENDOR = Vendor(FakeOpenAI, SPEC, name="openai-main", keys=(KEY,))
WEATHER = Tool(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("get_time")
ASK = chat("gpt-4o-mini", ("user", "Weather in Paris and Rome, and the time?"))


def with_tools(request: ChatRequest = ASK, **fields: object) -> ChatRequest:
    return replace(request, tools=(WEATHER, TIME), **fields)  # type: ignore[arg-type]


def two_cities_and_time(text: str | None = "Checking.") -> Answer:
    return Answer(
        text=text,
        tool_calls=[
            Call("get_weather", {"city": "Paris"}),
            Call("get_weather", {"city": "Rome"}),
            Call("get_time", ""),  # a call without arguments: OpenAI sends ""
        ],
    )


# -- definitions and choice --------------------------------------------------------------------


async def test_tools_go_as_function_definitions(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    await provider.complete(with_tools())
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
        {"type": "function", "function": {"name": "get_time"}},
    ]


async def test_a_strict_tool_has_its_objects_closed_and_integral_numbers_as_integers(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    schema = {
        "type": "object",
        "properties": {"cities": {"type": "array", "items": {"type": "string"}, "minItems": 1.0}},
        "required": ["cities"],
    }
    request = replace(ASK, tools=(Tool("weather", parameters=schema, strict=True),))
    await provider.complete(request)  # the fake holds strict schemas to OpenAI's rules
    function = fake.requests[0].body["tools"][0]["function"]  # type: ignore[index]
    assert function["strict"] is True
    assert function["parameters"] == {
        "type": "object",
        "properties": {"cities": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        "required": ["cities"],
        "additionalProperties": False,
    }
    assert type(function["parameters"]["properties"]["cities"]["minItems"]) is int


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (ToolChoice(ToolChoiceMode.AUTO), "auto"),
        (ToolChoice(ToolChoiceMode.NONE), "none"),
        (ToolChoice(ToolChoiceMode.REQUIRED), "required"),
        (
            ToolChoice(ToolChoiceMode.TOOL, "get_time"),
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
async def test_tool_choice_goes_in_openai_words(
    provider: OpenAIProvider, fake: FakeOpenAI, choice: ToolChoice, wire: object
) -> None:
    await provider.complete(with_tools(tool_choice=choice))
    assert fake.requests[0].body["tool_choice"] == wire


@pytest.mark.parametrize("parallel", [False, True])
async def test_parallel_tool_calls_is_sent_as_asked(
    provider: OpenAIProvider, fake: FakeOpenAI, parallel: bool
) -> None:
    await provider.complete(with_tools(parallel_tool_calls=parallel))
    assert fake.requests[0].body["parallel_tool_calls"] is parallel


async def test_an_o_series_model_is_not_sent_the_parallel_switch_it_refuses(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    request = with_tools(replace(ASK, model="o4-mini"), parallel_tool_calls=True)
    await provider.complete(request)  # the fake refuses the field on o-series models
    assert "parallel_tool_calls" not in fake.requests[0].body
    assert not provider.capabilities("o4-mini").parallel_tool_calls_off
    assert provider.capabilities("gpt-4.1").parallel_tool_calls_off


# -- calls out, whole --------------------------------------------------------------------------


async def test_calls_keep_their_ids_with_json_text_arguments(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.script(two_cities_and_time())
    answer = await provider.complete(with_tools())
    ids = [call.id for call in answer.tool_calls]
    assert all(i.startswith("call_") for i in ids)
    assert len(set(ids)) == 3
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_weather", '{"city":"Rome"}'),
        ("get_time", "{}"),
    ]
    assert (answer.content, answer.finish_reason) == ("Checking.", "tool_calls")


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_call_after_a_named_choice_finishes_tool_calls_though_openai_says_stop(
    provider: OpenAIProvider, fake: FakeOpenAI, streamed: bool
) -> None:
    fake.script(Answer(tool_calls=[Call("get_time", {})], vendor_finish="stop"))
    request = with_tools(tool_choice=ToolChoice(ToolChoiceMode.TOOL, "get_time"))
    if streamed:
        answer = folded(await collect(provider, request))
    else:
        answer = await provider.complete(request)
    assert answer.finish_reason == "tool_calls"
    assert answer.tool_calls[0].arguments == "{}"


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_call_cut_by_the_token_limit_finishes_length(
    provider: OpenAIProvider, fake: FakeOpenAI, streamed: bool
) -> None:
    fake.script(Answer(tool_calls=[Call("get_weather", '{"city": "Par')], finish="length"))
    request = with_tools()
    if streamed:
        answer = folded(await collect(provider, request))
    else:
        answer = await provider.complete(request)
    assert answer.finish_reason == "length"
    assert answer.tool_calls[0].arguments == '{"city": "Par'


# -- calls out, streamed -----------------------------------------------------------------------


async def test_a_stream_gives_text_then_one_delta_per_fragment_with_dense_indexes(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.script(two_cities_and_time())
    events = await collect(provider, with_tools())
    assert isinstance(events[0], Meta)
    assert events[1] == TextDelta("Checking.")
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [c.index for c in calls] == sorted(c.index for c in calls)
    firsts = [c for c in calls if c.id]
    assert [(c.index, c.name) for c in firsts] == [
        (0, "get_weather"),
        (1, "get_weather"),
        (2, "get_time"),
    ]
    assert all(c.name == "" for c in calls if not c.id)  # id and name only in the first
    # OpenAI's fragments of 8 characters each, one delta each
    assert [c.arguments for c in calls if c.index == 0] == ["", '{"city":', '"Paris"}']
    # the call OpenAI streamed no arguments for gets "{}", never ""
    assert [c.arguments for c in calls if c.index == 2] == ["", "{}"]
    assert isinstance(events[-1], Finish)
    assert events[-1].reason == "tool_calls"
    assert events[-1].usage is not None  # usage last


async def test_a_streamed_answer_folds_into_the_whole_one(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.script(two_cities_and_time(), two_cities_and_time())
    whole = await provider.complete(with_tools())
    streamed = folded(await collect(provider, with_tools()))
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in whole.tool_calls
    ]
    assert (streamed.content, streamed.finish_reason) == (whole.content, whole.finish_reason)


class FakeZeroIndexServer(FakeOpenAI):
    """An OpenAI-compatible server that numbers every streamed call 0 (ollama/ollama#15457)."""

    def _tool_call_deltas(self, answer: Answer) -> list[dict[str, object]]:
        return [{**delta, "index": 0} for delta in super()._tool_call_deltas(answer)]


class FakeIdlessServer(FakeOpenAI):
    """An OpenAI-compatible server that sends calls without ids."""

    ids_optional = True


async def test_calls_a_server_numbers_all_0_are_numbered_in_order_of_appearance(
    session: UpstreamClient,
) -> None:
    async with FakeZeroIndexServer() as fake:
        fake.script(two_cities_and_time(text=None))
        request = with_tools(replace(ASK, model="llama-3.1-8b-instruct"))
        events = await collect(VENDOR.adapter(session, fake.base_url), request)
    starts = [(e.index, e.name) for e in events if isinstance(e, ToolCallDelta) and e.id]
    assert starts == [(0, "get_weather"), (1, "get_weather"), (2, "get_time")]
    answer = folded(events)
    assert [c.arguments for c in answer.tool_calls] == ['{"city":"Paris"}', '{"city":"Rome"}', "{}"]


@pytest.mark.parametrize("streamed", [False, True])
async def test_calls_of_a_server_that_sends_no_ids_get_distinct_minted_ones(
    session: UpstreamClient, streamed: bool
) -> None:
    async with FakeIdlessServer() as fake:
        provider = VENDOR.adapter(session, fake.base_url)
        calls = [Call("lookup", {"q": "a"}, with_id=False), Call("lookup", {}, with_id=False)]
        fake.script(Answer(tool_calls=calls))
        request = with_tools(replace(ASK, model="llama-3.1-8b-instruct"))
        if streamed:
            answer = folded(await collect(provider, request))
        else:
            answer = await provider.complete(request)
    ids = [c.id for c in answer.tool_calls]
    assert len(set(ids)) == 2
    assert all(i.startswith("call_") for i in ids)
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [
        ("lookup", '{"q":"a"}'),
        ("lookup", "{}"),
    ]
    assert answer.finish_reason == "tool_calls"


# -- history -----------------------------------------------------------------------------------


CALLED = Message(
    "assistant",
    (TextPart("Let me look."),),
    tool_calls=(
        ToolCall("call_a", "get_weather", '{"city":"Paris"}'),
        ToolCall("call_b", "get_time", "{}"),
    ),
)


def tool_result(call_id: str, text: str) -> Message:
    return Message("tool", (TextPart(text),), tool_call_id=call_id)


async def test_calls_and_their_results_go_back_in_openai_words(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    only_calls = replace(CALLED, parts=())
    request = with_tools(
        replace(
            ASK,
            messages=(
                *ASK.messages,
                only_calls,
                tool_result("call_b", "12:00"),
                tool_result("call_a", "sunny"),
            ),
        )
    )
    await provider.complete(request)  # the fake checks each call is answered right after
    assert fake.requests[0].body["messages"][1:] == [  # type: ignore[index]
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
    ]


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_call_left_unanswered_is_refused_before_anything_is_sent(
    provider: OpenAIProvider, fake: FakeOpenAI, streamed: bool
) -> None:
    messages = (*ASK.messages, CALLED, tool_result("call_a", "sunny"), *ASK.messages)
    request = with_tools(replace(ASK, messages=messages))
    with pytest.raises(UpstreamBadRequestError) as caught:
        await (collect(provider, request) if streamed else provider.complete(request))
    assert caught.value.message.startswith("messages[1].tool_calls[1]: provider 'openai-main'")
    assert "'call_b'" in caught.value.message
    assert fake.requests == []
    assert fake.rejections == []


async def test_a_result_that_does_not_follow_its_call_is_refused_before_anything_is_sent(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    messages = (
        *ASK.messages,
        CALLED,
        tool_result("call_a", "sunny"),
        tool_result("call_b", "12:00"),
        Message.of_text("user", "And Rome?"),
        tool_result("call_a", "again"),
    )
    with pytest.raises(UpstreamBadRequestError, match=r"^messages\[5\]\.tool_call_id: "):
        await provider.complete(with_tools(replace(ASK, messages=messages)))
    assert fake.requests == []
    assert fake.rejections == []
