"""The Ollama fake: the messages and lines it sends, the 400s it gives, its embeddings."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.base import Answer, ToolCall
from tests.fakes.embeddings import vector
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.probe import at, call

CHAT = "/api/chat"
EMBED = "/api/embed"
USER = {"role": "user", "content": "Weather in Paris and Rome?"}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
BASE: dict[str, Any] = {"model": "llama3.2", "messages": [USER], "tools": [WEATHER]}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as server:
        yield server


def thinking_calls() -> Answer:
    return Answer(
        reasoning="Two cities.",
        tool_calls=[
            ToolCall("get_weather", {"city": "Paris"}),
            ToolCall("get_weather", {"city": "Rome"}, with_id=False),
        ],
    )


async def test_a_reply_carries_thinking_and_whole_calls_with_object_arguments(
    fake: FakeOllama,
) -> None:
    fake.script(thinking_calls())
    reply = (await call(fake, CHAT, {**BASE, "stream": False, "think": True})).json
    message = at(reply, "message")
    assert message["thinking"] == "Two cities."
    first, second = message["tool_calls"]
    assert first["id"].startswith("call_")
    assert len(first["id"]) == len("call_") + 8
    assert first["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
    assert second == {
        "function": {"index": 1, "name": "get_weather", "arguments": {"city": "Rome"}}
    }
    assert (at(reply, "done"), at(reply, "done_reason")) == (True, "stop")


async def test_a_stream_has_thinking_lines_then_one_line_per_call_then_done(
    fake: FakeOllama,
) -> None:
    fake.script(thinking_calls())
    lines = [d for _e, d in (await call(fake, CHAT, BASE)).frames()]
    assert "".join(at(x, "message").get("thinking", "") for x in lines) == "Two cities."
    calls = [at(x, "message", "tool_calls") for x in lines if "tool_calls" in at(x, "message")]
    assert [[c["function"]["index"] for c in group] for group in calls] == [[0], [1]]
    assert [x["done"] for x in lines] == [False] * (len(lines) - 1) + [True]
    assert (lines[-1]["done_reason"], lines[-1]["eval_count"]) == ("stop", 5)


async def test_a_call_cut_by_the_token_limit_never_arrives_and_the_reason_is_length(
    fake: FakeOllama,
) -> None:
    fake.script(Answer(tool_calls=[ToolCall("get_weather", '{"city": "Par')], finish="length"))
    reply = (await call(fake, CHAT, {**BASE, "stream": False})).json
    assert "tool_calls" not in at(reply, "message")
    assert at(reply, "done_reason") == "length"


async def test_a_tool_loop_with_tool_name_images_and_a_schema_format_is_accepted(
    fake: FakeOllama,
) -> None:
    assistant = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    }
    result = {"role": "tool", "tool_name": "get_weather", "content": "sunny"}
    user = {"role": "user", "content": "And this?", "images": [PNG]}
    body = {
        **BASE,
        "messages": [USER, assistant, result, user],
        "format": {"type": "object"},
        "think": "high",
    }
    assert (await call(fake, CHAT, body)).status == 200


REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "a data URL as an image": (
        {"messages": [{**USER, "images": [f"data:image/png;base64,{PNG}"]}]},
        "illegal base64 data at input byte 4",
    ),
    "content as parts": (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        "json: cannot unmarshal array into Go struct field Alias.content of type string",
    ),
    "arguments as JSON text": (
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                },
            ]
        },
        "json: cannot unmarshal string into Go struct field ToolCallFunction.tool_calls.function"
        ".arguments of type map[string]interface {}",
    ),
    "a think level it does not know": (
        {"think": "minimal"},
        'invalid think value: "minimal" (must be "high", "medium", "low", "max", true, or false)',
    ),
    "a format it does not know": (
        {"format": "xml"},
        'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object',
    ),
    "no model": ({"model": None}, "model is required"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_body_ollama_refuses_gets_its_400(fake: FakeOllama, case: str) -> None:
    changes, message = REFUSALS[case]
    body = {key: value for key, value in {**BASE, **changes}.items() if value is not None}
    reply = await call(fake, CHAT, body)
    assert (reply.status, reply.json) == (400, {"error": message})


@pytest.mark.parametrize(
    ("lacks", "changes", "message"),
    [
        ("tools", {}, "registry.ollama.ai/library/llama3.2:latest does not support tools"),
        (
            "vision",
            {"tools": None, "messages": [{**USER, "images": [PNG]}]},
            "registry.ollama.ai/library/llama3.2:latest does not support vision",
        ),
        ("thinking", {"think": True}, '"llama3.2" does not support thinking'),
    ],
)
async def test_a_model_without_a_capability_refuses_what_needs_it(
    fake: FakeOllama, lacks: str, changes: dict[str, Any], message: str
) -> None:
    fake.lacks = {lacks}
    body = {key: value for key, value in {**BASE, **changes}.items() if value is not None}
    reply = await call(fake, CHAT, body)
    assert (reply.status, reply.json) == (400, {"error": message})


async def test_embed_returns_one_vector_per_input_in_order(fake: FakeOllama) -> None:
    reply = (
        await call(
            fake, EMBED, {"model": "nomic-embed-text", "input": ["a", "b c"], "dimensions": 4}
        )
    ).json
    assert at(reply, "embeddings") == [vector("a", 4), vector("b c", 4)]
    assert (at(reply, "model"), at(reply, "prompt_eval_count")) == ("nomic-embed-text", 3)


async def test_embed_refuses_inputs_that_are_not_text(fake: FakeOllama) -> None:
    reply = await call(fake, EMBED, {"model": "nomic-embed-text", "input": [[1, 2]]})
    assert (reply.status, reply.json) == (400, {"error": "invalid input type"})
