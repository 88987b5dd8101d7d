"""The Anthropic adapter against the loopback fake: images, structured output, and what each
model can do (refused before anything is sent when it cannot)."""

from __future__ import annotations

import base64

import orjson
import pytest

from providers.anthropic import SPEC, AnthropicProvider, capabilities_of
from providers.base import Capabilities, check_capabilities
from providers.errors import UpstreamBadRequestError
from providers.types import (
    REASONING_EFFORTS,
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Sampling,
    TextPart,
    Tool,
    ToolCall,
    ToolChoiceMode,
)
from tests.contract.harness import Vendor, collect, finish, folded, sent
from tests.fakes.anthropic_server import Answer, FakeAnthropic

KEY = "sk-ant-test-0123456789abcdefSECRET"
MODEL = "claude-sonnet-4-5"
VENDOR = Vendor(FakeAnthropic, SPEC, name="claude", keys=(KEY,))


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PNG_B64 = base64.b64encode(PNG).decode()
CITY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "population": {"type": "integer", "minimum": 0},
        "districts": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "kind": {"oneOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name", "population"],
}
JSON_SCHEMA = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "city", CITY, strict=True)


def user(*parts: TextPart | ImagePart) -> Message:
    return Message("user", parts)


# -- images --------------------------------------------------------------------------------------


async def test_images_go_as_base64_or_url_sources_in_order(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    message = user(
        TextPart("Compare"),
        ImagePart(url=f"data:image/png;base64,{PNG_B64}"),
        ImagePart(data=PNG, media_type="image/png", detail="low"),
        ImagePart(url="https://example.com/cat.jpg"),
    )
    await provider.complete(ChatRequest(MODEL, (message,)))
    base64_png = {"type": "base64", "media_type": "image/png", "data": PNG_B64}
    assert sent(fake)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image", "source": base64_png},
                {"type": "image", "source": base64_png},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        }
    ]


async def test_a_tool_result_carries_its_images(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    call = ToolCall("toolu_01A", "screenshot")
    history = (
        Message.of_text("user", "Look"),
        Message("assistant", tool_calls=(call,)),
        Message(
            "tool",
            (TextPart("here"), ImagePart(data=PNG, media_type="image/png")),
            tool_call_id=call.id,
        ),
    )
    await provider.complete(ChatRequest(MODEL, history, tools=(Tool("screenshot"),)))
    assert sent(fake)["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_01A",
            "content": [
                {"type": "text", "text": "here"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG_B64}},
            ],
        }
    ]  # fmt: skip


# -- structured output -------------------------------------------------------------------------


async def test_a_json_schema_goes_as_output_config_adjusted_to_anthropics_subset(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    await provider.complete(
        ChatRequest(MODEL, (user(TextPart("Paris?")),), response_format=JSON_SCHEMA)
    )
    body = sent(fake)
    assert "tools" not in body  # native, not a forced tool
    assert "tool_choice" not in body
    assert body["output_config"] == {
        "format": {
            "type": "json_schema",
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "{maxLength: 40}"},
                    "population": {"type": "integer", "description": "{minimum: 0}"},
                    "districts": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "kind": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
                "required": ["name", "population"],
                "additionalProperties": False,
            },
        }
    }


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_json_schema_answer_is_the_content_with_finish_stop(
    provider: AnthropicProvider, fake: FakeAnthropic, streamed: bool
) -> None:
    # A peer gateway answered this as a tool call, or as prose.
    value = {"name": "Paris", "population": 2100000, "districts": ["Marais"]}
    fake.script(Answer.json(value))
    request = ChatRequest(MODEL, (user(TextPart("Paris?")),), response_format=JSON_SCHEMA)
    if streamed:
        events = await collect(provider, request)
        answer = folded(events)
        assert finish(events).reason == "stop"
    else:
        answer = await provider.complete(request)
    assert orjson.loads(answer.content) == value
    assert (answer.finish_reason, answer.tool_calls) == ("stop", ())


