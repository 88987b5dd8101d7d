"""The Cohere adapter's tool calling against the loopback fake: definitions and choice, calls
out (unary and streamed), and the tool loop's history."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import pytest

from providers.base import check_capabilities
from providers.cohere import SPEC, CohereProvider
from providers.errors import UpstreamBadRequestError, UpstreamUnavailableError
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
    Usage,
)
from tests.contract.harness import Vendor, collect, finish, folded
from tests.fakes.base import sse
from tests.fakes.cohere_server import Answer, FakeCohere, FakeUsage, Fault
from tests.fakes.cohere_server import ToolCall as Call

KEY = "co-test-0123456789abcdefSECRET"
MODEL = "command-a-03-2025"
VENDOR = Vendor(FakeCohere, SPEC, name="cohere-main", keys=(KEY,))
WEATHER = Tool(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string", "minLength": 1.0}}},
)
NOW = Tool("now", "The time")
ASK = Message.of_text("user", "Weather in Paris and Rome?")


def ask(
    *messages: Message,
    tools: tuple[Tool, ...] = (WEATHER, NOW),
    choice: ToolChoiceMode | None = None,
    model: str = MODEL,
    parallel: bool | None = None,
    named: str = "",
) -> ChatRequest:
    if named:
        choice = ToolChoiceMode.TOOL
    return ChatRequest(
        model=model,
        messages=messages or (ASK,),
        tools=tools,
        tool_choice=ToolChoice(choice, named) if choice is not None else None,
        parallel_tool_calls=parallel,
    )


def two_lookups(**fields: object) -> Answer:
    calls = [Call("get_weather", {"city": "Paris"}), Call("get_weather", {"city": "Rome"})]
    return Answer(text="I will look up both.", tool_calls=calls, **fields)  # type: ignore[arg-type]


# -- definitions and choice ----------------------------------------------------------------------


async def test_tools_go_as_functions_with_object_schemas_and_integral_numbers(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    await provider.complete(ask())
    body = fake.requests[0].body
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "minLength": 1}},
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "now",
                "description": "The time",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]
    city = body["tools"][0]["function"]["parameters"]["properties"]["city"]
    assert type(city["minLength"]) is int
    assert {"tool_choice", "strict_tools"}.isdisjoint(body)


@pytest.mark.parametrize(
    ("mode", "wire"),
    [(ToolChoiceMode.REQUIRED, "REQUIRED"), (ToolChoiceMode.NONE, "NONE"),
     (ToolChoiceMode.AUTO, None)],
)  # fmt: skip
async def test_tool_choice_is_cohere_upper_case_and_auto_is_left_out(
    provider: CohereProvider, fake: FakeCohere, mode: ToolChoiceMode, wire: str | None
) -> None:
    await provider.complete(ask(choice=mode))
    assert fake.requests[0].body.get("tool_choice") == wire


async def test_one_strict_tool_turns_on_strict_tools(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    strict = Tool("get_weather", parameters=WEATHER.parameters, strict=True)
    await provider.complete(ask(tools=(strict, NOW)))
    assert fake.requests[0].body["strict_tools"] is True


def test_a_named_choice_and_parallel_off_are_refused_naming_field_and_provider(
    provider: CohereProvider,
) -> None:
    named = ask(tools=(WEATHER,), named="get_weather")
    caps = provider.capabilities(MODEL)
    assert check_capabilities(named, caps, "cohere-main") == (
        "tool_choice: provider 'cohere-main' cannot honour mode TOOL"
    )
    assert check_capabilities(ask(parallel=False), caps, "cohere-main") == (
        "parallel_tool_calls: provider 'cohere-main' cannot turn parallel tool calls off"
    )
    assert check_capabilities(ask(choice=ToolChoiceMode.REQUIRED, parallel=True), caps, "x") is None


@pytest.mark.parametrize("request_", ["named", "parallel-off"])
async def test_the_adapter_itself_never_drops_a_choice_it_cannot_send(
    provider: CohereProvider, fake: FakeCohere, request_: str
) -> None:
    if request_ == "named":
        request = ask(tools=(WEATHER,), named="get_weather")
        field = "tool_choice"
    else:
        request, field = ask(parallel=False), "parallel_tool_calls"
    with pytest.raises(UpstreamBadRequestError, match=f"^{field}: provider 'cohere-main'"):
        await provider.complete(request)
    assert fake.requests == []
    assert fake.rejections == []


@pytest.mark.parametrize(
    ("model", "tools", "choices"),
    [("command-a-03-2025", True, {"AUTO", "NONE", "REQUIRED"}),
     ("command-r7b-12-2024", True, {"AUTO", "NONE", "REQUIRED"}),
     ("command-r-plus-08-2024", True, {"AUTO"}),
     ("command-r-08-2024", True, {"AUTO"}),
     ("command-a-vision-07-2025", False, {"AUTO"}),
     ("aya-expanse-32b", False, {"AUTO"})],
)  # fmt: skip
def test_tool_capabilities_follow_the_model_family(
    provider: CohereProvider, model: str, tools: bool, choices: set[str]
) -> None:
    caps = provider.capabilities(model)
    assert caps.tools is tools
    assert {mode.name for mode in caps.tool_choices} == choices
    assert caps.parallel_tool_calls_off is False


# -- calls out, unary ----------------------------------------------------------------------------


async def test_parallel_same_name_calls_keep_cohere_ids_and_the_plan_is_the_text(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.script(two_lookups())
    answer = await provider.complete(ask())
    ids = [str(call.id) for call in fake.answer.tool_calls]  # as the fake sent them
    assert answer.tool_calls == (
        ToolCall(ids[0], "get_weather", '{"city":"Paris"}'),
        ToolCall(ids[1], "get_weather", '{"city":"Rome"}'),
    )
    assert ids[0] != ids[1]
    assert (answer.content, answer.finish_reason) == ("I will look up both.", "tool_calls")


def reply(message: Mapping[str, object], finish_reason: str = "TOOL_CALL") -> bytes:
    return orjson.dumps({"id": "r-1", "finish_reason": finish_reason, "message": message})


def call_json(id: str | None, name: str, arguments: object) -> dict[str, object]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


async def test_a_call_without_arguments_or_id_gets_braces_and_a_unique_minted_id(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    calls = [call_json(None, "now", ""), call_json("", "now", None)]
    fake.fail_next(Fault(raw_body=reply({"role": "assistant", "tool_calls": calls})))
    answer = await provider.complete(ask())
    assert [(c.name, c.arguments) for c in answer.tool_calls] == [("now", "{}"), ("now", "{}")]
    first, second = (c.id for c in answer.tool_calls)
    assert (first[:5], second[:5]) == ("call_", "call_")
    assert first != second


@pytest.mark.parametrize(("cohere", "ours"), [("COMPLETE", "tool_calls"), ("MAX_TOKENS", "length")])
async def test_a_reply_with_calls_finishes_tool_calls_unless_cut_by_the_limit(
    provider: CohereProvider, fake: FakeCohere, cohere: str, ours: str
) -> None:
    message = {"role": "assistant", "tool_calls": [call_json("c1", "now", "{}")]}
    fake.fail_next(Fault(raw_body=reply(message, cohere)))
    assert (await provider.complete(ask())).finish_reason == ours


async def test_a_call_cut_by_the_token_limit_finishes_length(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.script(Answer(tool_calls=[Call("get_weather", '{"city": "Par')], finish="length"))
    answer = await provider.complete(ask())
    assert answer.finish_reason == "length"
    assert answer.tool_calls[0].arguments == '{"city": "Par'


# -- calls out, streamed -------------------------------------------------------------------------


async def test_streamed_calls_come_after_the_plan_text_dense_with_id_and_name_first_usage_last(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.script(two_lookups(usage=FakeUsage(20, 9, 0)))
    events = await collect(provider, ask())
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    firsts = [calls.index(next(c for c in calls if c.index == i)) for i in (0, 1)]
    assert [(calls[i].index, calls[i].name) for i in firsts] == [
        (0, "get_weather"),
        (1, "get_weather"),
    ]
    assert [c.id for c in calls if c.id] == [str(call.id) for call in fake.answer.tool_calls]
    assert all((c.id, c.name) == ("", "") for i, c in enumerate(calls) if i not in firsts)
    assert ["".join(c.arguments for c in calls if c.index == i) for i in (0, 1)] == [
        '{"city":"Paris"}',
        '{"city":"Rome"}',
    ]
    text_end = max(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert text_end < min(i for i, e in enumerate(events) if isinstance(e, ToolCallDelta))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "I will look up both."
    assert calls[firsts[0]].id != calls[firsts[1]].id
    assert finish(events) == Finish("tool_calls", Usage(20, 9, 29))


async def test_a_streamed_answer_folds_into_what_the_unary_one_says(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.script(two_lookups(reasoning="Two cities."), two_lookups(reasoning="Two cities."))
    unary = await provider.complete(ask())
    streamed = folded(await collect(provider, ask()))
    assert (streamed.content, streamed.reasoning, streamed.finish_reason) == (
        unary.content,
        unary.reasoning,
        unary.finish_reason,
    )
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in unary.tool_calls
    ]
    assert streamed.reasoning_parts == unary.reasoning_parts


def raw_stream(*events: tuple[str, dict[str, object]]) -> bytes:
    frames = [
        sse({"type": "message-start", "id": "r-9", "delta": {"message": {}}}, "message-start")
    ]
    frames += [sse({"type": kind, **body}, kind) for kind, body in events]
    return b"".join(frames)


def start(index: int, id: str, name: str) -> tuple[str, dict[str, object]]:
    tool_calls = {"id": id, "type": "function", "function": {"name": name, "arguments": ""}}
    return "tool-call-start", {"index": index, "delta": {"message": {"tool_calls": tool_calls}}}


def fragment(index: int, text: str) -> tuple[str, dict[str, object]]:
    function = {"function": {"arguments": text}}
    return "tool-call-delta", {"index": index, "delta": {"message": {"tool_calls": function}}}


def end(reason: str) -> tuple[str, dict[str, object]]:
    usage = {"billed_units": {"input_tokens": 5, "output_tokens": 2}}
    return "message-end", {"delta": {"finish_reason": reason, "usage": usage}}


async def test_cohere_indexes_are_renumbered_in_order_of_appearance_and_an_empty_call_gets_braces(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    body = raw_stream(
        ("tool-plan-delta", {"delta": {"message": {"tool_plan": "Plan."}}}),
        start(3, "a", "now"),
        ("tool-call-end", {"index": 3}),
        start(5, "b", "get_weather"),
        fragment(5, '{"city":'),
        fragment(5, '"Oslo"}'),
        ("tool-call-end", {"index": 5}),
        end("COMPLETE"),
    )
    fake.fail_next(Fault(raw_body=body))
    events = await collect(provider, ask())
    assert events[:2] == [Meta("r-9", MODEL), TextDelta("Plan.")]
    assert events[2:-1] == [
        ToolCallDelta(0, "a", "now", ""),
        ToolCallDelta(0, arguments="{}"),
        ToolCallDelta(1, "b", "get_weather", ""),
        ToolCallDelta(1, arguments='{"city":'),
        ToolCallDelta(1, arguments='"Oslo"}'),
    ]
    assert finish(events) == Finish("tool_calls", Usage(5, 2, 7))


async def test_a_streamed_call_cut_by_the_token_limit_finishes_length(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.script(Answer(tool_calls=[Call("get_weather", '{"city": "Par')], finish="length"))
    events = await collect(provider, ask())
    assert finish(events).reason == "length"
    assert folded(events).tool_calls[0].arguments == '{"city": "Par'


async def test_a_fragment_for_a_call_that_never_started_is_a_malformed_reply(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.fail_next(Fault(raw_body=raw_stream(fragment(0, "{}"), end("TOOL_CALL"))))
    with pytest.raises(UpstreamUnavailableError, match="malformed reply"):
        await collect(provider, ask())


# -- the tool loop's history ---------------------------------------------------------------------


async def test_a_two_turn_tool_loop_sends_calls_plan_and_results_the_cohere_way(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.script(two_lookups(), Answer(text="Sunny in both."))
    first = await provider.complete(ask())
    called = Message("assistant", (TextPart(first.content),), tool_calls=first.tool_calls)
    results = [
        Message("tool", (TextPart(f"sunny in {city}"),), tool_call_id=call.id)
        for city, call in zip(("Paris", "Rome"), first.tool_calls, strict=True)
    ]
    second = await provider.complete(ask(ASK, called, *results))
    assert (second.content, second.finish_reason) == ("Sunny in both.", "stop")
    assert fake.rejections == []
    sent = fake.requests[1].body["messages"]
    assert sent[1] == {  # type: ignore[index]
        "role": "assistant",
        "tool_plan": "I will look up both.",
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in first.tool_calls
        ],
    }
    assert sent[2:] == [  # type: ignore[index]
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "sunny in Paris"},
        {"role": "tool", "tool_call_id": first.tool_calls[1].id, "content": "sunny in Rome"},
    ]


async def test_a_result_for_a_call_cohere_never_made_is_cohere_400(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    called = Message("assistant", tool_calls=(ToolCall("c1", "now"),))
    stray = Message("tool", (TextPart("x"),), tool_call_id="c2")
    with pytest.raises(UpstreamBadRequestError, match="does not match any tool call"):
        await provider.complete(ask(ASK, called, stray))
