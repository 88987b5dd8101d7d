"""The Anthropic adapter's tools against the loopback fake: definitions and choice on the wire,
calls out (unary and streamed), and calls and results in the history."""

from __future__ import annotations

import pytest

from providers.anthropic import SPEC, AnthropicProvider
from providers.errors import UpstreamBadRequestError
from providers.types import (
    ChatRequest,
    Message,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
)
from tests.contract.harness import Vendor, collect, finish, folded, sent
from tests.fakes.anthropic_server import Answer, FakeAnthropic
from tests.fakes.script import ToolCall as Call

KEY = "sk-ant-test-0123456789abcdefSECRET"
MODEL = "claude-sonnet-4-5"
VENDOR = Vendor(FakeAnthropic, SPEC, name="claude", keys=(KEY,))


WEATHER = Tool(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = Tool("get_time")  # no arguments
ASK = Message.of_text("user", "Weather in Paris and Rome, and the time?")


def ask(*messages: Message, **fields: object) -> ChatRequest:
    """A request for MODEL with both tools (and `fields`), of `messages` (ASK by default)."""
    return ChatRequest(MODEL, messages or (ASK,), tools=(WEATHER, CLOCK), **fields)  # type: ignore[arg-type]


def parallel_calls() -> Answer:
    """Text, then two calls to one tool, then a call without arguments."""
    return Answer(
        text="Let me look.",
        tool_calls=[
            Call("get_weather", {"city": "Paris"}),
            Call("get_weather", {"city": "Rome"}),
            Call("get_time"),
        ],
    )


# -- definitions and choice ----------------------------------------------------------------------


async def test_tools_go_as_input_schemas_and_a_tool_without_arguments_gets_an_empty_object(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    await provider.complete(ask())
    assert sent(fake)["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "input_schema": WEATHER.parameters,
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in sent(fake)


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (ToolChoice(ToolChoiceMode.AUTO), {"type": "auto"}),
        (ToolChoice(ToolChoiceMode.NONE), {"type": "none"}),
        (ToolChoice(ToolChoiceMode.REQUIRED), {"type": "any"}),
        (ToolChoice(ToolChoiceMode.TOOL, "get_time"), {"type": "tool", "name": "get_time"}),
    ],
)
async def test_tool_choice_maps_to_anthropics_form(
    provider: AnthropicProvider, fake: FakeAnthropic, choice: ToolChoice, wire: object
) -> None:
    await provider.complete(ask(tool_choice=choice))
    assert sent(fake)["tool_choice"] == wire


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        (ToolChoice(ToolChoiceMode.REQUIRED), {"type": "any", "disable_parallel_tool_use": True}),
        (ToolChoice(ToolChoiceMode.NONE), {"type": "none"}),  # no calls: nothing to serialise
    ],
)
async def test_parallel_tool_calls_off_disables_parallel_tool_use(
    provider: AnthropicProvider, fake: FakeAnthropic, choice: ToolChoice | None, wire: object
) -> None:
    await provider.complete(ask(tool_choice=choice, parallel_tool_calls=False))
    assert sent(fake)["tool_choice"] == wire


