"""The OpenAI adapter's images, structured output, reasoning and seed against a loopback fake,
and what it declares each model can do."""

from __future__ import annotations

import base64
from dataclasses import replace

import orjson
import pytest
from aiohttp import web

from providers.azure_openai import SPEC as AZURE_SPEC
from providers.base import check_capabilities
from providers.errors import UpstreamBadRequestError
from providers.http.client import UpstreamClient
from providers.openai import SPEC, OpenAIProvider
from providers.types import (
    ChatRequest,
    Finish,
    ImagePart,
    Message,
    ReasoningDelta,
    ResponseFormat,
    ResponseFormatType,
    Sampling,
    TextPart,
    ToolCall,
    Usage,
)
from tests.contract.harness import Vendor, chat, collect, folded
from tests.fakes.base import Answer, FakeUsage, Fault, StreamPlan, sse
from tests.fakes.openai_server import FakeOpenAI

KEY = "sk-test-0123456789abcdefSECRET"
VENDOR = Vendor(FakeOpenAI, SPEC, name="openai-main", keys=(KEY,))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(16)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
ASK = chat("gpt-4o-mini", ("user", "Answer in JSON: the weather in Paris?"))
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "sunny": {"type": "boolean"}},
    "required": ["city", "sunny"],
}


def user(*parts: TextPart | ImagePart) -> ChatRequest:
    return chat("gpt-4o-mini", Message("user", parts))


# -- images ------------------------------------------------------------------------------------


async def test_images_go_as_image_url_parts_in_order(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    request = user(
        TextPart("Compare"),
        ImagePart(data=PNG, media_type="image/png", detail="low"),
        TextPart("with"),
        ImagePart(url="https://example.com/cat.png"),
        ImagePart(url=PNG_URL, detail="high"),
    )
    await provider.complete(request)  # the fake checks data URLs and details
    assert fake.requests[0].body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
                {"type": "text", "text": "with"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "high"}},
            ],
        }
    ]


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_image_in_a_tool_result_is_refused_before_anything_is_sent(
    provider: OpenAIProvider, fake: FakeOpenAI, streamed: bool
) -> None:
    called = Message("assistant", tool_calls=(ToolCall("call_a", "snap", "{}"),))
    result = Message("tool", (ImagePart(url=PNG_URL),), tool_call_id="call_a")
    request = replace(ASK, messages=(*ASK.messages, called, result))
    with pytest.raises(UpstreamBadRequestError, match=r"^messages\[2\]\.parts\[0\]\.image: "):
        await (collect(provider, request) if streamed else provider.complete(request))
    assert fake.requests == []
    assert fake.rejections == []
    assert not provider.capabilities("gpt-4o").tool_result_images


# -- structured output -------------------------------------------------------------------------


async def test_json_object_goes_as_response_format_and_the_json_is_the_content(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.script(Answer.json({"city": "Paris", "sunny": True}))
    form = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    answer = await provider.complete(replace(ASK, response_format=form))
    assert fake.requests[0].body["response_format"] == {"type": "json_object"}
    assert orjson.loads(answer.content) == {"city": "Paris", "sunny": True}
    assert (answer.finish_reason, answer.tool_calls) == ("stop", ())


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_strict_json_schema_goes_closed_under_its_name(
    provider: OpenAIProvider, fake: FakeOpenAI, streamed: bool
) -> None:
    fake.script(Answer.json({"city": "Paris", "sunny": True}))
    form = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "weather", SCHEMA, strict=True)
    request = replace(ASK, response_format=form)
    if streamed:
        answer = folded(await collect(provider, request))
    else:
        answer = await provider.complete(request)
    assert fake.requests[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "weather",
            "schema": {**SCHEMA, "additionalProperties": False},
            "strict": True,
        },
    }
    assert orjson.loads(answer.content) == {"city": "Paris", "sunny": True}
    assert answer.finish_reason == "stop"


async def test_a_json_schema_without_a_name_gets_one(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    form = ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema=SCHEMA)
    await provider.complete(replace(ASK, response_format=form))
    assert fake.requests[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA},
    }


async def test_a_refusal_is_the_content_with_finish_content_filter(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    body = {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't."},
                "finish_reason": "stop",
            }
        ],
    }
    fake.fail_next(Fault(raw_body=orjson.dumps(body)))
    answer = await provider.complete(ASK)
    assert (answer.content, answer.finish_reason) == ("I can't.", "content_filter")


class FakeRefusingServer(FakeOpenAI):
    """OpenAI refusing a structured-output request in a stream: `delta.refusal` fragments."""

    def render_stream(
        self, request: web.Request, body: dict[str, object], answer: Answer
    ) -> StreamPlan:
        head = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}

        def frame(delta: dict[str, object], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return sse({**head, "choices": [choice]})

        frames = [
            frame({"role": "assistant", "content": None, "refusal": ""}),
            frame({"refusal": "I can't "}),
            frame({"refusal": "help."}),
            frame({}, "stop"),
            b"data: [DONE]\n\n",
        ]
        return StreamPlan(frames, first_content=1, content=2)


async def test_a_streamed_refusal_is_the_content_with_finish_content_filter(
    session: UpstreamClient,
) -> None:
    async with FakeRefusingServer() as fake:
        events = await collect(VENDOR.adapter(session, fake.base_url), ASK)
    answer = folded(events)
    assert (answer.content, answer.finish_reason) == ("I can't help.", "content_filter")


# -- reasoning and seed ------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_reasoning_model_gets_its_effort_and_a_completion_token_limit(
    provider: OpenAIProvider, fake: FakeOpenAI, streamed: bool
) -> None:
    fake.script(Answer(text="Sunny.", usage=FakeUsage(12, 40, 0, reasoning_tokens=32)))
    request = replace(
        chat("o4-mini", ("user", "Weather?"), max_tokens=500), reasoning_effort="high"
    )
    if streamed:
        answer = folded(await collect(provider, request))
    else:
        answer = await provider.complete(request)
    body = fake.requests[0].body
    assert (body["reasoning_effort"], body["max_completion_tokens"]) == ("high", 500)
    assert "max_tokens" not in body  # the fake refuses it for reasoning models
    assert answer.usage == Usage(12, 40, 52, 0, reasoning_tokens=32)
    assert (answer.content, answer.reasoning) == ("Sunny.", "")