async def test_a_json_schema_with_user_tools_keeps_both(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    tool = Tool("lookup", parameters={"type": "object", "properties": {"q": {"type": "string"}}})
    request = ChatRequest(
        MODEL, (user(TextPart("Paris?")),), tools=(tool,), response_format=JSON_SCHEMA
    )
    await provider.complete(request)
    body = sent(fake)
    assert [t["name"] for t in body["tools"]] == ["lookup"]
    assert "format" in body["output_config"]


async def test_a_strict_tool_gets_a_schema_in_the_structured_outputs_subset(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    tool = Tool("save_city", parameters=CITY, strict=True)
    await provider.complete(ChatRequest(MODEL, (user(TextPart("Paris?")),), tools=(tool,)))
    wire = sent(fake)["tools"][0]
    assert wire["strict"] is True
    assert wire["input_schema"]["additionalProperties"] is False
    assert wire["input_schema"]["properties"]["population"] == {
        "type": "integer",
        "description": "{minimum: 0}",
    }


async def test_a_strict_tool_goes_unstrict_to_a_model_without_structured_outputs(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    tool = Tool("save_city", parameters=CITY, strict=True)
    request = ChatRequest("claude-sonnet-4-0", (user(TextPart("Paris?")),), tools=(tool,))
    await provider.complete(request)
    assert sent(fake)["tools"] == [{"name": "save_city", "input_schema": CITY}]


@pytest.mark.parametrize(
    ("model", "form", "field"),
    [
        (MODEL, ResponseFormat(ResponseFormatType.JSON_OBJECT), "response_format.type"),
        ("claude-sonnet-4-20250514", JSON_SCHEMA, "response_format.type"),  # before 4.5
    ],
)
async def test_a_format_anthropic_cannot_honour_is_refused_before_sending(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    model: str,
    form: ResponseFormat,
    field: str,
) -> None:
    request = ChatRequest(model, (user(TextPart("Paris?")),), response_format=form)
    with pytest.raises(UpstreamBadRequestError, match=rf"^{field}: provider 'claude' cannot"):
        await provider.complete(request)
    assert fake.requests == []


async def test_a_seed_is_refused_before_sending(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    request = ChatRequest(MODEL, (user(TextPart("Hi")),), sampling=Sampling(seed=7))
    with pytest.raises(UpstreamBadRequestError, match=r"^seed: provider 'claude' cannot"):
        await collect(provider, request)
    assert fake.requests == []


# -- capabilities by model ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "reasons", "schemas"),
    [
        ("claude-opus-4-7", True, True),
        ("claude-sonnet-4-5-20250929", True, True),
        ("claude-haiku-4-5", True, True),
        ("claude-opus-4-1-20250805", True, False),
        ("claude-sonnet-4-20250514", True, False),
        ("claude-sonnet-4-0", True, False),
        ("claude-3-7-sonnet-latest", True, False),
        ("claude-3-5-haiku-20241022", False, False),
        ("my-local-model", False, False),
    ],
)
def test_capabilities_follow_the_claude_version(model: str, reasons: bool, schemas: bool) -> None:
    efforts = frozenset(REASONING_EFFORTS) if reasons else frozenset()
    assert capabilities_of(model) == Capabilities(
        tools=True,
        tool_choices=frozenset(ToolChoiceMode),
        parallel_tool_calls_off=True,
        images=True,
        image_urls=True,
        tool_result_images=True,
        json_object=False,
        json_schema=schemas,
        reasoning_efforts=efforts,
        seed=False,
    )


def test_the_gateway_check_names_the_field_and_the_provider(provider: AnthropicProvider) -> None:
    request = ChatRequest(
        "claude-3-5-haiku-20241022", (user(TextPart("Hi")),), reasoning_effort="low"
    )
    problem = check_capabilities(request, provider.capabilities(request.model), provider.name)
    assert problem == "reasoning_effort: provider 'claude' cannot honour 'low'"
