"""The exact Messages body Anthropic receives for one fixed rich request: a translation
regression shows here first.

The request has a system turn, user text and an image, an assistant turn with its thinking,
text and two calls, both results, a closing user turn, two tools (one strict), a tool choice
with parallel use off, a JSON-schema answer and a reasoning effort. Anthropic takes no seed:
a request with one is refused (`test_anthropic_content.py`), so the golden request has none.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from providers.anthropic import SPEC, AnthropicProvider
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
from tests.contract.harness import Vendor, collect
from tests.fakes.anthropic_server import FakeAnthropic

KEY = "sk-ant-test-0123456789abcdefSECRET"
VENDOR = Vendor(FakeAnthropic, SPEC, name="claude", keys=(KEY,))
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8).decode()
SIGNATURE = "RXFVTkNqUVlDaEl4LXNpZ25hdHVyZQ=="
THOUGHT = "The user wants the weather and the time."
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "minLength": 1.0}},
    "required": ["city"],
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "temperature": {"type": "number", "minimum": -90.0},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1.0},
    },
    "required": ["summary", "temperature"],
}

RICH = ChatRequest(
    model="claude-sonnet-4-5-20250929",
    messages=(
        Message.of_text("system", "You are a weather assistant."),
        Message(
            "user",
            (
                TextPart("What is the weather where this photo was taken?"),
                ImagePart(url=f"data:image/png;base64,{PNG_B64}"),
            ),
        ),
        Message(
            "assistant",
            (TextPart("Let me check."),),
            tool_calls=(
                ToolCall("toolu_01Weather", "get_weather", '{"city": "Paris"}'),
                ToolCall("toolu_01Clock", "get_time", "{}"),
            ),
            reasoning=(ReasoningPart(THOUGHT, SIGNATURE),),
        ),
        Message("tool", (TextPart('{"celsius": 18}'),), tool_call_id="toolu_01Weather"),
        Message("tool", (TextPart("09:00"),), tool_call_id="toolu_01Clock"),
        Message.of_text("user", "Answer in JSON."),
    ),
    sampling=Sampling(max_tokens=1000, stop=("END",)),
    tools=(
        Tool("get_weather", "Current weather in a city.", CITY_SCHEMA, strict=True),
        Tool("get_time", "The local time."),
    ),
    tool_choice=ToolChoice(ToolChoiceMode.AUTO),
    parallel_tool_calls=False,
    response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, "weather", ANSWER_SCHEMA),
    reasoning_effort="medium",
)

GOLDEN: dict[str, Any] = {
    "model": "claude-sonnet-4-5-20250929",
    "max_tokens": 1000 + 8192,
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is the weather where this photo was taken?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": THOUGHT, "signature": SIGNATURE},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01Weather",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_01Clock", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01Weather",
                    "content": '{"celsius": 18}',
                },
                {"type": "tool_result", "tool_use_id": "toolu_01Clock", "content": "09:00"},
                {"type": "text", "text": "Answer in JSON."},
            ],
        },
    ],
    "system": "You are a weather assistant.",
    "stop_sequences": ["END"],
    "tools": [
        {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "{minLength: 1}"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        },
        {
            "name": "get_time",
            "description": "The local time.",
            "input_schema": {"type": "object", "properties": {}},
        },
    ],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "output_config": {
        "format": {
            "type": "json_schema",
            "schema": {
                "type": "object",
                "properties": {
                    "summary": {"type": "string"},
                    "temperature": {"type": "number", "description": "{minimum: -90}"},
                    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                },
                "required": ["summary", "temperature"],
                "additionalProperties": False,
            },
        }
    },
    "thinking": {"type": "enabled", "budget_tokens": 8192},
}


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_rich_request_reaches_anthropic_exactly_as_pinned(
    provider: AnthropicProvider, fake: FakeAnthropic, streamed: bool
) -> None:
    fake.minter.remember(SIGNATURE, THOUGHT)  # as if the fake had issued it last turn
    if streamed:
        await collect(provider, RICH)
    else:
        await provider.complete(RICH)
    assert fake.rejections == []
    expected = {**GOLDEN, "stream": True} if streamed else GOLDEN
    # Bytes, not just equal values: integral numbers must reach Anthropic as integers.
    sent = orjson.dumps(fake.requests[0].body, option=orjson.OPT_SORT_KEYS)
    assert sent == orjson.dumps(expected, option=orjson.OPT_SORT_KEYS)