async def test_effort_none_to_a_model_that_does_not_reason_sends_nothing(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    request = replace(chat("gpt-4o", ("user", "Hi"), max_tokens=9), reasoning_effort="none")
    await provider.complete(request)  # the fake refuses reasoning_effort for gpt-4 models
    body = fake.requests[0].body
    assert "reasoning_effort" not in body
    assert body["max_tokens"] == 9


async def test_effort_none_to_gpt_5_1_is_sent(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    await provider.complete(replace(chat("gpt-5.1", ("user", "Hi")), reasoning_effort="none"))
    assert fake.requests[0].body["reasoning_effort"] == "none"


@pytest.mark.parametrize("streamed", [False, True])
async def test_reasoning_text_of_a_compatible_server_is_reasoning_never_content(
    provider: OpenAIProvider, fake: FakeOpenAI, streamed: bool
) -> None:
    fake.reasoning_field = "reasoning_content"
    fake.script(Answer(reasoning="Paris is in France.", text="Sunny."))
    request = chat("deepseek-reasoner", ("user", "Weather?"))
    if streamed:
        events = await collect(provider, request)
        assert [e.text for e in events if isinstance(e, ReasoningDelta)] == [
            "Paris ",
            "is ",
            "in ",
            "France.",
        ]
        answer = folded(events)
    else:
        answer = await provider.complete(request)
    assert (answer.reasoning, answer.content) == ("Paris is in France.", "Sunny.")


async def test_the_seed_is_sent(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    await provider.complete(replace(ASK, sampling=Sampling(seed=42)))
    assert fake.requests[0].body["seed"] == 42


async def test_a_stream_reports_reasoning_tokens_last(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.script(Answer(text="Hi.", usage=FakeUsage(10, 30, 2, reasoning_tokens=25)))
    events = await collect(provider, chat("gpt-5-mini", ("user", "Hi")))
    assert events[-1] == Finish("stop", Usage(10, 30, 40, 2, reasoning_tokens=25))


# -- capabilities per model --------------------------------------------------------------------


EFFORT_CASES = [
    ("gpt-4o", frozenset()),
    ("gpt-4.1-mini", frozenset()),
    ("gpt-5-chat-latest", frozenset()),
    ("o3", frozenset({"low", "medium", "high"})),
    ("o4-mini-2025-04-16", frozenset({"low", "medium", "high"})),
    ("gpt-5", frozenset({"minimal", "low", "medium", "high"})),
    ("gpt-5-nano-2025-08-07", frozenset({"minimal", "low", "medium", "high"})),
    ("gpt-5.1", frozenset({"none", "low", "medium", "high"})),
    ("openai/gpt-oss-120b", frozenset({"low", "medium", "high"})),
    ("meta-llama/Llama-3.1-8B-Instruct", frozenset()),
]


@pytest.mark.parametrize(("model", "efforts"), EFFORT_CASES)
def test_reasoning_efforts_are_declared_for_reasoning_models_only(
    provider: OpenAIProvider, model: str, efforts: frozenset[str]
) -> None:
    assert provider.capabilities(model).reasoning_efforts == efforts


def test_openai_models_fetch_image_urls_and_compatible_servers_get_them_inlined(
    provider: OpenAIProvider,
) -> None:
    assert provider.capabilities("gpt-4o").image_urls
    assert provider.capabilities("o3").image_urls
    compatible = provider.capabilities("Qwen/Qwen2.5-VL-7B-Instruct")
    assert (compatible.images, compatible.image_urls) == (True, False)
    assert not provider.capabilities("gpt-3.5-turbo").images
    assert not provider.capabilities("o3-mini").images


def test_what_a_model_cannot_do_is_named_before_any_call(provider: OpenAIProvider) -> None:
    minimal = replace(chat("o3", ("user", "Hi")), reasoning_effort="minimal")
    problem = check_capabilities(minimal, provider.capabilities("o3"), provider.name)
    assert problem == "reasoning_effort: provider 'openai-main' cannot honour 'minimal'"
    schema = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "w", SCHEMA)
    old = replace(chat("gpt-3.5-turbo", ("user", "Hi")), response_format=schema)
    problem = check_capabilities(old, provider.capabilities("gpt-3.5-turbo"), provider.name)
    assert problem is not None
    assert problem.startswith("response_format.type: ")
    assert provider.capabilities("gpt-4o").seed


def test_azure_deployments_follow_the_rule_by_name_and_reason_from_their_api_version(
    session: UpstreamClient,
) -> None:
    azure = Vendor(FakeOpenAI, AZURE_SPEC, name="azure", keys=(KEY,))
    old = azure.adapter(session, "http://127.0.0.1:1")
    new = azure.adapter(session, "http://127.0.0.1:1", api_version="2025-04-01-preview")
    assert old.capabilities("o4-mini").reasoning_efforts == frozenset()
    assert new.capabilities("o4-mini").reasoning_efforts == {"low", "medium", "high"}
    # a deployment named freely is an OpenAI chat model: Azure fetches image URLs
    assert new.capabilities("prod-chat").image_urls
    assert new.capabilities("prod-chat").json_schema
