"""The Gemini fake: the parts and chunks it sends, the 400s it gives, its embeddings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.base import Answer, ToolCall
from tests.fakes.embeddings import vector
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.probe import at, call

GEMINI_3 = "/v1beta/models/gemini-3-pro-preview:generateContent"
STREAM_3 = "/v1beta/models/gemini-3-pro-preview:streamGenerateContent"
FLASH = "/v1beta/models/gemini-2.0-flash:generateContent"
USER = {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]}
WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
BASE: dict[str, Any] = {"contents": [USER], "tools": [{"functionDeclarations": [WEATHER]}]}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as server:
        yield server


def parallel() -> Answer:
    return Answer(
        reasoning="Both cities.",
        tool_calls=[
            ToolCall("get_weather", {"city": "Paris"}),
            ToolCall("get_weather", {"city": "Rome"}),
        ],
    )


# -- what it says -------------------------------------------------------------------------------


async def test_calls_are_whole_function_call_parts_and_only_the_first_is_signed(
    fake: FakeGemini,
) -> None:
    fake.script(parallel())
    reply = (await call(fake, GEMINI_3, BASE)).json
    parts = at(reply, "candidates", 0, "content", "parts")
    assert parts[0] == {"text": "Both cities.", "thought": True}
    calls = parts[1:]
    assert [c["functionCall"]["args"] for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert [c["functionCall"]["name"] for c in calls] == ["get_weather", "get_weather"]
    assert calls[0]["functionCall"]["id"] != calls[1]["functionCall"]["id"]
    assert "thoughtSignature" in calls[0]
    assert "thoughtSignature" not in calls[1]
    assert at(reply, "candidates", 0, "finishReason") == "STOP"


async def test_calls_may_come_without_ids_and_unsigned_on_a_model_that_does_not_think(
    fake: FakeGemini,
) -> None:
    fake.script(Answer(tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, with_id=False)]))
    parts = at((await call(fake, FLASH, BASE)).json, "candidates", 0, "content", "parts")
    assert parts == [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]


async def test_a_stream_sends_each_call_whole_in_its_own_chunk_then_the_finish(
    fake: FakeGemini,
) -> None:
    fake.script(Answer(text="Looking.", tool_calls=parallel().tool_calls))
    chunks = [d for _e, d in (await call(fake, STREAM_3, BASE, query={"alt": "sse"})).frames()]
    parts = [at(c, "candidates", 0).get("content", {}).get("parts", []) for c in chunks]
    assert parts[0] == [{"text": "Looking."}]
    assert [p[0]["functionCall"]["args"] for p in parts[1:3]] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert "thoughtSignature" in parts[1][0]
    assert [at(c, "candidates", 0).get("finishReason") for c in chunks] == [
        None,
        None,
        None,
        "STOP",
    ]


async def test_calls_per_chunk_puts_several_calls_in_one_chunk(fake: FakeGemini) -> None:
    fake.calls_per_chunk = 2
    fake.script(parallel())
    chunks = [d for _e, d in (await call(fake, STREAM_3, BASE, query={"alt": "sse"})).frames()]
    assert len(at(chunks[1], "candidates", 0, "content", "parts")) == 2


async def test_a_call_cut_by_the_token_limit_never_arrives(fake: FakeGemini) -> None:
    fake.script(Answer(tool_calls=[ToolCall("get_weather", '{"city": "Par')], finish="length"))
    candidate = at((await call(fake, FLASH, BASE)).json, "candidates", 0)
    assert candidate == {"index": 0, "finishReason": "MAX_TOKENS"}


async def test_a_gemini_3_tool_loop_echoing_its_signature_is_accepted(fake: FakeGemini) -> None:
    fake.script(parallel())
    model_turn = at((await call(fake, GEMINI_3, BASE)).json, "candidates", 0, "content")
    responses = [
        {"functionResponse": {"name": "get_weather", "response": {"result": r}}}
        for r in ("sunny", "rain")
    ]
    body = {**BASE, "contents": [USER, model_turn, {"role": "user", "parts": responses}]}
    reply = await call(fake, GEMINI_3, body)
    assert reply.status == 200, reply.json


async def test_a_signature_echoed_in_url_safe_base64_is_the_same_signature(
    fake: FakeGemini,
) -> None:
    # google-genai holds thoughtSignature as bytes and writes it back URL-safe.
    fake.script(parallel(), parallel())
    await call(fake, GEMINI_3, BASE)  # a first answer, so the second signature is not the first
    model_turn = at((await call(fake, GEMINI_3, BASE)).json, "candidates", 0, "content")
    signature = model_turn["parts"][1]["thoughtSignature"]
    assert set(signature) & set("+/")  # else this test would prove nothing
    model_turn["parts"][1]["thoughtSignature"] = signature.replace("+", "-").replace("/", "_")
    responses = [response(), response()]
    body = {**BASE, "contents": [USER, model_turn, {"role": "user", "parts": responses}]}
    reply = await call(fake, GEMINI_3, body)
    assert reply.status == 200, reply.json


# -- what it refuses ----------------------------------------------------------------------------

CALL_TURN: dict[str, Any] = {
    "role": "model",
    "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
    ],
}


def answered(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"contents": [USER, CALL_TURN, {"role": "user", "parts": list(parts)}]}


def response(name: str = "get_weather", result: object = None) -> dict[str, Any]:
    value = {"result": "sunny"} if result is None else result
    return {"functionResponse": {"name": name, "response": value}}


REFUSALS: dict[str, tuple[str, dict[str, Any], str]] = {
    "a response without a name": (
        FLASH,
        answered(response(), {"functionResponse": {"response": {"result": "x"}}}),
        "* GenerateContentRequest.contents[2].parts[1].function_response.name: Name cannot be "
        "empty.\n",
    ),
    "fewer responses than calls": (
        FLASH,
        answered(response()),
        "Please ensure that the number of function response parts is equal to the number of "
        "function call parts of the function call turn.",
    ),
    "a call after a model turn": (
        FLASH,
        {"contents": [USER, {"role": "model", "parts": [{"text": "Hm."}]}, CALL_TURN]},
        "Please ensure that function call turn comes immediately after a user turn or after a "
        "function response turn.",
    ),
    "a response naming no call": (
        FLASH,
        answered(response(), response("get_time")),
        "* GenerateContentRequest.contents[2].parts[1].function_response.name: Function response "
        "name 'get_time' does not match any function call of the function call turn.\n",
    ),
    "a text result not wrapped in an object": (
        FLASH,
        answered(response(), response(result="sunny")),
        "Invalid value at 'contents[2].parts[1].function_response.response' "
        "(type.googleapis.com/google.protobuf.Struct), 'sunny'",
    ),
    "gemini 3 without the signature": (
        GEMINI_3,
        answered(response(), response()),
        "Function call is missing a thought_signature in functionCall parts. This is required "
        "for tools to work correctly, and missing thought_signature may lead to degraded model "
        "performance. Additional data, function call `default_api:get_weather` , position 2. "
        "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more "
        "details.",
    ),
    "a role it does not know": (
        FLASH,
        {"contents": [{"role": "function", "parts": [{"text": "x"}]}]},
        "Please use a valid role: user, model.",
    ),
    "an empty text part": (
        FLASH,
        {"contents": [{"role": "user", "parts": [{"text": ""}]}]},
        "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' must "
        "have one initialized field",
    ),
    "an OpenAI field": (
        FLASH,
        {"contents": [USER], "response_format": {"type": "json_object"}},
        'Invalid JSON payload received. Unknown name "response_format": Cannot find field.',
    ),
    "additionalProperties in parameters": (
        FLASH,
        {
            "contents": [USER],
            "tools": [
                {
                    "functionDeclarations": [
                        {**WEATHER, "parameters": {"type": "object", "additionalProperties": False}}
                    ]
                }
            ],
        },
        'Invalid JSON payload received. Unknown name "additionalProperties" at '
        "'tools[0].function_declarations[0].parameters': Cannot find field.",
    ),
    "a URL as inline data": (
        FLASH,
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"inlineData": {"mimeType": "image/png", "data": "https://x.test/a.png"}}
                    ],
                }
            ]
        },
        "Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES), Base64 decoding "
        'failed for "https://x.test/a.png"',
    ),
    "a web URL as file data": (
        FLASH,
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a.png"}}
                    ],
                }
            ]
        },
        "Unsupported file uri: https://x.test/a.png",
    ),
    "a JSON schema without its MIME type": (
        FLASH,
        {"contents": [USER], "generationConfig": {"responseJsonSchema": {"type": "object"}}},
        "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must "
        "be application/json or text/x.enum when a response schema is set.\n",
    ),
    "thinking budget and level together": (
        GEMINI_3,
        {
            "contents": [USER],
            "generationConfig": {
                "thinkingConfig": {"thinkingBudget": 1024, "thinkingLevel": "low"}
            },
        },
        "You can only set one of thinking budget and thinking level. Please remove one of them.",
    ),
    "tools with a JSON answer before Gemini 3": (
        FLASH,
        {**BASE, "generationConfig": {"responseMimeType": "application/json"}},
        "Tool use with a response mime type: 'application/json' is unsupported",
    ),
    "allowed names with mode AUTO": (
        FLASH,
        {
            **BASE,
            "toolConfig": {
                "functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["get_weather"]}
            },
        },
        "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
        "allowed_function_names can only be set when mode is ANY or VALIDATED.\n",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_body_gemini_refuses_gets_its_400(fake: FakeGemini, case: str) -> None:
    path, body, message = REFUSALS[case]
    reply = await call(fake, path, body)
    assert reply.status == 400
    assert reply.json == {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


async def test_gemini_3_refuses_a_signature_it_never_issued_but_takes_the_documented_dummy(
    fake: FakeGemini,
) -> None:
    def signed(signature: str) -> dict[str, Any]:
        first = {**CALL_TURN["parts"][0], "thoughtSignature": signature}
        turn = {"role": "model", "parts": [first, CALL_TURN["parts"][1]]}
        return {"contents": [USER, turn, {"role": "user", "parts": [response(), response()]}]}

    forged = await call(fake, GEMINI_3, signed("Zm9yZ2Vk"))
    dummy = await call(fake, GEMINI_3, signed("skip_thought_signature_validator"))
    assert at(forged.json, "error", "message") == (
        "Corrupted thought signature in function call `default_api:get_weather`."
    )
    assert dummy.status == 200


async def test_file_data_may_name_any_url_when_the_model_fetches_them(fake: FakeGemini) -> None:
    fake.fetches_urls = True
    part = {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a.png"}}
    reply = await call(fake, FLASH, {"contents": [{"role": "user", "parts": [part]}]})
    assert reply.status == 200


# -- embeddings ---------------------------------------------------------------------------------

EMBED_MODEL = "/v1beta/models/gemini-embedding-001"


def embed_request(text: str, **extra: object) -> dict[str, Any]:
    content = {"parts": [{"text": text}]}
    return {"model": "models/gemini-embedding-001", "content": content, **extra}


async def test_a_batch_embeds_each_request_in_order(fake: FakeGemini) -> None:
    body = {"requests": [embed_request("a"), embed_request("b", outputDimensionality=8)]}
    reply = (await call(fake, f"{EMBED_MODEL}:batchEmbedContents", body)).json
    assert reply == {"embeddings": [{"values": vector("a", 16)}, {"values": vector("b", 8)}]}


async def test_embed_content_embeds_one(fake: FakeGemini) -> None:
    body = {"content": {"parts": [{"text": "a"}]}, "taskType": "RETRIEVAL_QUERY"}
    reply = (await call(fake, f"{EMBED_MODEL}:embedContent", body)).json
    assert reply == {"embedding": {"values": vector("a", 16)}}


async def test_a_batch_over_100_requests_is_refused(fake: FakeGemini) -> None:
    body = {"requests": [embed_request(str(i)) for i in range(101)]}
    reply = await call(fake, f"{EMBED_MODEL}:batchEmbedContents", body)
    assert (reply.status, at(reply.json, "error", "message")) == (
        400,
        "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
    )
