"""The exact `/api/chat` body Ollama receives for one fixed rich request: a translation
regression anywhere (messages, images, tool calls and results, tools, format, think, options)
shows here as a diff."""

from __future__ import annotations

import base64

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
from tests.contract.harness import Vendor, collect
from tests.fakes.ollama_server import FakeOllama

VENDOR = Vendor(FakeOllama, SPEC, name="ollama-local")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
PNG_B64 = base64.b64encode(PNG).decode()
JPEG_B64 = base64.b64encode(b"\xff\xd8\xff\xe0\x00\x10JFIF").decode()
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
ANSWER = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "temperatures": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
    },
    "required": ["summary", "temperatures"],
}

RICH = ChatRequest(
    model="qwen3:8b",
    messages=(
        Message.of_text("system", "You are a weather bot."),
        Message.of_text("developer", "Answer in JSON."),
        Message(
            "user",
            (
                TextPart("Weather where these were taken?"),
                ImagePart(url=f"data:image/png;base64,{PNG_B64}", detail="high"),
                ImagePart(data=base64.b64decode(JPEG_B64), media_type="image/jpeg"),
            ),
        ),
        Message(
            "assistant",
            (TextPart("Checking both."),),
            tool_calls=(
                ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
                ToolCall("call_b", "get_weather", '{"city": "Rome"}'),
                ToolCall("call_c", "get_time"),
            ),
            reasoning=(ReasoningPart("Paris and Rome."), ReasoningPart(signature="c2ln")),
        ),
        Message("tool", (TextPart("sunny, 21"),), tool_call_id="call_a"),
        Message("tool", (TextPart("rain, 17"),), tool_call_id="call_b"),
        Message("tool", (TextPart("12:00"),), tool_call_id="call_c"),
    ),
    sampling=Sampling(temperature=0.2, max_tokens=256, top_p=0.9, stop=("END",), seed=7),
    tools=(Tool("get_weather", "The weather in a city.", CITY), Tool("get_time")),
    tool_choice=ToolChoice(ToolChoiceMode.AUTO),
    response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, "report", ANSWER, strict=True),
    reasoning_effort="medium",
)

GOLDEN = {
    "model": "qwen3:8b",
    "messages": [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "system", "content": "Answer in JSON."},
        {
            "role": "user",
            "content": "Weather where these were taken?",
            "images": [PNG_B64, JPEG_B64],
        },
        {
            "role": "assistant",
            "content": "Checking both.",
            "thinking": "Paris and Rome.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                },
                {
                    "id": "call_b",
                    "function": {"name": "get_weather", "arguments": {"city": "Rome"}},
                },
                {"id": "call_c", "function": {"name": "get_time", "arguments": {}}},
            ],
        },
        {
            "role": "tool",
            "content": "sunny, 21",
            "tool_name": "get_weather",
            "tool_call_id": "call_a",
        },
        {
            "role": "tool",
            "content": "rain, 17",
            "tool_name": "get_weather",
            "tool_call_id": "call_b",
        },
        {"role": "tool", "content": "12:00", "tool_name": "get_time", "tool_call_id": "call_c"},
    ],
    "stream": False,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": CITY,
            },
        },
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
        },
    ],
    "format": ANSWER,
    "think": True,
    "options": {"temperature": 0.2, "top_p": 0.9, "num_predict": 256, "stop": ["END"], "seed": 7},
}


async def test_the_rich_request_reaches_ollama_exactly_as_pinned(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    await provider.complete(RICH)
    assert fake.requests[0].body == GOLDEN


async def test_the_streamed_request_differs_only_in_stream(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    await collect(provider, RICH)
    assert fake.requests[0].body == {**GOLDEN, "stream": True}
