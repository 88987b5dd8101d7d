"""The OpenAI and Azure OpenAI fakes: the bodies and frames they send, the 400s they give."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.fakes.azure_openai_server import FakeAzureOpenAI
from tests.fakes.base import Answer, FakeUsage, ToolCall
from tests.fakes.embeddings import vector
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.probe import at, call

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
USER = {"role": "user", "content": "What is the weather in Paris and Rome?"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
BASE: dict[str, object] = {"model": "gpt-4o-mini", "messages": [USER], "tools": [WEATHER]}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16)).decode()


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def two_calls() -> Answer:
    return Answer(
        text="Checking.",
        tool_calls=[
            ToolCall("get_weather", {"city": "Paris"}),
            ToolCall("get_weather", {"city": "Rome"}),
            ToolCall("get_time"),
        ],
    )


# -- what it says -------------------------------------------------------------------------------


async def test_tool_calls_are_a_message_with_json_text_arguments_and_distinct_ids(
    fake: FakeOpenAI,
) -> None:
    fake.script(Answer(tool_calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("f")]))
    reply = (await call(fake, CHAT, BASE)).json
    message = at(reply, "choices", 0, "message")
    calls = at(message, "tool_calls")
    assert at(message, "content") is None
    assert at(reply, "choices", 0, "finish_reason") == "tool_calls"
    assert [at(c, "function") for c in calls] == [
        {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"name": "f", "arguments": "{}"},
    ]
    ids = [at(c, "id") for c in calls]
    assert all(isinstance(i, str) and i.startswith("call_") and len(i) == 29 for i in ids)
    assert ids[0] != ids[1]


async def test_a_stream_sends_each_call_opening_once_then_its_argument_fragments(
    fake: FakeOpenAI,
) -> None:
    fake.script(two_calls())
    body = {**BASE, "stream": True, "stream_options": {"include_usage": True}}
    frames = [data for _event, data in (await call(fake, CHAT, body)).frames()]
    assert frames[-1] == {"[DONE]": True}
    assert at(frames[-2], "choices") == []
    assert at(frames[-2], "usage", "total_tokens") == 17
    deltas = [at(f, "choices", 0, "delta") for f in frames[:-2]]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    assert "".join(str(d.get("content", "")) for d in deltas) == "Checking."
    tool_deltas = [t for d in deltas for t in d.get("tool_calls", [])]
    openings = [t for t in tool_deltas if "id" in t]
    assert [(t["index"], t["function"]) for t in openings] == [
        (0, {"name": "get_weather", "arguments": ""}),
        (1, {"name": "get_weather", "arguments": ""}),
        (2, {"name": "get_time", "arguments": ""}),
    ]
    assert all(set(t) == {"index", "function"} for t in tool_deltas if "id" not in t)
    joined = [
        "".join(t["function"]["arguments"] for t in tool_deltas if t["index"] == i)
        for i in range(3)
    ]
    assert joined == ['{"city":"Paris"}', '{"city":"Rome"}', "{}"]
    assert at(frames[-3], "choices", 0, "finish_reason") == "tool_calls"


async def test_a_stream_without_include_usage_has_no_empty_choices_chunk(fake: FakeOpenAI) -> None:
    frames = (await call(fake, CHAT, {**BASE, "stream": True})).frames()
    assert all(at(data, "choices") != [] for _e, data in frames[:-1])


async def test_a_call_cut_by_the_token_limit_ends_with_length_and_partial_arguments(
    fake: FakeOpenAI,
) -> None:
    fake.script(Answer(tool_calls=[ToolCall("get_weather", '{"city": "Par')], finish="length"))
    reply = (await call(fake, CHAT, BASE)).json
    assert at(reply, "choices", 0, "finish_reason") == "length"
    assert at(reply, "choices", 0, "message", "tool_calls", 0, "function", "arguments") == (
        '{"city": "Par'
    )


async def test_reasoning_tokens_are_reported_in_the_usage_details(fake: FakeOpenAI) -> None:
    fake.script(Answer(text="42", usage=FakeUsage(10, 30, 0, reasoning_tokens=24)))
    reply = (await call(fake, CHAT, {**BASE, "model": "o3", "reasoning_effort": "high"})).json
    assert at(reply, "usage", "completion_tokens_details", "reasoning_tokens") == 24


async def test_n_gives_that_many_choices(fake: FakeOpenAI) -> None:
    reply = (await call(fake, CHAT, {**BASE, "n": 2})).json
    assert [at(c, "index") for c in at(reply, "choices")] == [0, 1]


async def test_a_whole_tool_loop_in_openai_shapes_is_accepted(fake: FakeOpenAI) -> None:
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"},
            },
        ],
    }
    results = [
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "rain"}]},
    ]
    image = {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
    }
    user = {"role": "user", "content": [{"type": "text", "text": "And this?"}, image]}
    body = {**BASE, "messages": [USER, assistant, *results, user], "parallel_tool_calls": True}
    assert (await call(fake, CHAT, body)).status == 200


# -- what it refuses ----------------------------------------------------------------------------


def error_of(reply_json: dict[str, object]) -> tuple[object, object, object]:
    error = at(reply_json, "error")
    assert at(error, "type") == "invalid_request_error"
    return at(error, "message"), at(error, "param"), at(error, "code")


ASSISTANT_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    ],
}
REFUSALS: dict[str, tuple[dict[str, object], tuple[object, object, object]]] = {
    "tool result without a call": (
        {"messages": [USER, {"role": "tool", "tool_call_id": "call_x", "content": "sunny"}]},
        (
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
            "message with 'tool_calls'.",
            "messages.[1].role",
            None,
        ),
    ),
    "call left unanswered": (
        {"messages": [USER, ASSISTANT_CALL, USER]},
        (
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            "call_a",
            "messages.[1].role",
            None,
        ),
    ),
    "arguments as an object": (
        {
            "messages": [
                USER,
                {
                    **ASSISTANT_CALL,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "f", "arguments": {}},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_a", "content": "x"},
            ]
        },
        (
            "Invalid type for 'messages[1].tool_calls[0].function.arguments': expected a string, "
            "but got an object instead.",
            "messages[1].tool_calls[0].function.arguments",
            "invalid_type",
        ),
    ),
    "image in a tool result": (
        {
            "messages": [
                USER,
                ASSISTANT_CALL,
                {
                    "role": "tool",
                    "tool_call_id": "call_a",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                },
            ]
        },
        (
            "Invalid 'messages[2]'. Image URLs are only allowed for messages with role 'user', "
            "but this message with role 'tool' contains an image URL.",
            "messages[2]",
            "invalid_value",
        ),
    ),
    "data URL that is not an image": (
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
        (
            "Invalid 'messages[0].content[0].image_url.url'. Expected a base64-encoded data URL "
            "with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got "
            "unsupported MIME type 'text/plain'.",
            "messages[0].content[0].image_url.url",
            "invalid_value",
        ),
    ),
    "json_schema without a name": (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
        (
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema.name",
            "missing_required_parameter",
        ),
    ),
    "strict schema left open": (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "w",
                    "strict": True,
                    "schema": {"type": "object", "properties": {}},
                },
            }
        },
        (
            "Invalid schema for response_format 'w': In context=(), 'additionalProperties' is "
            "required to be supplied and to be false.",
            "response_format",
            "invalid_json_schema",
        ),
    ),
    "integer keyword as a float": (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": {"type": "array", "minItems": 1.0}},
            }
        },
        (
            "Invalid schema for response_format 'w': In context=(), 1.0 is not of type "
            "'integer' for 'minItems'.",
            "response_format",
            "invalid_json_schema",
        ),
    ),
    "json_object without the word": (
        {
            "messages": [{"role": "user", "content": "Hi"}],
            "response_format": {"type": "json_object"},
        },
        (
            "'messages' must contain the word 'json' in some form, to use 'response_format' of "
            "type 'json_object'.",
            "messages",
            None,
        ),
    ),
    "tool parameters not an object": (
        {
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}
            ]
        },
        (
            "Invalid schema for function 'f': schema must be a JSON Schema of 'type: \"object\"', "
            "got 'type: \"string\"'.",
            "tools[0].function.parameters",
            "invalid_function_parameters",
        ),
    ),
    "tool_choice without tools": (
        {"tools": None, "tool_choice": "required"},
        (
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            "tool_choice",
            None,
        ),
    ),
    "n of zero": (
        {"n": 0},
        (
            "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.",
            "n",
            "integer_below_min_value",
        ),
    ),
    "stream_options without stream": (
        {"stream_options": {"include_usage": True}},
        (
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            None,
        ),
    ),
    "max_tokens on a reasoning model": (
        {"model": "o3-mini", "max_tokens": 10},
        (
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        ),
    ),
    "reasoning_effort on gpt-4o": (
        {"reasoning_effort": "low"},
        (
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            "reasoning_effort",
            "unsupported_parameter",
        ),
    ),
    "an unknown field": (
        {"thinking": {"type": "enabled"}},
        ("Unrecognized request argument supplied: thinking", None, None),
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_body_openai_refuses_gets_its_400(fake: FakeOpenAI, case: str) -> None:
    changes, expected = REFUSALS[case]
    body = {key: value for key, value in {**BASE, **changes}.items() if value is not None}
    reply = await call(fake, CHAT, body)
    assert (reply.status, error_of(reply.json)) == (400, expected)
    assert fake.requests == []


async def test_a_model_without_vision_refuses_images(fake: FakeOpenAI) -> None:
    fake.vision = False
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    body = {**BASE, "messages": [{"role": "user", "content": [image]}]}
    reply = await call(fake, CHAT, body)
    assert (
        error_of(reply.json)[0]
        == "Invalid content type. image_url is only supported by certain models."
    )


# -- embeddings ---------------------------------------------------------------------------------


async def test_embeddings_come_in_input_order_as_the_deterministic_vectors(
    fake: FakeOpenAI,
) -> None:
    reply = (
        await call(
            fake, EMBED, {"model": "text-embedding-3-small", "input": ["a b", "c"], "dimensions": 8}
        )
    ).json
    assert at(reply, "object") == "list"
    assert [at(d, "index") for d in at(reply, "data")] == [0, 1]
    assert at(reply, "data", 0, "embedding") == vector("a b", 8)
    assert at(reply, "data", 1, "embedding") == vector("c", 8)
    assert at(reply, "usage") == {"prompt_tokens": 3, "total_tokens": 3}


async def test_base64_embeddings_decode_to_the_same_floats(fake: FakeOpenAI) -> None:
    body = {"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"}
    encoded = at((await call(fake, EMBED, body)).json, "data", 0, "embedding")
    assert isinstance(encoded, str)
    raw = base64.b64decode(encoded)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vector("hello", 16)


async def test_token_array_inputs_are_embedded(fake: FakeOpenAI) -> None:
    body = {"model": "text-embedding-3-small", "input": [[1, 2], [3]]}
    assert len(at((await call(fake, EMBED, body)).json, "data")) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"model": "text-embedding-3-small", "input": ""},
            "'$.input' is invalid. Please check the API reference: "
            "https://platform.openai.com/docs/api-reference.",
        ),
        (
            {"model": "text-embedding-3-small", "input": ["x"] * 2049},
            "Invalid 'input': array too long. Expected an array with maximum length 2048, but got "
            "an array with length 2049 instead.",
        ),
        (
            {"model": "text-embedding-ada-002", "input": "x", "dimensions": 8},
            "This model does not support specifying dimensions.",
        ),
        (
            {"model": "text-embedding-3-small", "input": "x", "encoding_format": "int8"},
            "Invalid value: 'int8'. Supported values are: 'float' and 'base64'.",
        ),
    ],
)
async def test_embedding_bodies_openai_refuses_get_its_400(
    fake: FakeOpenAI, body: dict[str, object], message: str
) -> None:
    reply = await call(fake, EMBED, body)
    assert (reply.status, error_of(reply.json)[0]) == (400, message)


# -- Azure --------------------------------------------------------------------------------------


async def test_azure_serves_embeddings_at_the_deployment_url_and_names_the_deployment() -> None:
    async with FakeAzureOpenAI() as azure:
        path = "/openai/deployments/embed-prod/embeddings"
        body = {"input": ["x"], "dimensions": 4}
        missing = await call(azure, path, body)
        reply = await call(azure, path, body, query={"api-version": "2024-10-21"})
    assert (missing.status, missing.json) == (
        404,
        {"error": {"code": "404", "message": "Resource not found"}},
    )
    assert at(reply.json, "model") == "embed-prod"
    assert at(reply.json, "data", 0, "embedding") == vector("x", 4)


async def test_azure_chat_renders_scripted_tool_calls_like_openai() -> None:
    async with FakeAzureOpenAI() as azure:
        azure.script(Answer(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]))
        path = "/openai/deployments/gpt4o/chat/completions"
        reply = await call(azure, path, BASE, query={"api-version": "2024-10-21"})
    args = at(reply.json, "choices", 0, "message", "tool_calls", 0, "function", "arguments")
    assert orjson.loads(str(args)) == {"city": "Oslo"}
    assert at(reply.json, "prompt_filter_results", 0, "prompt_index") == 0


@pytest.mark.parametrize("model", ["o3-mini", "o4-mini", "o1"])
async def test_the_o_series_refuse_parallel_tool_calls(fake: FakeOpenAI, model: str) -> None:
    reply = await call(fake, CHAT, {**BASE, "model": model, "parallel_tool_calls": True})
    assert reply.status == 400
    assert at(reply.json, "error", "code") == "unsupported_parameter"
    assert at(reply.json, "error", "param") == "parallel_tool_calls"


async def test_gpt_models_take_parallel_tool_calls(fake: FakeOpenAI) -> None:
    reply = await call(fake, CHAT, {**BASE, "model": "gpt-5", "parallel_tool_calls": False})
    assert reply.status == 200


async def test_a_compatible_server_sends_reasoning_in_its_field(fake: FakeOpenAI) -> None:
    fake.reasoning_field = "reasoning_content"
    fake.script(
        Answer(reasoning="Think first.", text="Done."), Answer(reasoning="Hmm ok", text="Yes.")
    )
    whole = (await call(fake, CHAT, BASE)).json
    assert at(whole, "choices", 0, "message", "reasoning_content") == "Think first."
    body = {**BASE, "stream": True}
    frames = [data for _event, data in (await call(fake, CHAT, body)).frames()]
    deltas = [at(f, "choices", 0, "delta") for f in frames[1:-2]]
    assert deltas == [
        {"reasoning_content": "Hmm "},
        {"reasoning_content": "ok"},
        {"content": "Yes."},
    ]
