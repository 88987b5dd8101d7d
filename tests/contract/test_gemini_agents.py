"""The Gemini adapter's agent features against the loopback fake: tools and tool choice, calls
out (unary and streamed), tool results in the history, images, JSON answers, thinking and
thought signatures, seed, and what each model declares it can honour.

The peer-gateway failures this pins: parallel calls streamed as index 0 and merged; a
`functionResponse` without a name; STOP after calls read as "stop"; an https image silently
dropped; a tool loop with thinking on failing on its second turn (thought signatures).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from providers.base import check_capabilities
from providers.errors import UpstreamBadRequestError
from providers.gemini import SPEC, GeminiProvider
from providers.gemini_request import SKIP_SIGNATURE
from providers.types import (
    ChatRequest,
    Completion,
    ImagePart,
    Message,
    ReasoningDelta,
    ReasoningPart,
    ResponseFormat,
    ResponseFormatType,
    Sampling,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
)
from tests.contract.harness import Vendor, collect, finish, folded
from tests.fakes.base import RecordedRequest
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.script import Answer
from tests.fakes.script import ToolCall as Call

KEY = "AIzaSy-test-0123456789SECRET"
MODEL = "gemini-2.5-flash"
GEMINI_3 = "gemini-3-flash-preview"
VENDOR = Vendor(FakeGemini, SPEC, name="gemini-main", keys=(KEY,))
WEATHER = Tool(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = Tool("get_time")
ASK = Message.of_text("user", "Weather in Paris and Rome?")
PNG = b"\x89PNG\r\n\x1a\n-fake-image-bytes"


def ask(
    *messages: Message,
    model: str = MODEL,
    tools: tuple[Tool, ...] = (WEATHER, CLOCK),
    **fields: Any,
) -> ChatRequest:
    return ChatRequest(model=model, messages=messages or (ASK,), tools=tools, **fields)


async def answer(provider: GeminiProvider, request: ChatRequest, streamed: bool) -> Completion:
    if streamed:
        return folded(await collect(provider, request))
    return await provider.complete(request)


def turn_of(completion: Completion) -> Message:
    """The assistant message a client sends back for `completion`."""
    text = (TextPart(completion.content),) if completion.content else ()
    return Message("assistant", text, completion.tool_calls, reasoning=completion.reasoning_parts)


def contents_of(request: RecordedRequest) -> list[Any]:
    """The `contents` the fake received."""
    contents = request.body["contents"]
    assert isinstance(contents, list)
    return contents


def result(call: ToolCall, text: str) -> Message:
    return Message("tool", (TextPart(text),), tool_call_id=call.id)


# -- tool definitions and tool choice --------------------------------------------------------


async def test_tools_go_as_function_declarations_with_their_json_schema(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    await provider.complete(ask())
    assert fake.requests[0].body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "parametersJsonSchema": dict(WEATHER.parameters),
                },
                {"name": "get_time"},
            ]
        }
    ]
    assert "toolConfig" not in fake.requests[0].body


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        (ToolChoice(ToolChoiceMode.AUTO), {"mode": "AUTO"}),
        (ToolChoice(ToolChoiceMode.NONE), {"mode": "NONE"}),
        (ToolChoice(ToolChoiceMode.REQUIRED), {"mode": "ANY"}),
        (
            ToolChoice(ToolChoiceMode.TOOL, "get_time"),
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
        ),
    ],
)
async def test_tool_choice_is_the_function_calling_config(
    provider: GeminiProvider, fake: FakeGemini, choice: ToolChoice, config: object
) -> None:
    await provider.complete(ask(tool_choice=choice))
    assert fake.requests[0].body["toolConfig"] == {"functionCallingConfig": config}
    assert fake.rejections == []


def test_capabilities_refuse_parallel_calls_off_but_take_the_rest(
    provider: GeminiProvider,
) -> None:
    can = provider.capabilities(MODEL)
    assert check_capabilities(ask(parallel_tool_calls=False), can, "gemini-main") == (
        "parallel_tool_calls: provider 'gemini-main' cannot turn parallel tool calls off"
    )
    # Gemini does not fetch https images: the gateway does, and sends the bytes.
    assert not can.image_urls
    url = Message("user", (ImagePart(url="https://example.com/cat.png"),))
    assert check_capabilities(ask(url), can, "gemini-main") is None
    everything = ask(
        Message("user", (TextPart("see"), ImagePart(data=PNG, media_type="image/png"))),
        tool_choice=ToolChoice(ToolChoiceMode.TOOL, "get_time"),
        reasoning_effort="low",
        sampling=Sampling(seed=7),
    )
    assert check_capabilities(everything, can, "gemini-main") is None
    # Before Gemini 3, a JSON answer comes without tools only: the plan skips or refuses it.
    json_with_tools = ask(response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT))
    assert check_capabilities(json_with_tools, can, "gemini-main") == (
        "response_format: provider 'gemini-main' cannot answer in JSON when tools are given"
    )


@pytest.mark.parametrize(
    ("model", "efforts"),
    [
        ("gemini-2.5-flash", {"none", "minimal", "low", "medium", "high"}),
        ("gemini-2.5-flash-lite", {"none", "minimal", "low", "medium", "high"}),
        ("gemini-2.5-pro", {"minimal", "low", "medium", "high"}),
        ("gemini-3-pro-preview", {"low", "high"}),
        ("gemini-3-flash-preview", {"minimal", "low", "medium", "high"}),
        ("gemini-2.0-flash", set()),
    ],
)
def test_reasoning_efforts_are_declared_per_model(
    provider: GeminiProvider, model: str, efforts: set[str]
) -> None:
    assert provider.capabilities(model).reasoning_efforts == efforts


# -- calls out -------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_same_name_parallel_calls_without_ids_get_distinct_ids_and_finish_tool_calls(
    provider: GeminiProvider, fake: FakeGemini, streamed: bool
) -> None:
    calls = [Call("get_weather", {"city": c}, with_id=False) for c in ("Paris", "Rome")]
    fake.script(Answer(text="Looking.", tool_calls=[*calls, Call("get_time", with_id=False)]))
    reply = await answer(provider, ask(), streamed)
    assert (reply.content, reply.finish_reason) == ("Looking.", "tool_calls")
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_weather", '{"city":"Rome"}'),
        ("get_time", "{}"),
    ]
    ids = [c.id for c in reply.tool_calls]
    assert all(ids)
    assert len(set(ids)) == 3


@pytest.mark.parametrize("streamed", [False, True])
async def test_gemini_call_ids_are_kept(
    provider: GeminiProvider, fake: FakeGemini, streamed: bool
) -> None:
    fake.script(Answer(tool_calls=[Call("get_time", id="call_abc"), Call("get_time")]))
    reply = await answer(provider, ask(), streamed)
    assert reply.tool_calls[0] == ToolCall("call_abc", "get_time", "{}")
    assert reply.tool_calls[1].id.startswith("call_")
    assert reply.tool_calls[1].id != "call_abc"


@pytest.mark.parametrize("calls_per_chunk", [1, 2])
async def test_streamed_parallel_calls_are_one_delta_each_numbered_in_arrival_order(
    provider: GeminiProvider, fake: FakeGemini, calls_per_chunk: int
) -> None:
    fake.calls_per_chunk = calls_per_chunk
    calls = [Call("get_weather", {"city": c}, with_id=False) for c in ("Paris", "Rome", "Oslo")]
    fake.script(Answer(text="One moment.", tool_calls=calls))
    events = await collect(provider, ask())
    content = [e for e in events if isinstance(e, TextDelta | ToolCallDelta)]
    assert [e.text for e in content if isinstance(e, TextDelta)] == ["One ", "moment."]
    deltas = [e for e in content if isinstance(e, ToolCallDelta)]
    assert content[-3:] == deltas  # the text came first
    assert [d.index for d in deltas] == [0, 1, 2]
    assert [d.arguments for d in deltas] == [f'{{"city":"{c}"}}' for c in ("Paris", "Rome", "Oslo")]
    assert len({d.id for d in deltas}) == 3
    assert {d.name for d in deltas} == {"get_weather"}
    done = finish(events)
    assert done.reason == "tool_calls"
    assert done.usage is not None


@pytest.mark.parametrize("streamed", [False, True])
async def test_calls_cut_by_the_token_limit_finish_length(
    provider: GeminiProvider, fake: FakeGemini, streamed: bool
) -> None:
    cut = Call("get_weather", '{"city": "Ro')
    fake.script(Answer(tool_calls=[Call("get_weather", {"city": "Paris"}), cut], finish="length"))
    reply = await answer(provider, ask(), streamed)
    assert reply.finish_reason == "length"
    assert [c.arguments for c in reply.tool_calls] == ['{"city":"Paris"}']


# -- tool results in the history -------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_results_go_back_named_by_their_call_in_one_content(
    provider: GeminiProvider, fake: FakeGemini, streamed: bool
) -> None:
    calls = [Call("get_weather", {"city": c}) for c in ("Paris", "Rome")]
    fake.script(Answer(tool_calls=calls), Answer(text="Sunny in both."))
    first = await answer(provider, ask(), streamed)
    paris, rome = first.tool_calls
    history = (ASK, turn_of(first), result(paris, "sunny"), result(rome, '{"sky": "clear"}'))
    second = await answer(provider, ask(*history), streamed)
    assert second.content == "Sunny in both."
    assert fake.rejections == []
    contents = contents_of(fake.requests[1])
    assert contents[1]["role"] == "model"
    assert [p["functionCall"] for p in contents[1]["parts"]] == [
        {"id": paris.id, "name": "get_weather", "args": {"city": "Paris"}},
        {"id": rome.id, "name": "get_weather", "args": {"city": "Rome"}},
    ]
    assert contents[2] == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "id": paris.id,
                    "name": "get_weather",
                    "response": {"output": "sunny"},
                }
            },
            {
                "functionResponse": {
                    "id": rome.id,
                    "name": "get_weather",
                    "response": {"output": '{"sky": "clear"}'},
                }
            },
        ],
    }


CALLED = Message("assistant", tool_calls=(ToolCall("c1", "get_time"), ToolCall("c2", "get_time")))


@pytest.mark.parametrize(
    ("history", "problem"),
    [
        ((ASK, CALLED, result(CALLED.tool_calls[0], "9:00")), r"messages\[3\]: tool call 'c2'"),
        ((ASK, CALLED), r"messages\[2\]: tool call 'c1'"),
        (
            (ASK, CALLED, Message.of_text("user", "hm"), result(CALLED.tool_calls[0], "9:00")),
            r"messages\[2\]: tool call 'c1'",
        ),
        (
            (ASK, Message.of_text("assistant", "Hi"), result(CALLED.tool_calls[0], "9:00")),
            r"messages\[2\]\.tool_call_id: answers no call",
        ),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_an_unanswered_call_or_a_stray_result_is_refused_before_anything_is_sent(
    provider: GeminiProvider,
    fake: FakeGemini,
    history: tuple[Message, ...],
    problem: str,
    streamed: bool,
) -> None:
    with pytest.raises(UpstreamBadRequestError, match=problem) as caught:
        await answer(provider, ask(*history), streamed)
    assert "provider 'gemini-main'" in caught.value.message
    assert fake.requests == []


# -- images ----------------------------------------------------------------------------------


async def test_images_as_data_url_and_as_bytes_go_inline(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    encoded = base64.b64encode(PNG).decode()
    parts = (
        TextPart("Same picture?"),
        ImagePart(url=f"data:image/png;base64,{encoded}"),
        ImagePart(data=PNG, media_type="image/jpeg"),
    )
    await provider.complete(ask(Message("user", parts), tools=()))
    assert fake.requests[0].body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Same picture?"},
                {"inlineData": {"mimeType": "image/png", "data": encoded}},
                {"inlineData": {"mimeType": "image/jpeg", "data": encoded}},
            ],
        }
    ]
    assert fake.rejections == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_https_image_reaching_the_adapter_is_refused_never_dropped(
    provider: GeminiProvider, fake: FakeGemini, streamed: bool
) -> None:
    image = Message("user", (TextPart("What is it?"), ImagePart(url="https://example.com/a.png")))
    with pytest.raises(UpstreamBadRequestError, match=r"messages\[0\]\.parts\[1\]\.image\.url"):
        await answer(provider, ask(image), streamed)
    assert fake.requests == []


# -- structured output -----------------------------------------------------------------------


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"cities": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
    "required": ["cities"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("streamed", [False, True])
async def test_json_schema_answer_is_content_with_finish_stop(
    provider: GeminiProvider, fake: FakeGemini, streamed: bool
) -> None:
    fake.script(Answer.json({"cities": ["Paris"]}))
    form = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "cities", SCHEMA, strict=True)
    reply = await answer(provider, ask(tools=(), response_format=form), streamed)
    assert (reply.content, reply.finish_reason) == ('{"cities":["Paris"]}', "stop")
    config = fake.requests[0].body["generationConfig"]
    assert isinstance(config, dict)
    assert config["responseMimeType"] == "application/json"
    schema = config["responseJsonSchema"]
    assert schema == {key: value for key, value in SCHEMA.items() if key != "$schema"}
    min_items = schema["properties"]["cities"]["minItems"]
    assert type(min_items) is int


async def test_json_object_asks_for_the_json_mime_type_only(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    form = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    await provider.complete(ask(tools=(), response_format=form))
    assert fake.requests[0].body["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize("streamed", [False, True])
async def test_tools_with_a_json_answer_are_refused_before_gemini_3_and_kept_on_it(
    provider: GeminiProvider, fake: FakeGemini, streamed: bool
) -> None:
    form = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "cities", SCHEMA)
    with pytest.raises(UpstreamBadRequestError, match=r"^response_format: .*'gemini-main'"):
        await answer(provider, ask(response_format=form), streamed)
    assert fake.requests == []
    fake.script(Answer.json({"cities": ["Oslo"]}))
    reply = await answer(provider, ask(model=GEMINI_3, response_format=form), streamed)
    assert (reply.content, reply.finish_reason) == ('{"cities":["Oslo"]}', "stop")
    body = fake.requests[0].body
    assert "tools" in body
    assert "responseJsonSchema" in body["generationConfig"]  # type: ignore[operator]
    assert fake.rejections == []


# -- reasoning -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-pro", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-3-pro-preview", "low", {"thinkingLevel": "LOW", "includeThoughts": True}),
        ("gemini-3-flash-preview", "medium", {"thinkingLevel": "MEDIUM", "includeThoughts": True}),
    ],
)
async def test_reasoning_effort_is_the_thinking_config(
    provider: GeminiProvider, fake: FakeGemini, model: str, effort: str, thinking: object
) -> None:
    await provider.complete(ask(model=model, reasoning_effort=effort))
    assert fake.requests[0].body["generationConfig"] == {"thinkingConfig": thinking}
    assert fake.rejections == []


async def test_effort_none_asks_nothing_of_a_model_that_does_not_think(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    await provider.complete(ask(model="gemini-2.0-flash", reasoning_effort="none"))
    assert "generationConfig" not in fake.requests[0].body


async def test_seed_goes_in_the_generation_config(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    await provider.complete(ask(sampling=Sampling(seed=42)))
    assert fake.requests[0].body["generationConfig"] == {"seed": 42}


@pytest.mark.parametrize("streamed", [False, True])
async def test_thoughts_are_reasoning_never_content_and_thinking_tokens_are_counted(
    provider: GeminiProvider, fake: FakeGemini, streamed: bool
) -> None:
    fake.thoughts_tokens = 6
    fake.script(Answer(reasoning="Paris is in France.", text="Sunny."))
    reply = await answer(provider, ask(reasoning_effort="low"), streamed)
    assert (reply.content, reply.reasoning) == ("Sunny.", "Paris is in France.")
    assert reply.usage.reasoning_tokens == 6
    signature = reply.reasoning_parts[0].signature
    assert reply.reasoning_parts[0].text == "Paris is in France."
    assert fake.minter.signed(signature)


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_tool_loop_with_thinking_on_gemini_3_passes_its_second_turn(
    provider: GeminiProvider, fake: FakeGemini, streamed: bool
) -> None:
    calls = [Call("get_weather", {"city": c}, with_id=False) for c in ("Paris", "Rome")]
    fake.script(
        Answer(reasoning="Two cities.", tool_calls=calls),
        Answer(reasoning="Both sunny.", tool_calls=[Call("get_time")]),
        Answer(text="Sunny, and it is 9:00."),
    )
    history = [ASK]
    for _ in range(2):
        reply = await answer(
            provider, ask(*history, model=GEMINI_3, reasoning_effort="high"), streamed
        )
        assert reply.finish_reason == "tool_calls"
        history += [turn_of(reply), *(result(call, "sunny") for call in reply.tool_calls)]
    final = await answer(provider, ask(*history, model=GEMINI_3, reasoning_effort="high"), streamed)
    assert final.content == "Sunny, and it is 9:00."
    assert fake.rejections == []
    # The first call of each step carries the signature it was issued with, and only that one.
    model_turns = [c for c in contents_of(fake.requests[2]) if c["role"] == "model"]
    for turn in model_turns:
        calls_sent = [p for p in turn["parts"] if "functionCall" in p]
        assert fake.minter.signed(calls_sent[0]["thoughtSignature"])
        assert all("thoughtSignature" not in p for p in calls_sent[1:])
        assert turn["parts"][0]["thought"] is True


async def test_a_call_turn_gemini_did_not_sign_gets_the_documented_dummy_on_gemini_3(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    call = ToolCall("c1", "get_time")
    history = (ASK, Message("assistant", tool_calls=(call,)), result(call, "9:00"))
    await provider.complete(ask(*history, model=GEMINI_3))
    await provider.complete(ask(*history, model=MODEL))
    assert fake.rejections == []
    signed, unsigned = (contents_of(r)[1]["parts"][0] for r in fake.requests)
    assert signed["thoughtSignature"] == SKIP_SIGNATURE
    assert "thoughtSignature" not in unsigned


async def test_streamed_signature_on_a_call_names_that_call(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.script(Answer(reasoning="Hmm.", tool_calls=[Call("get_time", with_id=False)]))
    events = await collect(provider, ask(model=GEMINI_3, reasoning_effort="low"))
    call = next(e for e in events if isinstance(e, ToolCallDelta))
    reasoning = [e for e in events if isinstance(e, ReasoningDelta)]
    assert reasoning[0] == ReasoningDelta("Hmm.")
    assert reasoning[1].tool_call_id == call.id
    assert fake.minter.signed(reasoning[1].signature)


async def test_a_stream_folds_into_the_same_calls_and_reasoning_as_complete(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    def scripted() -> Answer:
        calls = [Call("get_weather", {"city": c}, id=f"call_{c}") for c in ("Paris", "Rome")]
        return Answer(text="Both.", reasoning="Two.", signature="c2ln", tool_calls=calls)

    fake.script(scripted(), scripted())
    whole = await provider.complete(ask(reasoning_effort="low"))
    streamed = folded(await collect(provider, ask(reasoning_effort="low")))
    assert streamed.tool_calls == whole.tool_calls
    assert (streamed.content, streamed.reasoning) == (whole.content, whole.reasoning)
    assert streamed.reasoning_parts == whole.reasoning_parts
    assert whole.reasoning_parts == (ReasoningPart("Two.", "c2ln", tool_call_id="call_Paris"),)


async def test_a_signature_that_came_with_the_answer_text_goes_back_on_that_text(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.script(Answer(text="Paris is sunny.", reasoning="Easy.", signature="dGV4dA=="))
    first = await provider.complete(ask(reasoning_effort="low"))
    await provider.complete(ask(ASK, turn_of(first), Message.of_text("user", "And Rome?")))
    assert contents_of(fake.requests[1])[1] == {
        "role": "model",
        "parts": [
            {"text": "Easy.", "thought": True},
            {"text": "Paris is sunny.", "thoughtSignature": "dGV4dA=="},
        ],
    }
