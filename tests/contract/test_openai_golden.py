"""Golden: the exact JSON OpenAI (and Azure OpenAI) receive for one fixed rich request.

A translation regression shows here first. The request has everything: a system turn, a user
turn of text and images, an assistant turn that called two tools, their results, tools (one
strict, with a float-typed integral keyword as a `google.protobuf.Struct` would give it), a
named tool choice, the parallel switch, a strict JSON-schema answer, a reasoning effort, a
seed and a token limit (for a reasoning model: `max_completion_tokens`).
"""

from __future__ import annotations

from providers.azure_openai import SPEC as AZURE_SPEC
from providers.http.client import UpstreamClient
from providers.openai import SPEC, OpenAIProvider
from providers.types import (
    ChatRequest,
    ImagePart,
    Message,
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
from tests.fakes.azure_openai_server import FakeAzureOpenAI
from tests.fakes.openai_server import FakeOpenAI

KEY = "sk-test-0123456789abcdefSECRET"
VENDOR = Vendor(FakeOpenAI, SPEC, name="openai-main", keys=(KEY,))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(8)
PNG_URL = "data:image/png;base64,iVBORw0KGgoAAAAAAAAAAA=="

RICH = ChatRequest(
    model="gpt-5-mini",
    messages=(
        Message.of_text("system", "You are a weather bot."),
        Message(
            "user",
            (
                TextPart("Weather where these were taken?"),
                ImagePart(data=PNG, media_type="image/png", detail="low"),
                ImagePart(url="https://example.com/rome.jpg"),
            ),
        ),
        Message(
            "assistant",
            (TextPart("Looking both up."),),
            tool_calls=(
                ToolCall("call_paris", "get_weather", '{"city":"Paris"}'),
                ToolCall("call_rome", "get_weather", '{"city":"Rome"}'),
            ),
        ),
        Message("tool", (TextPart("sunny, 24C"),), tool_call_id="call_paris"),
        Message("tool", (TextPart("rain"), TextPart(", 18C")), tool_call_id="call_rome"),
    ),
    sampling=Sampling(max_tokens=800, seed=7),
    tools=(
        Tool(
            "get_weather",
            "Current weather in a city.",
            {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "minLength": 1.0},
                    "days": {"type": "integer", "maximum": 7.0},
                },
                "required": ["city", "days"],
            },
            strict=True,
        ),
        Tool("get_time"),
    ),
    tool_choice=ToolChoice(ToolChoiceMode.TOOL, "get_weather"),
    parallel_tool_calls=False,
    response_format=ResponseFormat(
        ResponseFormatType.JSON_SCHEMA,
        "report",
        {
            "type": "object",
            "properties": {
                "summary": {"type": "string"},
                "cities": {"type": "array", "items": {"type": "string"}, "minItems": 1.0},
            },
            "required": ["summary", "cities"],
        },
        strict=True,
    ),
    reasoning_effort="low",
)

GOLDEN = {
    "model": "gpt-5-mini",
    "messages": [
        {"role": "system", "content": "You are a weather bot."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather where these were taken?"},
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/rome.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Looking both up.",
            "tool_calls": [
                {
                    "id": "call_paris",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_rome",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_paris", "content": "sunny, 24C"},
        {
            "role": "tool",
            "tool_call_id": "call_rome",
            "content": [{"type": "text", "text": "rain"}, {"type": "text", "text": ", 18C"}],
        },
    ],
    "max_completion_tokens": 800,
    "seed": 7,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "minLength": 1},
                        "days": {"type": "integer", "maximum": 7},
                    },
                    "required": ["city", "days"],
                    "additionalProperties": False,
                },
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "get_time"}},
    ],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "report",
            "schema": {
                "type": "object",
                "properties": {
                    "summary": {"type": "string"},
                    "cities": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                },
                "required": ["summary", "cities"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    "reasoning_effort": "low",
}


async def test_the_rich_request_reaches_openai_exactly_so(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    await provider.complete(RICH)  # and the fake, holding it to OpenAI's rules, takes it
    body = fake.requests[0].body
    assert body == GOLDEN
    assert list(body) == list(GOLDEN)  # same keys in the same order
    assert type(body["seed"]) is int


async def test_the_rich_request_streamed_adds_only_the_stream_fields(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    await collect(provider, RICH)
    assert fake.requests[0].body == {
        **GOLDEN,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_azure_openai_receives_the_same_body(session: UpstreamClient) -> None:
    async with FakeAzureOpenAI() as fake:
        azure = Vendor(FakeAzureOpenAI, AZURE_SPEC, name="azure", keys=(KEY,))
        await azure.adapter(session, fake.base_url).complete(RICH)
    assert fake.requests[0].body == GOLDEN
    assert fake.requests[0].path == "/openai/deployments/gpt-5-mini/chat/completions"
