"""The Cohere adapter's images, JSON answers, reasoning and seed against the loopback fake, and
the golden bodies: the exact JSON Cohere receives for fixed rich requests."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest

from providers.base import check_capabilities
from providers.cohere import SPEC, CohereProvider
from providers.errors import UpstreamBadRequestError
from providers.types import (
    ChatRequest,
    Finish,
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
    ToolChoice,
    ToolChoiceMode,
)
from tests.contract.harness import Vendor, collect, finish, folded
from tests.fakes.cohere_server import Answer, FakeCohere, Fault

KEY = "co-test-0123456789abcdefSECRET"
VENDOR = Vendor(FakeCohere, SPEC, name="cohere-main", keys=(KEY,))
VISION = "command-a-vision-07-2025"
REASONING = "command-a-reasoning-08-2025"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1.0}},
    "required": ["city", "days"],
}


def request(*messages: Message, model: str = "command-a-03-2025", **fields: object) -> ChatRequest:
    return ChatRequest(model, messages or (Message.of_text("user", "Hi"),), **fields)  # type: ignore[arg-type]


# -- images --------------------------------------------------------------------------------------


async def test_images_go_as_image_url_parts_data_urls_bytes_and_web_urls_in_order(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    parts = (
        TextPart("What is in these?"),
        ImagePart(url=PNG_URL, detail="low"),
        ImagePart(data=PNG, media_type="image/png"),
        ImagePart(url="https://example.com/cat.jpg", detail="high"),
    )
    await provider.complete(request(Message("user", parts), model=VISION))
    assert fake.rejections == []
    assert fake.requests[0].body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": PNG_URL}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"},
                },
            ],
        }
    ]


@pytest.mark.parametrize(
    ("model", "images"),
    [(VISION, True), ("aya-vision-32b", True), ("command-a-03-2025", False)],
)
def test_images_and_image_urls_are_declared_on_vision_models_only(
    provider: CohereProvider, model: str, images: bool
) -> None:
    caps = provider.capabilities(model)
    assert (caps.images, caps.image_urls, caps.tool_result_images) == (images, images, False)


def test_an_image_for_a_text_model_or_in_a_tool_result_is_refused_before_sending(
    provider: CohereProvider,
) -> None:
    image = Message("user", (ImagePart(url=PNG_URL),))
    refused = check_capabilities(request(image), provider.capabilities("command-a-03-2025"), "c")
    assert refused == "messages[0].parts[0].image: provider 'c' cannot take images"
    called = Message("assistant", tool_calls=(ToolCall("c1", "look"),))
    result = Message("tool", (ImagePart(url=PNG_URL),), tool_call_id="c1")
    tools = (Tool("look"),)
    in_result = request(image, called, result, model=VISION, tools=tools)
    assert check_capabilities(in_result, provider.capabilities(VISION), "c") == (
        "tools: provider 'c' cannot call tools"
    )


async def test_an_image_in_a_turn_cohere_takes_only_text_in_is_refused_not_dropped(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    called = Message("assistant", tool_calls=(ToolCall("c1", "look"),))
    result = Message("tool", (ImagePart(url=PNG_URL),), tool_call_id="c1")
    chat = request(Message.of_text("user", "Look"), called, result, tools=(Tool("look"),))
    with pytest.raises(UpstreamBadRequestError, match=r"^messages\[2\]: provider 'cohere-main'"):
        await provider.complete(chat)
    assert fake.requests == []


async def test_a_model_without_vision_gets_cohere_400(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.vision = False
    with pytest.raises(UpstreamBadRequestError, match="does not support image inputs"):
        await provider.complete(request(Message("user", (ImagePart(url=PNG_URL),))))


# -- JSON answers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "wire"),
    [
        (ResponseFormat(ResponseFormatType.JSON_OBJECT), {"type": "json_object"}),
        (
            ResponseFormat(ResponseFormatType.JSON_SCHEMA, "trip", SCHEMA, strict=True),
            {"type": "json_object", "json_schema": {**SCHEMA, "properties": {
                "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}}}},
        ),
        (ResponseFormat(ResponseFormatType.TEXT), None),
    ],
    ids=["json-object", "json-schema", "text"],
)  # fmt: skip
async def test_json_answers_go_as_response_format_and_come_back_as_content(
    provider: CohereProvider, fake: FakeCohere, form: ResponseFormat, wire: object
) -> None:
    fake.script(Answer.json({"city": "Oslo", "days": 3}))
    answer = await provider.complete(request(response_format=form))
    sent: Any = fake.requests[0].body.get("response_format")
    assert sent == wire
    if wire is not None:
        schema = sent.get("json_schema")
        assert schema is None or type(schema["properties"]["days"]["minimum"]) is int
    assert orjson.loads(answer.content) == {"city": "Oslo", "days": 3}
    assert (answer.finish_reason, answer.tool_calls) == ("stop", ())


async def test_a_streamed_json_answer_is_text_finishing_stop(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.script(Answer.json({"ok": True}))
    form = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "ok", {"type": "object"})
    events = await collect(provider, request(response_format=form))
    assert orjson.loads(folded(events).content) == {"ok": True}
    assert finish(events).reason == "stop"


async def test_a_json_answer_with_tools_is_refused_naming_the_field_before_sending(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    form = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    chat = request(response_format=form, tools=(Tool("look"),))
    with pytest.raises(UpstreamBadRequestError, match=r"^response_format: provider 'cohere-main'"):
        await provider.complete(chat)
    assert fake.requests == []


# -- reasoning -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effort", "thinking"),
    [("none", {"type": "disabled"}),
     ("minimal", {"type": "enabled", "token_budget": 512}),
     ("low", {"type": "enabled", "token_budget": 2048}),
     ("medium", {"type": "enabled", "token_budget": 8192}),
     ("high", {"type": "enabled"}),
     (None, None)],
)  # fmt: skip
async def test_reasoning_effort_is_cohere_thinking(
    provider: CohereProvider, fake: FakeCohere, effort: str | None, thinking: object
) -> None:
    await provider.complete(request(model=REASONING, reasoning_effort=effort))
    assert fake.requests[0].body.get("thinking") == thinking


async def test_effort_none_sends_nothing_to_a_model_that_does_not_reason(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    await provider.complete(request(reasoning_effort="none"))
    assert "thinking" not in fake.requests[0].body


def test_reasoning_efforts_are_declared_on_reasoning_models_only(provider: CohereProvider) -> None:
    assert provider.capabilities(REASONING).reasoning_efforts == {
        "none", "minimal", "low", "medium", "high"
    }  # fmt: skip
    plain = request(reasoning_effort="low")
    assert check_capabilities(plain, provider.capabilities(plain.model), "c") == (
        "reasoning_effort: provider 'c' cannot honour 'low'"
    )


async def test_thinking_is_reasoning_never_content_unary_and_streamed(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    answer = Answer(reasoning="Think first.", text="Done.")
    fake.script(answer, answer)
    unary = await provider.complete(request(model=REASONING))
    assert (unary.content, unary.reasoning) == ("Done.", "Think first.")
    assert unary.reasoning_parts == (ReasoningPart("Think first."),)
    assert unary.usage.reasoning_tokens == 0  # Cohere reports no reasoning count
    events = await collect(provider, request(model=REASONING))
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Think first."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Done."
    streamed = folded(events)
    assert (streamed.reasoning_parts, streamed.content) == (unary.reasoning_parts, "Done.")
    assert isinstance(events[-1], Finish)


async def test_reasoning_is_sent_back_as_thinking_items_of_its_assistant_turn(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    thought = (ReasoningPart("Think first."),)
    said = Message("assistant", (TextPart("Done."),), reasoning=thought)
    called = Message("assistant", tool_calls=(ToolCall("c1", "look"),), reasoning=thought)
    result = Message("tool", (TextPart("seen"),), tool_call_id="c1")
    messages = (Message.of_text("user", "Hi"), said, Message.of_text("user", "Look"), called)
    await provider.complete(request(*messages, result, model=REASONING, tools=(Tool("look"),)))
    assert fake.rejections == []
    sent = fake.requests[0].body["messages"]
    thinking = {"type": "thinking", "thinking": "Think first."}
    assert sent[1] == {  # type: ignore[index]
        "role": "assistant",
        "content": [thinking, {"type": "text", "text": "Done."}],
    }
    assert sent[3]["content"] == [thinking]  # type: ignore[index]


# -- seed ----------------------------------------------------------------------------------------


async def test_seed_is_sent_and_declared(provider: CohereProvider, fake: FakeCohere) -> None:
    await provider.complete(request(sampling=Sampling(seed=42)))
    assert fake.requests[0].body["seed"] == 42
    assert provider.capabilities("command-r-08-2024").seed is True


# -- golden bodies -------------------------------------------------------------------------------

GOLDEN = Path(__file__).parent / "golden"

WEATHER = Tool(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string", "maxLength": 64.0}},
     "required": ["city"]},
    strict=True,
)  # fmt: skip
HISTORY = (
    Message.of_text("developer", "Be brief."),
    Message(
        "user",
        (
            TextPart("Weather where this was taken?"),
            ImagePart(data=PNG, media_type="image/png", detail="auto"),
        ),
    ),
    Message(
        "assistant",
        (TextPart("I will look it up."),),
        tool_calls=(
            ToolCall("get_weather_1", "get_weather", '{"city":"Oslo"}'),
            ToolCall("get_weather_2", "get_weather", '{"city":"Bergen"}'),
        ),
        reasoning=(ReasoningPart("Two cities."),),
    ),
    Message("tool", (TextPart("rain"),), tool_call_id="get_weather_1"),
    Message("tool", (TextPart("sun"),), tool_call_id="get_weather_2"),
)


def golden(body: object) -> bytes:
    """`body` as its golden file holds it: indented, keys in the order sent."""
    return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"


async def test_golden_tool_loop_body(provider: CohereProvider, fake: FakeCohere) -> None:
    """System, user text and image, an assistant turn with thinking, plan and two calls, their
    results, a strict tool, a required choice, reasoning, seed: byte for byte."""
    chat = ChatRequest(
        REASONING,
        HISTORY,
        Sampling(temperature=0.2, max_tokens=512, seed=7),
        tools=(WEATHER,),
        tool_choice=ToolChoice(ToolChoiceMode.REQUIRED),
        reasoning_effort="low",
    )
    await collect(provider, chat)
    assert fake.rejections == []
    assert golden(fake.requests[0].body) == (GOLDEN / "cohere_tool_loop.json").read_bytes()


async def test_golden_json_schema_body(provider: CohereProvider, fake: FakeCohere) -> None:
    """Cohere takes no JSON answer with tools, so the structured-output golden has none."""
    form = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "trip", SCHEMA, strict=True)
    chat = ChatRequest(
        REASONING, HISTORY[:2], Sampling(seed=7), response_format=form, reasoning_effort="none"
    )
    fake.script(Answer.json({"city": "Oslo", "days": 2}))
    await provider.complete(chat)
    assert fake.rejections == []
    assert golden(fake.requests[0].body) == (GOLDEN / "cohere_json_schema.json").read_bytes()


async def test_a_failed_json_generation_is_still_unavailable(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    body = {"id": "r", "finish_reason": "ERROR", "message": {"role": "assistant"}}
    fake.fail_next(Fault(raw_body=orjson.dumps(body)))
    form = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    with pytest.raises(Exception, match="finish_reason ERROR"):
        await provider.complete(request(response_format=form))
