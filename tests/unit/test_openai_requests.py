"""OpenAI Chat Completions bodies as our requests: each field honoured or refused, never ignored."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidArgumentError
from gateway.pipeline.types import CachePolicy, Priority, Routing
from gateway.transports.openai_errors import UnsupportedParamError
from gateway.transports.openai_reasoning import encode_parts, split_id
from gateway.transports.openai_requests import chat_call
from providers.types import (
    ImagePart,
    ReasoningPart,
    ResponseFormatType,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)

HELLO = [{"role": "user", "content": "Hi"}]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": HELLO, **fields}


def test_sampling_fields_are_taken_as_asked() -> None:
    call = chat_call(body(temperature=0.5, top_p=0.9, max_completion_tokens=40, stop="END", seed=3))
    sampling = call.request.chat.sampling
    assert (sampling.temperature, sampling.top_p, sampling.max_tokens) == (0.5, 0.9, 40)
    assert (sampling.stop, sampling.seed) == (("END",), 3)


def test_max_tokens_and_max_completion_tokens_must_agree() -> None:
    assert chat_call(body(max_tokens=9)).request.chat.sampling.max_tokens == 9
    with pytest.raises(InvalidArgumentError, match=r"^max_completion_tokens: "):
        chat_call(body(max_tokens=9, max_completion_tokens=10))


@pytest.mark.parametrize(
    ("field", "value"),
    [("frequency_penalty", 0.5), ("logit_bias", {"1": 2}), ("logprobs", True), ("store", True)],
)
def test_a_field_without_equivalent_is_refused_unless_it_asks_nothing(
    field: str, value: object
) -> None:
    inert = {"frequency_penalty": 0, "logit_bias": None, "logprobs": False, "store": False}
    assert chat_call(body(**{field: inert[field]})).dropped == ()
    with pytest.raises(UnsupportedParamError) as caught:
        chat_call(body(**{field: value}))
    assert caught.value.param == field


def test_dropping_names_what_was_dropped() -> None:
    call = chat_call(body(presence_penalty=1, logit_bias={"5": 1}), drop_unsupported=True)
    assert call.dropped == ("presence_penalty", "logit_bias")


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^frobnicate: unrecognized"):
        chat_call(body(frobnicate=1))


def test_user_and_metadata_become_labels() -> None:
    call = chat_call(body(user="u-1", metadata={"tenant": "acme"}))
    assert call.request.metadata == {"tenant": "acme", "user": "u-1"}


def test_the_gateway_extras_are_read_from_the_body() -> None:
    call = chat_call(
        body(
            fallback_models=["b"],
            provider="openai",
            priority="high",
            timeout="2.5s",
            cache={"no_cache": True, "ttl": 60},
        )
    )
    request = call.request
    assert request.routing == Routing("openai", ("b",))
    assert request.priority == Priority.HIGH
    assert request.timeout == 2.5
    assert request.cache == CachePolicy(lookup=False, store=True, ttl=60.0)


def test_stream_options_need_a_stream() -> None:
    assert chat_call(body(stream=True, stream_options={"include_usage": True})).include_usage
    with pytest.raises(InvalidArgumentError, match=r"^stream_options: "):
        chat_call(body(stream_options={"include_usage": True}))


def test_n_is_bounded() -> None:
    assert chat_call(body(n=3)).n == 3
    with pytest.raises(InvalidArgumentError, match=r"^n: "):
        chat_call(body(n=0))


def test_messages_in_every_form() -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}]},
    ]
    converted = chat_call(body(messages=messages)).request.chat.messages
    assert [m.role for m in converted] == ["developer", "user", "assistant", "tool"]
    assert converted[1].parts == (
        TextPart("What is this?"),
        ImagePart(url="https://x/cat.png", detail="low"),
    )
    assert converted[2].tool_calls == (ToolCall("c1", "f", "{}"),)
    assert (converted[3].tool_call_id, converted[3].text) == ("c1", "ok")


def test_a_participant_name_is_refused() -> None:
    with pytest.raises(UnsupportedParamError) as caught:
        chat_call(body(messages=[{"role": "user", "content": "Hi", "name": "bob"}]))
    assert caught.value.param == "messages[0].name"


def test_tools_choice_and_format() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    schema = {"name": "S", "schema": {"type": "object"}, "strict": True}
    chat = chat_call(
        body(
            tools=[tool],
            tool_choice="required",
            parallel_tool_calls=False,
            response_format={"type": "json_schema", "json_schema": schema},
            reasoning_effort="low",
        )
    ).request.chat
    assert [t.name for t in chat.tools] == ["f"]
    assert chat.tool_choice == ToolChoice(ToolChoiceMode.REQUIRED)
    assert chat.parallel_tool_calls is False
    assert chat.response_format is not None
    assert (chat.response_format.type, chat.response_format.name) == (
        ResponseFormatType.JSON_SCHEMA,
        "S",
    )
    assert chat.reasoning_effort == "low"


def test_reasoning_carried_in_ids_comes_back_as_the_turns_reasoning() -> None:
    parts = (ReasoningPart("thinking", "sig"), ReasoningPart(redacted="opaque"))
    carried = "toolu_1" + encode_parts(parts)
    messages = [
        *HELLO,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": carried, "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": carried, "content": "ok"},
    ]
    turn, result = chat_call(body(messages=messages)).request.chat.messages[1:]
    assert turn.tool_calls[0].id == "toolu_1"
    assert turn.reasoning == parts
    assert result.tool_call_id == "toolu_1"


def test_a_damaged_carried_id_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="damaged"):
        split_id("toolu_1~gw1~not-base64!", "messages[1].tool_calls[0].id")
