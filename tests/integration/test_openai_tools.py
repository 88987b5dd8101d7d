"""Tool calls, structured output and reasoning through the OpenAI-compatible route, driven by the
official SDK (strict validation) over a deployment playing scripted events (`openai_support`).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel

from providers.types import (
    Finish,
    ImagePart,
    ReasoningDelta,
    ReasoningPart,
    ResponseFormatType,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
)
from tests.openai_support import ASK, USAGE, WEATHER, ScriptedProvider, scripted_gateway

#: Parallel calls as every vendor streams them: one after the other, each in fragments.
PARALLEL: list[StreamEvent] = [
    ToolCallDelta(0, "call_a", "get_weather", '{"city": '),
    ToolCallDelta(0, arguments='"Paris"}'),
    ToolCallDelta(1, "call_b", "get_weather", '{"city": "Ro'),
    ToolCallDelta(1, arguments='me"}'),
    Finish("tool_calls", USAGE),
]
#: Anthropic-style: thinking text, its signature, then the call.
THINKING: list[StreamEvent] = [
    ReasoningDelta(text="The user wants "),
    ReasoningDelta(text="the weather."),
    ReasoningDelta(signature="sig-anthropic"),
    ToolCallDelta(0, "toolu_1", "get_weather", '{"city": "Paris"}'),
    Finish("tool_calls", USAGE),
]
#: Gemini-style: each call's thought signature tied to it, the second after its call began.
SIGNED_CALLS: list[StreamEvent] = [
    ReasoningDelta(signature="sig-first", tool_call_id="g_1"),
    ToolCallDelta(0, "g_1", "get_weather", '{"city": "Paris"}'),
    ToolCallDelta(1, "g_2", "get_weather", '{"city": "Rome"}'),
    ReasoningDelta(signature="sig-second", tool_call_id="g_2"),
    Finish("stop", USAGE),
]


#: The smallest PNG: one transparent pixel.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
async def api(provider: ScriptedProvider) -> AsyncIterator[AsyncOpenAI]:
    async with scripted_gateway(provider) as base_url:
        client = AsyncOpenAI(
            base_url=base_url, api_key="sk-x", max_retries=0, _strict_response_validation=True
        )
        yield client
        await client.close()


def echoed(message: Any) -> ChatCompletionMessageParam:
    """The assistant turn as a client that keeps only role, content and tool calls sends it."""
    calls = [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.function.name, "arguments": c.function.arguments},
        }
        for c in message.tool_calls
    ]
    echo = {"role": "assistant", "content": message.content, "tool_calls": calls}
    return echo  # type: ignore[return-value]


def results(message: Any) -> list[ChatCompletionMessageParam]:
    return [{"role": "tool", "tool_call_id": c.id, "content": "sunny"} for c in message.tool_calls]


async def test_a_tool_call_has_null_content_and_finish_tool_calls(
    api: AsyncOpenAI, provider: ScriptedProvider
) -> None:
    provider.script(PARALLEL)
    completion = await api.chat.completions.create(model="model", messages=ASK, tools=[WEATHER])
    choice = completion.choices[0]
    assert choice.message.content is None
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_weather", '{"city": "Rome"}'),
    ]
    [asked] = provider.requests
    assert [t.name for t in asked.tools] == ["get_weather"]


async def test_the_stream_helper_assembles_parallel_tool_calls(
    api: AsyncOpenAI, provider: ScriptedProvider
) -> None:
    provider.script(PARALLEL)
    async with api.chat.completions.stream(model="model", messages=ASK, tools=[WEATHER]) as stream:
        done = [e async for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = await stream.get_final_completion()
    assert sorted((e.index, e.arguments) for e in done) == [
        (0, '{"city": "Paris"}'),
        (1, '{"city": "Rome"}'),
    ]
    message = final.choices[0].message
    assert [c.id for c in message.tool_calls or []] == ["call_a", "call_b"]
    assert final.choices[0].finish_reason == "tool_calls"


async def test_tool_choice_and_parallel_switch_reach_the_provider(
    api: AsyncOpenAI, provider: ScriptedProvider
) -> None:
    await api.chat.completions.create(
        model="model",
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    [asked] = provider.requests
    assert asked.tool_choice == ToolChoice(ToolChoiceMode.TOOL, "get_weather")
    assert asked.parallel_tool_calls is False


async def test_a_two_turn_loop_carries_thinking_back_in_the_ids(
    api: AsyncOpenAI, provider: ScriptedProvider
) -> None:
    provider.script(THINKING)
    first = await api.chat.completions.create(model="model", messages=ASK, tools=[WEATHER])
    message = first.choices[0].message
    assert message.model_extra is not None
    assert message.model_extra["reasoning_content"] == "The user wants the weather."
    second = await api.chat.completions.create(
        model="model", messages=[*ASK, echoed(message), *results(message)], tools=[WEATHER]
    )
    assert second.choices[0].message.content == "Hello there"
    turn, answer = provider.requests[1].messages[1:3]
    assert turn.reasoning == (ReasoningPart("The user wants the weather.", "sig-anthropic"),)
    assert [c.id for c in turn.tool_calls] == ["toolu_1"]
    assert answer.tool_call_id == "toolu_1"


async def test_a_streamed_loop_carries_signatures_tied_to_calls(
    api: AsyncOpenAI, provider: ScriptedProvider
) -> None:
    provider.script(SIGNED_CALLS)
    async with api.chat.completions.stream(model="model", messages=ASK, tools=[WEATHER]) as stream:
        final = await stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    await api.chat.completions.create(
        model="model", messages=[*ASK, echoed(message), *results(message)], tools=[WEATHER]
    )
    turn = provider.requests[1].messages[1]
    assert [c.id for c in turn.tool_calls] == ["g_1", "g_2"]
    assert sorted((p.tool_call_id, p.signature) for p in turn.reasoning) == [
        ("g_1", "sig-first"),
        ("g_2", "sig-second"),
    ]
    assert [m.tool_call_id for m in provider.requests[1].messages[2:]] == ["g_1", "g_2"]


async def test_reasoning_text_streams_as_reasoning_content(
    api: AsyncOpenAI, provider: ScriptedProvider
) -> None:
    provider.script([ReasoningDelta(text="Hmm."), TextDelta("Yes."), Finish("stop", USAGE)])
    stream = await api.chat.completions.create(
        model="model", messages=ASK, stream=True, reasoning_effort="high"
    )
    deltas = [chunk.choices[0].delta async for chunk in stream if chunk.choices]
    thoughts = [d.model_extra.get("reasoning_content") for d in deltas if d.model_extra]
    assert "Hmm." in thoughts
    assert "".join(d.content or "" for d in deltas) == "Yes."
    assert provider.requests[0].reasoning_effort == "high"


class City(BaseModel):
    city: str
    sunny: bool


async def test_a_json_schema_answer_parses(api: AsyncOpenAI, provider: ScriptedProvider) -> None:
    provider.script([TextDelta('{"city": "Paris", "sunny": true}'), Finish("stop", USAGE)])
    completion = await api.chat.completions.parse(model="model", messages=ASK, response_format=City)
    assert completion.choices[0].message.parsed == City(city="Paris", sunny=True)
    form = provider.requests[0].response_format
    assert form is not None
    assert form.type is ResponseFormatType.JSON_SCHEMA
    assert form.name == "City"
    assert form.strict


async def test_a_silent_stream_is_kept_alive_with_comments_the_sdk_skips(
    provider: ScriptedProvider,
) -> None:
    provider.pause = 0.3
    provider.script([TextDelta("Slow"), TextDelta(" answer."), Finish("stop", USAGE)])
    async with scripted_gateway(provider, keepalive=0.05) as base_url:
        body = {"model": "model", "messages": ASK, "stream": True}
        async with (
            aiohttp.ClientSession() as session,
            session.post(base_url + "/chat/completions", json=body) as reply,
        ):
            raw = await reply.read()
        assert b"\n: keep-alive\n\n" in raw
        async with AsyncOpenAI(
            base_url=base_url, api_key="sk-x", _strict_response_validation=True
        ) as client:
            provider.script([TextDelta("Slow"), TextDelta(" answer."), Finish("stop", USAGE)])
            stream = await client.chat.completions.create(model="model", messages=ASK, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "Slow answer."


async def test_an_image_part_reaches_the_deployment(
    api: AsyncOpenAI, provider: ScriptedProvider
) -> None:
    image = "data:image/png;base64," + base64.b64encode(PNG).decode()
    await api.chat.completions.create(
        model="model",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
                ],
            }
        ],
    )
    [asked] = provider.requests
    assert asked.messages[0].parts[1] == ImagePart(url=image, detail="low")
