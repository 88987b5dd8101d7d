"""The Anthropic fake: the blocks and events it sends, the 400s it gives."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.base import Answer, ToolCall
from tests.fakes.probe import at, call

PATH = "/v1/messages"
USER = {"role": "user", "content": "Weather in Paris and Rome?"}
WEATHER = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
BASE: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 4096,
    "messages": [USER],
    "tools": [WEATHER],
}
THINKING = {"type": "enabled", "budget_tokens": 2048}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16)).decode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


def thinking_calls() -> Answer:
    return Answer(
        reasoning="I need both cities.",
        text="Checking.",
        tool_calls=[
            ToolCall("get_weather", {"city": "Paris"}),
            ToolCall("get_weather", {"city": "Rome"}),
            ToolCall("get_time"),
        ],
    )


# -- what it says -------------------------------------------------------------------------------


async def test_a_message_holds_thinking_text_and_tool_use_blocks_in_order(
    fake: FakeAnthropic,
) -> None:
    fake.script(thinking_calls())
    reply = (await call(fake, PATH, {**BASE, "thinking": THINKING})).json
    blocks = at(reply, "content")
    assert [b["type"] for b in blocks] == ["thinking", "text", "tool_use", "tool_use", "tool_use"]
    assert blocks[0]["thinking"] == "I need both cities."
    assert isinstance(blocks[0]["signature"], str)
    assert blocks[0]["signature"]
    assert [b["input"] for b in blocks[2:]] == [{"city": "Paris"}, {"city": "Rome"}, {}]
    ids = [b["id"] for b in blocks[2:]]
    assert all(i.startswith("toolu_01") and len(i) == 30 for i in ids)
    assert len(set(ids)) == 3
    assert at(reply, "stop_reason") == "tool_use"


async def test_a_stream_numbers_blocks_by_position_and_streams_arguments_as_json_deltas(
    fake: FakeAnthropic,
) -> None:
    fake.script(thinking_calls())
    events = (await call(fake, PATH, {**BASE, "thinking": THINKING, "stream": True})).frames()
    names = [event for event, _data in events]
    assert names[0] == "message_start"
    assert names[2] == "ping"
    assert names[-2:] == ["message_delta", "message_stop"]
    starts = [(d["index"], d["content_block"]) for e, d in events if e == "content_block_start"]
    assert [(i, b["type"]) for i, b in starts] == [
        (0, "thinking"),
        (1, "text"),
        (2, "tool_use"),
        (3, "tool_use"),
        (4, "tool_use"),
    ]
    assert starts[2][1]["input"] == {}
    deltas = [(d["index"], d["delta"]) for e, d in events if e == "content_block_delta"]
    thinking = "".join(x["thinking"] for i, x in deltas if x["type"] == "thinking_delta")
    signatures = [x for _i, x in deltas if x["type"] == "signature_delta"]
    assert (thinking, len(signatures)) == ("I need both cities.", 1)
    arguments = {
        index: "".join(x["partial_json"] for i, x in deltas if i == index) for index in (2, 3)
    }
    assert arguments == {2: '{"city":"Paris"}', 3: '{"city":"Rome"}'}
    assert not [x for i, x in deltas if i == 4]  # a call without arguments streams no delta
    assert at(events[-2][1], "delta", "stop_reason") == "tool_use"


async def test_a_call_cut_by_the_token_limit_stops_on_max_tokens_with_what_parsed(
    fake: FakeAnthropic,
) -> None:
    fake.script(Answer(tool_calls=[ToolCall("get_weather", '{"city": "Par')], finish="length"))
    reply = (await call(fake, PATH, BASE)).json
    assert at(reply, "stop_reason") == "max_tokens"
    assert at(reply, "content", 0, "input") == {"city": "Par"}


async def test_redacted_thinking_is_sent_as_opaque_data(fake: FakeAnthropic) -> None:
    fake.script(Answer(redacted="EmwKAhgBEgy3va3pzix/LafPsn4a", text="Done."))
    reply = (await call(fake, PATH, BASE)).json
    assert at(reply, "content", 0) == {
        "type": "redacted_thinking",
        "data": "EmwKAhgBEgy3va3pzix/LafPsn4a",
    }


async def test_a_tool_loop_with_thinking_echoed_verbatim_is_accepted(fake: FakeAnthropic) -> None:
    fake.script(thinking_calls())
    first = (await call(fake, PATH, {**BASE, "thinking": THINKING})).json
    blocks = at(first, "content")
    results = [
        {"type": "tool_result", "tool_use_id": b["id"], "content": "sunny"}
        for b in blocks
        if b["type"] == "tool_use"
    ]
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    results[0]["content"] = [{"type": "text", "text": "sunny"}, image]
    follow_up = [
        USER,
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": results},
    ]
    reply = await call(fake, PATH, {**BASE, "thinking": THINKING, "messages": follow_up})
    assert reply.status == 200, reply.json


# -- what it refuses ----------------------------------------------------------------------------

TOOL_USE = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "sunny"}
CALLED = {"role": "assistant", "content": [TOOL_USE]}
JPEG_SOURCE = {"type": "base64", "media_type": "image/jpeg", "data": PNG}
IMAGE = {"type": "image", "source": JPEG_SOURCE}

REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "call left unanswered": (
        {"messages": [USER, CALLED, {"role": "user", "content": "Well?"}]},
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_01A. Each `tool_use` block must have a corresponding `tool_result` block in the "
        "next message.",
    ),
    "text before the result": (
        {
            "messages": [
                USER,
                CALLED,
                {"role": "user", "content": [{"type": "text", "text": "here"}, RESULT]},
            ]
        },
        "messages.2: Did not find 1 `tool_result` block(s) at the beginning of this message. "
        "Messages following `tool_use` blocks must begin with a matching number of "
        "`tool_result` blocks.",
    ),
    "result for no call": (
        {"messages": [USER, {"role": "user", "content": [RESULT]}]},
        "messages.1.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01A. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous "
        "message.",
    ),
    "empty text block": (
        {
            "messages": [
                USER,
                {"role": "assistant", "content": [{"type": "text", "text": ""}, TOOL_USE]},
                {"role": "user", "content": [RESULT]},
            ]
        },
        "messages: text content blocks must be non-empty",
    ),
    "empty message": (
        {"messages": [{"role": "user", "content": ""}]},
        "messages.0: all messages must have non-empty content except for the optional final "
        "assistant message",
    ),
    "thinking on, final assistant without thinking": (
        {"thinking": THINKING, "messages": [USER, CALLED, {"role": "user", "content": [RESULT]}]},
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
        "`tool_use`. When `thinking` is enabled, a final `assistant` message must start with a "
        "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
        "recommend you include thinking blocks from previous turns. To avoid this requirement, "
        "disable `thinking`. Please consult our documentation at "
        "https://docs.claude.com/en/docs/build-with-claude/extended-thinking",
    ),
    "thinking block never issued": (
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "forged"},
                        TOOL_USE,
                    ],
                },
                {"role": "user", "content": [RESULT]},
            ]
        },
        "messages.1.content.0: Invalid `signature` in `thinking` block",
    ),
    "forced tool with thinking": (
        {"thinking": THINKING, "tool_choice": {"type": "any"}},
        "Thinking may not be enabled when tool_choice forces tool use.",
    ),
    "budget below the minimum": (
        {"thinking": {"type": "enabled", "budget_tokens": 512}},
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
    ),
    "budget not below max_tokens": (
        {"thinking": {"type": "enabled", "budget_tokens": 4096}},
        "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
        "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        "#max-tokens-and-context-window-size",
    ),
    "temperature with thinking": (
        {"thinking": THINKING, "temperature": 0.2},
        "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. Please "
        "consult our documentation at "
        "https://docs.claude.com/en/docs/build-with-claude/extended-thinking",
    ),
    "budget thinking on Claude 4.7": (
        {"model": "claude-opus-4-7", "thinking": THINKING},
        '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" '
        'and "output_config.effort" to control thinking behavior.',
    ),
    "adaptive thinking before Claude 4.6": (
        {"thinking": {"type": "adaptive"}},
        '"thinking.type.adaptive" is not supported for this model.',
    ),
    "max_tokens missing": ({"max_tokens": None}, "max_tokens: Field required"),
    "image that is not what it says": (
        {"messages": [{"role": "user", "content": [IMAGE, {"type": "text", "text": "This?"}]}]},
        "messages.0.content.0.image.source.base64: The image was specified using the image/jpeg "
        "media type, but the image appears to be a image/png image",
    ),
    "image type it does not take": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{**IMAGE, "source": {**JPEG_SOURCE, "media_type": "image/bmp"}}],
                }
            ]
        },
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', "
        "'image/png', 'image/gif' or 'image/webp'",
    ),
    "output schema with a minimum": (
        {
            "output_config": {
                "format": {
                    "type": "json_schema",
                    "schema": {
                        "type": "object",
                        "properties": {"n": {"type": "integer", "minimum": 1}},
                        "additionalProperties": False,
                    },
                }
            }
        },
        "output_config.format.schema: For 'integer' type, property 'minimum' is not supported",
    ),
    "output schema left open": (
        {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
        "output_config.format.schema: For 'object' type, 'additionalProperties' must be "
        "explicitly set to false",
    ),
    "the beta field without its header": (
        {"output_format": {"type": "json_schema", "schema": {"type": "object"}}},
        "output_format: Extra inputs are not permitted",
    ),
    "an OpenAI field": (
        {"response_format": {"type": "json_object"}},
        "response_format: Extra inputs are not permitted",
    ),
    "tool schema not an object": (
        {"tools": [{"name": "f", "input_schema": {"type": "string"}}]},
        "tools.0.custom.input_schema.type: Input should be 'object'",
    ),
    "named tool that does not exist": (
        {"tool_choice": {"type": "tool", "name": "nope"}},
        "tool_choice.tool.name: Tool 'nope' not found in tools.",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_body_anthropic_refuses_gets_its_400(fake: FakeAnthropic, case: str) -> None:
    changes, message = REFUSALS[case]
    body = {key: value for key, value in {**BASE, **changes}.items() if value is not None}
    reply = await call(fake, PATH, body)
    assert reply.status == 400
    assert reply.json == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
        "request_id": "req_fake0123456789",
    }


async def test_an_altered_thinking_text_fails_its_signature(fake: FakeAnthropic) -> None:
    fake.script(Answer(reasoning="Paris first.", tool_calls=[ToolCall("get_weather", {})]))
    blocks = at((await call(fake, PATH, {**BASE, "thinking": THINKING})).json, "content")
    altered = [{**blocks[0], "thinking": "Rome first."}, blocks[1]]
    result = {"type": "tool_result", "tool_use_id": blocks[1]["id"], "content": "sunny"}
    messages = [
        USER,
        {"role": "assistant", "content": altered},
        {"role": "user", "content": [result]},
    ]
    reply = await call(fake, PATH, {**BASE, "thinking": THINKING, "messages": messages})
    assert (
        at(reply.json, "error", "message")
        == "messages.1.content.0: Invalid `signature` in `thinking` block"
    )


async def test_the_beta_output_format_is_taken_with_its_header(fake: FakeAnthropic) -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    body = {**BASE, "output_format": {"type": "json_schema", "schema": schema}}
    headers = {"anthropic-beta": "structured-outputs-2025-11-13"}
    assert (await call(fake, PATH, body, headers=headers)).status == 200
    fake.script(Answer.json({"ok": True}))
    reply = await call(fake, PATH, {**BASE, "output_config": {"format": body["output_format"]}})
    assert orjson.loads(at(reply.json, "content", 0, "text")) == {"ok": True}
