"""The Anthropic adapter's extended thinking against the loopback fake: `reasoning_effort` on
the wire, thinking out (unary and streamed, never in the content), and thinking blocks sent back
so a tool loop with thinking on keeps working."""

from __future__ import annotations

from typing import Any

import pytest

from providers.anthropic import SPEC, AnthropicProvider
from providers.anthropic_request import THINKING_BUDGETS
from providers.errors import UpstreamBadRequestError
from providers.types import (
    ChatRequest,
    Completion,
    Message,
    ReasoningDelta,
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
from tests.contract.harness import Vendor, collect, finish, folded, sent
from tests.fakes.anthropic_server import Answer, FakeAnthropic, FakeUsage
from tests.fakes.script import ToolCall as Call

KEY = "sk-ant-test-0123456789abcdefSECRET"
MODEL = "claude-sonnet-4-5"
VENDOR = Vendor(FakeAnthropic, SPEC, name="claude", keys=(KEY,))


ASK = Message.of_text("user", "Weather in Paris?")
WEATHER = Tool(
    "get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}}
)


def think(
    *messages: Message, effort: str = "medium", model: str = MODEL, **fields: Any
) -> ChatRequest:
    return ChatRequest(
        model, messages or (ASK,), tools=(WEATHER,), reasoning_effort=effort, **fields
    )


async def answer(provider: AnthropicProvider, request: ChatRequest, streamed: bool) -> Completion:
    if streamed:
        events = await collect(provider, request)
        finish(events)
        return folded(events)
    return await provider.complete(request)


# -- on the wire ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effort", "budget"), [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 16384)]
)
async def test_effort_is_a_thinking_budget_on_top_of_the_answers_max_tokens(
    provider: AnthropicProvider, fake: FakeAnthropic, effort: str, budget: int
) -> None:
    await provider.complete(think(effort=effort, sampling=Sampling(max_tokens=500)))
    body = sent(fake)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == 500 + budget  # Anthropic counts thinking in max_tokens


async def test_effort_none_turns_thinking_off(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    await provider.complete(think(effort="none"))
    body = sent(fake)
    assert (body["thinking"], body["max_tokens"]) == ({"type": "disabled"}, 4096)


@pytest.mark.parametrize(
    ("model", "effort", "wire_effort"),
    [
        ("claude-sonnet-4-6", "high", "high"),
        ("claude-opus-4-6", "medium", "medium"),
        ("claude-opus-4-7", "minimal", "low"),
    ],
)
async def test_from_claude_4_6_effort_is_adaptive_thinking_with_an_effort(
    provider: AnthropicProvider, fake: FakeAnthropic, model: str, effort: str, wire_effort: str
) -> None:
    await provider.complete(think(effort=effort, model=model))
    body = sent(fake)
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["output_config"] == {"effort": wire_effort}
    assert body["max_tokens"] == 4096 + THINKING_BUDGETS[effort]


async def test_from_claude_4_7_effort_none_leaves_thinking_out(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    await provider.complete(think(effort="none", model="claude-opus-4-7"))
    assert "thinking" not in sent(fake)  # 4.7 refuses "disabled"; thinking is off unasked


async def test_adaptive_thinking_and_a_json_schema_share_output_config(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    schema = {"type": "object", "properties": {"c": {"type": "number"}}}
    form = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "t", schema)
    await provider.complete(think(model="claude-opus-4-7", response_format=form))
    assert sent(fake)["output_config"] == {
        "format": {"type": "json_schema", "schema": {**schema, "additionalProperties": False}},
        "effort": "medium",
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"tool_choice": ToolChoice(ToolChoiceMode.REQUIRED)}, "tool_choice"),
        ({"tool_choice": ToolChoice(ToolChoiceMode.TOOL, "get_weather")}, "tool_choice"),
        ({"sampling": Sampling(temperature=0.3)}, "temperature"),
        ({"sampling": Sampling(top_p=0.5)}, "top_p"),
    ],
)
async def test_what_thinking_cannot_go_with_is_refused_before_sending(
    provider: AnthropicProvider, fake: FakeAnthropic, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(UpstreamBadRequestError, match=rf"^{field}: provider 'claude' .* reasoning"):
        await provider.complete(think(**fields))
    assert fake.requests == []


# -- thinking out -----------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_thinking_is_reasoning_with_its_signature_never_content(
    provider: AnthropicProvider, fake: FakeAnthropic, streamed: bool
) -> None:
    fake.usage = FakeUsage(30, 90, cached_tokens=0, reasoning_tokens=70)
    fake.script(Answer(reasoning="The user wants Paris.", redacted="c2VjcmV0", text="Sunny."))
    got = await answer(provider, think(), streamed)
    assert (got.content, got.reasoning, got.finish_reason) == (
        "Sunny.",
        "The user wants Paris.",
        "stop",
    )
    signature = got.reasoning_parts[0].signature
    assert fake.minter.signed(signature, "The user wants Paris.")
    assert got.reasoning_parts == (
        ReasoningPart("The user wants Paris.", signature),
        ReasoningPart(redacted="c2VjcmV0"),
    )
    assert (got.usage.completion_tokens, got.usage.reasoning_tokens) == (90, 70)


