"""Cache keys: the whole request is in the key, in a canonical form; the per-call I/O is not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cache.keys import cache_key
from providers.types import (
    CallIO,
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

HELLO = Message.of_text("user", "hello")


def key(*messages: Message, sampling: Sampling | None = None, io: CallIO | None = None) -> str:
    request = ChatRequest("gpt-4o", messages or (HELLO,), sampling or Sampling(0.0), io or CallIO())
    return cache_key("acme", "openai", request)


def test_the_same_request_has_the_same_key_whatever_its_timeout_and_headers() -> None:
    assert key() == key(io=CallIO(timeout=3.5, headers=(("x-request-id", "r-1"),)))


def test_top_p_of_one_is_the_same_as_no_top_p() -> None:
    assert key(sampling=Sampling(0.0, top_p=1.0)) == key(sampling=Sampling(0.0))
    assert key(sampling=Sampling(0.0, top_p=0.5)) != key(sampling=Sampling(0.0))


def test_stop_sequences_are_a_set() -> None:
    assert key(sampling=Sampling(0.0, stop=("b", "a", "b"))) == key(
        sampling=Sampling(0.0, stop=("a", "b"))
    )


def test_every_sampling_setting_is_in_the_key() -> None:
    keys = {
        key(sampling=Sampling(0.0)),
        key(sampling=Sampling(0.5)),
        key(sampling=Sampling(0.0, max_tokens=8)),
        key(sampling=Sampling(0.0, top_p=0.9)),
        key(sampling=Sampling(0.0, stop=("END",))),
    }
    assert len(keys) == 5


def test_tenant_deployment_and_model_are_in_the_key() -> None:
    request = ChatRequest("gpt-4o", (HELLO,), Sampling(0.0))
    other_model = ChatRequest("gpt-4o-mini", (HELLO,), Sampling(0.0))
    keys = {
        cache_key("acme", "openai", request),
        cache_key("globex", "openai", request),
        cache_key("acme", "azure", request),
        cache_key("acme", "openai", other_model),
    }
    assert len(keys) == 4


@pytest.mark.parametrize(
    "other",
    [
        Message("user", (TextPart("hel"), TextPart("lo"))),
        Message("user", (TextPart("hello"), ImagePart(url="https://x.test/cat.png"))),
        Message("user", (TextPart("hello"), ImagePart(data=b"\x89PNG", media_type="image/png"))),
        Message("tool", (TextPart("hello"),), tool_call_id="call-1"),
        Message("assistant", (TextPart("hello"),), tool_calls=(ToolCall("c-1", "lookup"),)),
    ],
    ids=["split-text", "image-url", "image-bytes", "tool-result", "tool-call"],
)
def test_messages_that_say_the_same_text_differently_have_different_keys(other: Message) -> None:
    same_text = Message(other.role, (TextPart("hello"),))
    assert key(other) != key(same_text)


def test_images_of_different_bytes_have_different_keys() -> None:
    one = Message("user", (ImagePart(data=b"one", media_type="image/png"),))
    two = Message("user", (ImagePart(data=b"two", media_type="image/png"),))
    assert key(one) != key(two)


LOOKUP = Tool("lookup", "Look a word up", {"type": "object", "required": ["q"]})
AGENT = ChatRequest("gpt-4o", (HELLO,), Sampling(0.0), tools=(LOOKUP,))


@pytest.mark.parametrize(
    "changed",
    [
        replace(AGENT, tools=()),
        replace(AGENT, tools=(replace(LOOKUP, description="Find a word"),)),
        replace(AGENT, tools=(replace(LOOKUP, parameters={"type": "object"}),)),
        replace(AGENT, tools=(replace(LOOKUP, strict=True),)),
        replace(AGENT, tool_choice=ToolChoice(ToolChoiceMode.REQUIRED)),
        replace(AGENT, tool_choice=ToolChoice(ToolChoiceMode.TOOL, "lookup")),
        replace(AGENT, parallel_tool_calls=False),
        replace(AGENT, parallel_tool_calls=True),
        replace(AGENT, response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT)),
        replace(
            AGENT,
            response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, "a", {"type": "object"}),
        ),
        replace(AGENT, sampling=Sampling(0.0, seed=7)),
        replace(AGENT, reasoning_effort="low"),
        replace(AGENT, reasoning_effort="high"),
        replace(
            AGENT,
            messages=(HELLO, Message("assistant", reasoning=(ReasoningPart("hm", "sig"),))),
        ),
    ],
    ids=[
        "no-tools",
        "tool-description",
        "tool-schema",
        "tool-strict",
        "choice-required",
        "choice-named",
        "parallel-off",
        "parallel-on",
        "json-object",
        "json-schema",
        "seed",
        "effort-low",
        "effort-high",
        "reasoning-parts",
    ],
)
def test_what_an_agent_request_asks_is_in_the_key(changed: ChatRequest) -> None:
    assert cache_key("acme", "openai", changed) != cache_key("acme", "openai", AGENT)


def test_a_schema_in_another_key_order_has_the_same_key() -> None:
    one = replace(LOOKUP, parameters={"type": "object", "required": ["q"]})
    two = replace(LOOKUP, parameters={"required": ["q"], "type": "object"})
    assert cache_key("acme", "openai", replace(AGENT, tools=(one,))) == cache_key(
        "acme", "openai", replace(AGENT, tools=(two,))
    )


def test_image_bytes_are_hashed_not_written_into_the_key() -> None:
    big = Message("user", (ImagePart(data=b"x" * 1_000_000, media_type="image/png"),))
    same = Message("user", (ImagePart(data=b"x" * 1_000_000, media_type="image/png"),))
    assert key(big) == key(same)
    assert key(big) != key(Message("user", (ImagePart(url="https://x.test/x.png"),)))
