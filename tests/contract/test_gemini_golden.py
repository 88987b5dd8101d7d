"""The exact GenerateContentRequest body the Gemini adapter sends for one rich request.

System text, a user turn with text and an image, an assistant turn with a thought, text and two
calls (the first signed), their results, tools, a named tool choice, a JSON schema answer,
reasoning effort and a seed, to Gemini 3 (the models that take tools and a JSON answer together):
any change in the translation shows here as a diff.
"""

from __future__ import annotations

import base64

from providers.gemini import SPEC, GeminiProvider
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
from tests.contract.harness import Vendor
from tests.fakes.gemini_server import FakeGemini

VENDOR = Vendor(FakeGemini, SPEC, name="gemini-main", keys=("AIzaSy-golden",))
PNG = b"\x89PNG\r\n\x1a\n-golden"
PNG64 = base64.b64encode(PNG).decode()
SIGNATURE = "c2lnbmVkLWJ5LWdlbWluaQ=="
CALLS = (
    ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
    ToolCall("call_2", "get_weather", '{"city": "Rome", "days": 2}'),
)
LOCATION = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
}
ANSWER = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "cities": {"type": "array", "minItems": 1}},
    "required": ["summary", "cities"],
    "additionalProperties": False,
}
REQUEST = ChatRequest(
    model="gemini-3-flash-preview",
    messages=(
        Message.of_text("system", "You are a weather bot."),
        Message(
            "user",
            (
                TextPart("Weather where this was taken, and in Rome?"),
                ImagePart(data=PNG, media_type="image/png"),
            ),
        ),
        Message(
            "assistant",
            (TextPart("Checking both."),),
            CALLS,
            reasoning=(ReasoningPart("Paris, from the tower.", SIGNATURE, tool_call_id="call_1"),),
        ),
        Message("tool", (TextPart("sunny, 24C"),), tool_call_id="call_1"),
        Message("tool", (TextPart("rain"),), tool_call_id="call_2"),
        Message.of_text("developer", "Answer in JSON."),
    ),
    sampling=Sampling(temperature=0.2, max_tokens=512, seed=1234),
    tools=(Tool("get_weather", "Current weather for a city.", LOCATION), Tool("get_time")),
    tool_choice=ToolChoice(ToolChoiceMode.TOOL, "get_weather"),
    response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, "weather", ANSWER, strict=True),
    reasoning_effort="medium",
)
GOLDEN = {
    "contents": [
        {
            "role": "user",
            "parts": [
                {"text": "Weather where this was taken, and in Rome?"},
                {"inlineData": {"mimeType": "image/png", "data": PNG64}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"text": "Paris, from the tower.", "thought": True},
                {"text": "Checking both."},
                {
                    "functionCall": {
                        "id": "call_1",
                        "name": "get_weather",
                        "args": {"city": "Paris"},
                    },
                    "thoughtSignature": SIGNATURE,
                },
                {
                    "functionCall": {
                        "id": "call_2",
                        "name": "get_weather",
                        "args": {"city": "Rome", "days": 2},
                    }
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "id": "call_1",
                        "name": "get_weather",
                        "response": {"output": "sunny, 24C"},
                    }
                },
                {
                    "functionResponse": {
                        "id": "call_2",
                        "name": "get_weather",
                        "response": {"output": "rain"},
                    }
                },
            ],
        },
    ],
    "systemInstruction": {
        "parts": [{"text": "You are a weather bot."}, {"text": "Answer in JSON."}]
    },
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather for a city.",
                    "parametersJsonSchema": LOCATION,
                },
                {"name": "get_time"},
            ]
        }
    ],
    "toolConfig": {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    },
    "generationConfig": {
        "temperature": 0.2,
        "maxOutputTokens": 512,
        "seed": 1234,
        "responseMimeType": "application/json",
        "responseJsonSchema": ANSWER,
        "thinkingConfig": {"thinkingLevel": "MEDIUM", "includeThoughts": True},
    },
}


async def test_the_rich_request_reaches_gemini_exactly_as_pinned(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.minter.remember(SIGNATURE, "")  # as if this fake had issued it on the earlier turn
    await provider.complete(REQUEST)
    assert fake.rejections == []
    assert fake.requests[0].body == GOLDEN
    assert list(fake.requests[0].body) == list(GOLDEN)


async def test_a_stream_sends_the_same_body(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.minter.remember(SIGNATURE, "")
    async for _event in provider.stream(REQUEST):
        pass
    assert fake.rejections == []
    assert fake.requests[0].body == GOLDEN