async def test_streamed_thinking_comes_as_reasoning_deltas_then_its_signature(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.script(Answer(reasoning="Paris is in France.", text="Sunny."))
    events = await collect(provider, think())
    reasoning = [e for e in events if isinstance(e, ReasoningDelta)]
    assert "".join(e.text for e in reasoning) == "Paris is in France."
    assert [bool(e.signature) for e in reasoning] == [False] * (len(reasoning) - 1) + [True]


# -- the tool loop ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", [MODEL, "claude-opus-4-7"])
@pytest.mark.parametrize("streamed", [False, True])
async def test_a_tool_loop_with_thinking_on_works_on_its_second_turn(
    provider: AnthropicProvider, fake: FakeAnthropic, streamed: bool, model: str
) -> None:
    # A peer gateway dropped the thinking blocks, and Anthropic refused the second turn.
    fake.script(
        Answer(
            reasoning="I should call the tool.", tool_calls=[Call("get_weather", {"city": "Paris"})]
        ),
        Answer(reasoning="It said 18C.", text="18C in Paris."),
    )
    first = await answer(provider, think(model=model), streamed)
    assert first.finish_reason == "tool_calls"
    call = first.tool_calls[0]
    history = (
        ASK,
        Message("assistant", tool_calls=first.tool_calls, reasoning=first.reasoning_parts),
        Message("tool", (TextPart("18C"),), tool_call_id=call.id),
    )
    second = await answer(provider, think(*history, model=model), streamed)
    assert (second.content, fake.rejections) == ("18C in Paris.", [])
    wire = sent(fake, 1)["messages"][1]["content"]
    assert wire[0] == {
        "type": "thinking",
        "thinking": "I should call the tool.",
        "signature": first.reasoning_parts[0].signature,
    }
    assert wire[1]["type"] == "tool_use"


async def test_a_tool_loop_with_thinking_on_and_the_thinking_dropped_is_refused_before_sending(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    history = (
        ASK,
        Message(
            "assistant", tool_calls=(ToolCall("toolu_01A", "get_weather", '{"city":"Paris"}'),)
        ),
        Message("tool", (TextPart("18C"),), tool_call_id="toolu_01A"),
    )
    with pytest.raises(UpstreamBadRequestError, match=r"^messages\[1\]\.reasoning: provider"):
        await provider.complete(think(*history))
    assert fake.requests == []


async def test_reasoning_another_vendor_issued_is_not_sent_to_anthropic(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    # Unsigned text, and Gemini's signature tied to a call, are state Anthropic cannot take.
    parts = (ReasoningPart("thoughts"), ReasoningPart("", "Z2VtaW5p", tool_call_id="c1"))
    history = (ASK, Message("assistant", (TextPart("Hi"),), reasoning=parts), ASK)
    await provider.complete(ChatRequest(MODEL, history))
    assert sent(fake)["messages"][1] == {"role": "assistant", "content": "Hi"}
