"""Tool calls through `/v1/chat/completions` to all six vendor fakes, driven by the official SDK
(strict validation): parallel calls unary and with the `.stream()` helper, and two-turn tool
loops with reasoning on for Anthropic (thinking blocks) and Gemini 3 (thought signatures), where
the client echoes back only role, content and tool calls and the fakes refuse a turn without the
vendor's reasoning state.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import orjson
import pytest
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionMessageParam,
)
from pydantic import BaseModel

from tests.conftest import RunningGateway, StartGateway
from tests.contract.cases import CASES, AdapterCase
from tests.fakes.base import Answer, ToolCall, VendorFake
from tests.fakes.gemini_rules import SKIP_SIGNATURE
from tests.openai_support import ASK, WEATHER

BOTH = Answer(
    tool_calls=[
        ToolCall("get_weather", {"city": "Paris"}),
        ToolCall("get_weather", {"city": "Rome"}),
    ]
)
#: The smallest PNG: one transparent pixel.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
    "rkJggg=="
)
PNG_URL = "data:image/png;base64," + PNG_BASE64
EXPECTED = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, VendorFake]]:
    async with AsyncExitStack() as stack:
        yield {c.kind: await stack.enter_async_context(c.fake()) for c in CASES}


@pytest.fixture
async def api(
    start_gateway: StartGateway, fakes: dict[str, VendorFake]
) -> AsyncIterator[AsyncOpenAI]:
    gw: RunningGateway = await start_gateway(
        providers=tuple(c.settings(fakes[c.kind]) for c in CASES), primary_retries=0
    )
    client = AsyncOpenAI(
        base_url=gw.http_url + "/v1",
        api_key="sk-x",
        max_retries=0,
        _strict_response_validation=True,
    )
    yield client
    await client.close()


def calls_of(message: Any) -> list[tuple[str, object]]:
    return [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]


def echoed(message: Any) -> list[ChatCompletionMessageParam]:
    """The assistant turn as a client keeping only role, content and tool calls sends it, and
    a result for each call."""
    calls = [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.function.name, "arguments": c.function.arguments},
        }
        for c in message.tool_calls
    ]
    turn: Any = {"role": "assistant", "content": message.content, "tool_calls": calls}
    results: list[Any] = [
        {"role": "tool", "tool_call_id": c.id, "content": "sunny"} for c in message.tool_calls
    ]
    return [turn, *results]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_parallel_tool_calls_come_back_unary(
    api: AsyncOpenAI, fakes: dict[str, VendorFake], case: AdapterCase
) -> None:
    fakes[case.kind].script(BOTH)
    completion = await api.chat.completions.create(
        model=f"{case.kind}/{case.model}", messages=ASK, tools=[WEATHER]
    )
    choice = completion.choices[0]
    assert calls_of(choice.message) == EXPECTED
    assert choice.finish_reason == "tool_calls"
    ids = [c.id for c in choice.message.tool_calls or []]
    assert len(set(ids)) == 2


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_the_stream_helper_assembles_parallel_calls(
    api: AsyncOpenAI, fakes: dict[str, VendorFake], case: AdapterCase
) -> None:
    fakes[case.kind].script(BOTH)
    async with api.chat.completions.stream(
        model=f"{case.kind}/{case.model}", messages=ASK, tools=[WEATHER]
    ) as stream:
        final = await stream.get_final_completion()
    assert calls_of(final.choices[0].message) == EXPECTED
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_two_turn_tool_loop_works(
    api: AsyncOpenAI, fakes: dict[str, VendorFake], case: AdapterCase
) -> None:
    fakes[case.kind].script(BOTH, Answer(text="Sunny in both."))
    model = f"{case.kind}/{case.model}"
    first = await api.chat.completions.create(model=model, messages=ASK, tools=[WEATHER])
    message = first.choices[0].message
    second = await api.chat.completions.create(
        model=model, messages=[*ASK, *echoed(message)], tools=[WEATHER]
    )
    assert second.choices[0].message.content == "Sunny in both."


@pytest.mark.parametrize(
    ("kind", "model"),
    [("anthropic", "claude-sonnet-4-5"), ("gemini", "gemini-3-pro-preview")],
)
@pytest.mark.parametrize("streamed", [False, True], ids=["unary", "stream"])
async def test_a_reasoning_tool_loop_keeps_the_vendors_state(
    api: AsyncOpenAI, fakes: dict[str, VendorFake], kind: str, model: str, streamed: bool
) -> None:
    fake = fakes[kind]
    fake.script(
        Answer(reasoning="The user wants two cities.", tool_calls=BOTH.tool_calls),
        Answer(text="Sunny in both."),
    )
    routed = f"{kind}/{model}"
    first: ChatCompletion
    if streamed:
        async with api.chat.completions.stream(
            model=routed, messages=ASK, tools=[WEATHER], reasoning_effort="high"
        ) as stream:
            first = await stream.get_final_completion()
    else:
        first = await api.chat.completions.create(
            model=routed, messages=ASK, tools=[WEATHER], reasoning_effort="high"
        )
    message = first.choices[0].message
    assert calls_of(message) == EXPECTED
    assert (message.model_extra or {}).get("reasoning_content") == "The user wants two cities."
    second = await api.chat.completions.create(
        model=routed, messages=[*ASK, *echoed(message)], tools=[WEATHER], reasoning_effort="high"
    )
    assert second.choices[0].message.content == "Sunny in both."
    assert fake.rejections == []
    if kind == "gemini":  # its adapter sends a dummy signature for a history without them
        signatures = [
            part.get("thoughtSignature")
            for content in fake.requests[-1].body["contents"]  # type: ignore[attr-defined]
            for part in content["parts"]
            if "functionCall" in part
        ]
        assert signatures[0] not in (None, "", SKIP_SIGNATURE)  # the step's first call's


class City(BaseModel):
    city: str
    sunny: bool


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in ("openai", "gemini")], ids=str)
async def test_a_json_schema_answer_parses(
    api: AsyncOpenAI, fakes: dict[str, VendorFake], case: AdapterCase
) -> None:
    fakes[case.kind].script(Answer.json({"city": "Paris", "sunny": True}))
    completion = await api.chat.completions.parse(
        model=f"{case.kind}/{case.model}", messages=ASK, response_format=City
    )
    assert completion.choices[0].message.parsed == City(city="Paris", sunny=True)
    assert fakes[case.kind].rejections == []


VISION = ("openai", "azure_openai", "anthropic", "gemini")


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in VISION], ids=str)
async def test_an_image_reaches_the_vendor(
    api: AsyncOpenAI, fakes: dict[str, VendorFake], case: AdapterCase
) -> None:
    completion = await api.chat.completions.create(
        model=f"{case.kind}/{case.model}",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": PNG_URL}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content
    sent = orjson.dumps(fakes[case.kind].requests[-1].body)
    assert PNG_BASE64.encode() in sent
