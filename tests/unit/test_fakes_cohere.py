"""The Cohere fake: the messages and events it sends, the 400s it gives, its embeddings."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.base import Answer, ToolCall
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.embeddings import vector
from tests.fakes.probe import at, call

CHAT = "/v2/chat"
EMBED = "/v2/embed"
USER = {"role": "user", "content": "Weather in Paris and Rome?"}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
BASE: dict[str, Any] = {"model": "command-a-03-2025", "messages": [USER], "tools": [WEATHER]}


@pytest.fixture
async def fake() -> AsyncIterator[FakeCohere]:
    async with FakeCohere() as server:
        yield server


def planned_calls() -> Answer:
    return Answer(
        reasoning="Two lookups.",
        text="I will look up both.",
        tool_calls=[
            ToolCall("get_weather", {"city": "Paris"}),
            ToolCall("get_weather", {"city": "Rome"}),
        ],
    )


async def test_calls_come_with_the_text_as_tool_plan_and_finish_tool_call(
    fake: FakeCohere,
) -> None:
    fake.script(planned_calls())
    reply = (await call(fake, CHAT, BASE)).json
    message = at(reply, "message")
    assert message["content"] == [{"type": "thinking", "thinking": "Two lookups."}]
    assert message["tool_plan"] == "I will look up both."
    assert [c["function"] for c in message["tool_calls"]] == [
        {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"name": "get_weather", "arguments": '{"city":"Rome"}'},
    ]
    ids = [c["id"] for c in message["tool_calls"]]
    assert all(i.startswith("get_weather_") and len(i) == len("get_weather_") + 12 for i in ids)
    assert ids[0] != ids[1]
    assert at(reply, "finish_reason") == "TOOL_CALL"


async def test_a_stream_sends_plan_deltas_then_each_call_start_deltas_and_end(
    fake: FakeCohere,
) -> None:
    fake.script(planned_calls())
    events = (await call(fake, CHAT, {**BASE, "stream": True})).frames()
    names = [e for e, _d in events]
    assert names[:2] == ["message-start", "content-start"]
    assert at(events[1][1], "delta", "message", "content") == {"type": "thinking", "thinking": ""}
    thinking = [
        at(d, "delta", "message", "content", "thinking") for e, d in events if e == "content-delta"
    ]
    assert "".join(thinking) == "Two lookups."
    assert names.index("content-end") < names.index("tool-plan-delta")
    plan = "".join(
        at(d, "delta", "message", "tool_plan") for e, d in events if e == "tool-plan-delta"
    )
    assert plan == "I will look up both."
    starts = [
        (d["index"], at(d, "delta", "message", "tool_calls"))
        for e, d in events
        if e == "tool-call-start"
    ]
    assert [(i, c["function"]) for i, c in starts] == [
        (0, {"name": "get_weather", "arguments": ""}),
        (1, {"name": "get_weather", "arguments": ""}),
    ]
    arguments = [
        "".join(
            at(d, "delta", "message", "tool_calls", "function", "arguments")
            for e, d in events
            if e == "tool-call-delta" and d["index"] == index
        )
        for index in (0, 1)
    ]
    assert arguments == ['{"city":"Paris"}', '{"city":"Rome"}']
    assert names.count("tool-call-end") == 2
    assert at(events[-1][1], "delta", "finish_reason") == "TOOL_CALL"


async def test_a_tool_loop_with_matching_ids_and_an_image_is_accepted(fake: FakeCohere) -> None:
    fake.script(planned_calls())
    message = at((await call(fake, CHAT, BASE)).json, "message")
    results = [
        {"role": "tool", "tool_call_id": c["id"], "content": [{"type": "text", "text": "sunny"}]}
        for c in message["tool_calls"]
    ]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    user = {"role": "user", "content": [{"type": "text", "text": "And this?"}, image]}
    assistant = {"role": "assistant", **{k: message[k] for k in ("tool_plan", "tool_calls")}}
    body = {**BASE, "messages": [USER, assistant, *results, user]}
    assert (await call(fake, CHAT, body)).status == 200


REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "a named tool choice": (
        {"tool_choice": "get_weather"},
        "invalid request: tool_choice must be one of REQUIRED, NONE - received get_weather",
    ),
    "lower-case required": (
        {"tool_choice": "required"},
        "invalid request: tool_choice must be one of REQUIRED, NONE - received required",
    ),
    "tool choice without tools": (
        {"tools": None, "tool_choice": "REQUIRED"},
        "invalid request: tool_choice can only be specified together with tools",
    ),
    "a JSON format together with tools": (
        {"response_format": {"type": "json_object"}},
        "invalid request: response_format is not supported with tools.",
    ),
    "an OpenAI JSON-schema format": (
        {"tools": None, "response_format": {"type": "json_schema", "json_schema": {}}},
        "invalid request: response_format.type must be one of text, json_object - received "
        "json_schema",
    ),
    "a result for no call": (
        {"messages": [USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}]},
        "invalid request: messages[1].tool_call_id nope does not match any tool call of the "
        "preceding assistant message",
    ),
    "arguments as an object": (
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "a", "type": "function", "function": {"name": "f", "arguments": {}}}
                    ],
                },
            ]
        },
        "invalid request: messages[1].tool_calls[0].function.arguments must be a string",
    ),
    "an image that is not an image": (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}
                    ],
                }
            ]
        },
        "invalid request: messages[0].content[0].image_url.url must be a web URL or a base64 data "
        "URI of an image/jpeg, image/png, image/webp or image/gif image",
    ),
    "a seed that is not an integer": (
        {"seed": 1.5},
        "invalid request: seed must be an integer",
    ),
    "strict tools as text": (
        {"strict_tools": "true"},
        "invalid request: strict_tools must be a boolean",
    ),
    "thinking switched on the OpenAI way": (
        {"thinking": {"type": "high"}},
        "invalid request: thinking.type must be one of enabled, disabled - received high",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_body_cohere_refuses_gets_its_400(fake: FakeCohere, case: str) -> None:
    changes, message = REFUSALS[case]
    body = {key: value for key, value in {**BASE, **changes}.items() if value is not None}
    reply = await call(fake, CHAT, body)
    assert (reply.status, at(reply.json, "message")) == (400, message)
    assert set(reply.json) == {"id", "message"}


async def test_a_field_v2_chat_does_not_define_gets_cohere_422(fake: FakeCohere) -> None:
    reply = await call(fake, CHAT, {**BASE, "parallel_tool_calls": False})
    assert (reply.status, at(reply.json, "message")) == (
        422,
        "unknown field: parameter 'parallel_tool_calls' is not a valid field. For proper usage, "
        "please refer to https://docs.cohere.com/reference/chat",
    )


# -- embed --------------------------------------------------------------------------------------

EMBED_BASE: dict[str, Any] = {
    "model": "embed-v4.0",
    "input_type": "search_document",
    "embedding_types": ["float", "base64"],
}


async def test_embeddings_come_by_type_in_input_order(fake: FakeCohere) -> None:
    reply = (
        await call(fake, EMBED, {**EMBED_BASE, "texts": ["a b", "c"], "output_dimension": 256})
    ).json
    assert at(reply, "embeddings", "float") == [vector("a b", 256), vector("c", 256)]
    raw = base64.b64decode(at(reply, "embeddings", "base64", 1))
    assert list(struct.unpack("<256f", raw)) == vector("c", 256)
    assert (at(reply, "texts"), at(reply, "response_type")) == (["a b", "c"], "embeddings_by_type")
    assert at(reply, "meta", "billed_units") == {"input_tokens": 3}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"texts": ["x"] * 97},
            "invalid request: total number of texts must be at most 96 - received 97",
        ),
        (
            {"texts": ["x"], "input_type": None},
            "invalid request: valid input_type must be provided with the provided model",
        ),
        (
            {"texts": ["x"], "embedding_types": None},
            "invalid request: embedding_types is required for embed models v3 and higher",
        ),
        (
            {"texts": ["x"], "model": "embed-english-v3.0", "output_dimension": 256},
            "invalid request: output_dimension is not supported for model 'embed-english-v3.0'",
        ),
    ],
)
async def test_embed_bodies_cohere_refuses_get_its_400(
    fake: FakeCohere, changes: dict[str, Any], message: str
) -> None:
    body = {key: value for key, value in {**EMBED_BASE, **changes}.items() if value is not None}
    reply = await call(fake, EMBED, body)
    assert (reply.status, at(reply.json, "message")) == (400, message)