async def test_integral_numbers_in_a_tool_schema_reach_anthropic_as_integers(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    tags = {"type": "array", "items": {"type": "string"}, "minItems": 1.0, "maxItems": 3.0}
    tool = Tool("tag", parameters={"type": "object", "properties": {"tags": tags}})
    await provider.complete(ChatRequest(MODEL, (ASK,), tools=(tool,)))
    wire = sent(fake)["tools"]
    assert repr(wire) == repr(  # repr tells 1 from 1.0
        [{"name": "tag", "input_schema": {"type": "object", "properties": {"tags": {
            "type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3
        }}}}]
    )  # fmt: skip


# -- calls out -----------------------------------------------------------------------------------


async def test_calls_keep_anthropics_ids_and_arguments_are_json_text(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.script(parallel_calls())
    answer = await provider.complete(ask())
    assert answer.content == "Let me look."
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_weather", '{"city":"Rome"}'),
        ("get_time", "{}"),
    ]
    ids = [c.id for c in answer.tool_calls]
    assert all(i.startswith("toolu_01") for i in ids)
    assert len(set(ids)) == 3  # same-name calls stay distinct
    assert answer.finish_reason == "tool_calls"


async def test_stream_numbers_calls_from_zero_after_a_text_block(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    # Anthropic's block indexes are 1, 2, 3 here (the text is block 0): a peer gateway
    # numbered the calls by them.
    fake.script(parallel_calls())
    events = await collect(provider, ask())
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [c.index for c in calls if c.id] == [0, 1, 2]
    assert sorted({c.index for c in calls}) == [0, 1, 2]
    first = events.index(calls[0])
    assert all(isinstance(e, TextDelta) for e in events[1:first])  # the text came first, as text
    for index, name in enumerate(["get_weather", "get_weather", "get_time"]):
        head, *rest = [c for c in calls if c.index == index]
        assert (head.id.startswith("toolu_"), head.name) == (True, name)
        assert all(c.id == c.name == "" and c.arguments for c in rest)  # fragments only
    assert finish(events).reason == "tool_calls"


async def test_stream_folds_into_the_same_answer_as_the_unary_call(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.script(parallel_calls(), parallel_calls())
    unary = await provider.complete(ask())
    streamed = folded(await collect(provider, ask()))
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in unary.tool_calls
    ]
    assert (streamed.content, streamed.finish_reason) == (unary.content, unary.finish_reason)
    assert streamed.tool_calls[2].arguments == "{}"  # no fragments came: never ""


async def test_stream_sends_each_argument_fragment_as_one_delta(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    call = Call("get_weather", {"city": "Paris"})
    fake.script(Answer(tool_calls=[call], argument_chunk=4))
    events = await collect(provider, ask())
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert calls[0] == ToolCallDelta(0, calls[0].id, "get_weather", "")
    assert [c.arguments for c in calls[1:]] == ['{"ci', 'ty":', '"Par', 'is"}']


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_call_cut_by_the_token_limit_finishes_with_length(
    provider: AnthropicProvider, fake: FakeAnthropic, streamed: bool
) -> None:
    fake.script(Answer(tool_calls=[Call("get_weather", '{"city": "Par')], finish="length"))
    if streamed:
        events = await collect(provider, ask())
        reason = finish(events).reason
        assert folded(events).tool_calls[0].arguments == '{"city": "Par'
    else:
        reason = (await provider.complete(ask())).finish_reason
    assert reason == "length"


# -- history ----------------------------------------------------------------------------------


async def test_a_two_turn_tool_loop_sends_results_first_in_one_user_turn(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.script(Answer(tool_calls=[Call("get_weather", {"city": "Paris"}), Call("get_time")]))
    first = await provider.complete(ask())
    paris, clock = first.tool_calls
    history = (
        ASK,
        Message("assistant", (TextPart(" \n"),), tool_calls=first.tool_calls),
        Message("tool", (TextPart("18C"),), tool_call_id=paris.id),
        Message("tool", (TextPart("09:00"),), tool_call_id=clock.id),
        Message.of_text("user", "And tomorrow?"),
    )
    answer = await provider.complete(ask(*history))
    assert answer.content == "Hello from fake Anthropic"  # the fake took the turn
    assert sent(fake, 1)["messages"][1:] == [
        {
            "role": "assistant",  # the blank text is dropped: Anthropic refuses it
            "content": [
                {"type": "tool_use", "id": paris.id, "name": "get_weather",
                 "input": {"city": "Paris"}},
                {"type": "tool_use", "id": clock.id, "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": paris.id, "content": "18C"},
                {"type": "tool_result", "tool_use_id": clock.id, "content": "09:00"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]  # fmt: skip


async def test_user_text_between_a_call_and_its_result_goes_after_the_result(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    call = ToolCall("toolu_01A", "get_time")
    history = (
        ASK,
        Message("assistant", tool_calls=(call,)),
        Message.of_text("user", "Hurry."),
        Message("tool", (TextPart("09:00"),), tool_call_id=call.id),
    )
    await provider.complete(ask(*history))
    assert sent(fake)["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "09:00"},
            {"type": "text", "text": "Hurry."},
        ],
    }


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_call_left_unanswered_is_refused_before_anything_is_sent(
    provider: AnthropicProvider, fake: FakeAnthropic, streamed: bool
) -> None:
    # Anthropic: "`tool_use` ids were found without `tool_result` blocks immediately after".
    calls = (ToolCall("toolu_01A", "get_time"), ToolCall("toolu_01B", "get_time"))
    history = (
        ASK,
        Message("assistant", tool_calls=calls),
        Message("tool", (TextPart("09:00"),), tool_call_id="toolu_01A"),
        Message.of_text("user", "Never mind."),
    )
    with pytest.raises(UpstreamBadRequestError) as caught:
        await (collect(provider, ask(*history)) if streamed else provider.complete(ask(*history)))
    assert str(caught.value).startswith("messages[1].tool_calls[1]: provider 'claude'")
    assert "toolu_01B" in str(caught.value)
    assert fake.requests == []
    assert fake.rejections == []


async def test_a_result_that_does_not_follow_its_call_is_refused(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    call = ToolCall("toolu_01A", "get_time")
    history = (
        ASK,
        Message("assistant", tool_calls=(call,)),
        Message("tool", (TextPart("09:00"),), tool_call_id=call.id),
        Message.of_text("assistant", "It is nine."),
        Message("tool", (TextPart("09:01"),), tool_call_id=call.id),
    )
    with pytest.raises(UpstreamBadRequestError, match=r"^messages\[4\]\.tool_call_id: provider"):
        await provider.complete(ask(*history))
    assert fake.requests == []
