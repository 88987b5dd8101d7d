"""The Gemini adapter against a loopback fake of the Gemini API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.errors import (
    ContentFilteredError,
    StreamInterruptedError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.base import ChatChunk, ChatMessage, ChatRequest, Provider, ProviderSettings, Usage
from providers.gemini import SPEC, GeminiProvider
from providers.keys import KeyPool
from tests.fakes.base import StreamBreak
from tests.fakes.gemini_server import FakeGemini, FakeUsage, Fault

KEY = "AIzaSy-test-0123456789SECRET"
OTHER_KEY = "AIzaSy-test-other-key-SECRET"
MODEL = "gemini-2.5-flash"
HELLO = ChatRequest(model=MODEL, messages=(ChatMessage("user", "Say hello"),))


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def make_provider(
    session: aiohttp.ClientSession, base_url: str, *keys: str, **options: object
) -> GeminiProvider:
    keys = keys or (KEY,)
    settings = ProviderSettings(
        name="gemini-main", kind="gemini", base_url=base_url, api_keys=keys, options=options
    )
    return GeminiProvider(settings, session, KeyPool(keys, cooldown=60))


@pytest.fixture
def provider(fake: FakeGemini, session: aiohttp.ClientSession) -> GeminiProvider:
    return make_provider(session, fake.base_url + "/")


async def collect(
    provider: GeminiProvider, request: ChatRequest = HELLO, into: list[ChatChunk] | None = None
) -> list[ChatChunk]:
    chunks = [] if into is None else into
    async for chunk in provider.stream(request):
        chunks.append(chunk)
    return chunks


def sse_body(*chunks: bytes) -> bytes:
    return b"".join(b"data: " + c + b"\r\n\r\n" for c in chunks)


# -- identity and what goes on the wire ------------------------------------------------------


def test_provider_satisfies_the_protocol_and_the_spec_names_it(provider: GeminiProvider) -> None:
    assert isinstance(provider, Provider)
    assert (provider.name, provider.kind) == ("gemini-main", "gemini")
    assert provider.capabilities.streaming
    assert provider.capabilities.stream_usage
    assert (SPEC.kind, SPEC.env_prefix, SPEC.factory) == ("gemini", "GEMINI", GeminiProvider)
    assert SPEC.default_base_url == "https://generativelanguage.googleapis.com"
    assert SPEC.env_options == {"api_version": "API_VERSION"}
    assert "gemini-2.5-flash" in SPEC.default_models


@pytest.mark.parametrize(
    ("streamed", "method", "query"),
    [(False, "generateContent", {}), (True, "streamGenerateContent", {"alt": "sse"})],
)
async def test_posts_to_the_model_method_under_v1beta(
    provider: GeminiProvider, fake: FakeGemini, streamed: bool, method: str, query: object
) -> None:
    await (collect(provider) if streamed else provider.complete(HELLO))
    assert fake.requests[0].path == f"/v1beta/models/{MODEL}:{method}"
    assert fake.requests[0].query == query


async def test_api_version_option_picks_the_path(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    await make_provider(session, fake.base_url, api_version="v1").complete(HELLO)
    assert fake.requests[0].path == f"/v1/models/{MODEL}:generateContent"


async def test_model_is_quoted_as_one_path_segment_and_models_prefix_dropped(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    await provider.complete(ChatRequest(model="models/x/../y?key=1#z", messages=HELLO.messages))
    assert fake.requests[0].path == "/v1beta/models/x/../y?key=1#z:generateContent"
    assert fake.requests[0].query == {}


async def test_key_travels_only_in_the_x_goog_api_key_header_which_callers_cannot_set(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    headers = (("X-Goog-Api-Key", "stolen"), ("x-request-id", "req-42"))
    request = ChatRequest(model=MODEL, messages=HELLO.messages, headers=headers)
    await provider.complete(request)
    await collect(provider, request)
    assert [r.headers.getall("x-goog-api-key") for r in fake.requests] == [[KEY], [KEY]]
    assert fake.query_keys == ["", ""]
    assert all(KEY not in r.path and "Authorization" not in r.headers for r in fake.requests)
    assert fake.requests[0].headers["X-Request-Id"] == "req-42"


async def test_body_maps_roles_to_contents_and_system_instruction(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    roles = ("system", "user", "assistant", "tool", "user", "developer", "assistant")
    messages = tuple(ChatMessage(role, f"m{i}") for i, role in enumerate(roles))
    await provider.complete(ChatRequest(model=MODEL, messages=(*messages, ChatMessage("user", ""))))
    assert fake.requests[0].body == {
        "systemInstruction": {"parts": [{"text": "m0"}, {"text": "m5"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "m1"}]},
            {"role": "model", "parts": [{"text": "m2"}]},
            {"role": "user", "parts": [{"text": "m3"}, {"text": "m4"}]},
            {"role": "model", "parts": [{"text": "m6"}]},
        ],
    }


@pytest.mark.parametrize(
    ("settings", "config"),
    [
        ({"temperature": 0.0}, {"temperature": 0.0}),
        ({"top_p": 0.9, "max_tokens": 64}, {"topP": 0.9, "maxOutputTokens": 64}),
        ({"stop": ("\n\n", "END")}, {"stopSequences": ["\n\n", "END"]}),
    ],
)
async def test_generation_config_carries_only_the_set_parameters(
    provider: GeminiProvider, fake: FakeGemini, settings: dict[str, Any], config: object
) -> None:
    await provider.complete(ChatRequest(MODEL, HELLO.messages, **settings))
    await provider.complete(HELLO)
    assert fake.requests[0].body["generationConfig"] == config
    assert "generationConfig" not in fake.requests[1].body


# -- unary replies ---------------------------------------------------------------------------


async def test_complete_returns_text_id_model_and_usage_with_cached_tokens(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.usage, fake.model = FakeUsage(30, 7, cached_tokens=16), "gemini-2.5-flash-001"
    response = await provider.complete(HELLO)
    assert (response.content, response.finish_reason) == ("Hello from fake Gemini", "stop")
    assert (response.id, response.model) == ("fake-response-1", "gemini-2.5-flash-001")
    assert response.usage == Usage(30, 7, 37, cached_tokens=16)


async def test_thought_parts_are_skipped_and_thinking_tokens_count_as_output(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.thought, fake.thoughts_tokens = "Let me think...", 9
    response = await provider.complete(HELLO)
    assert response.content == "Hello from fake Gemini"
    assert response.usage == Usage(12, 5 + 9, 12 + 5 + 9, cached_tokens=4)


@pytest.mark.parametrize(
    ("vendor", "ours"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("OTHER", "stop")]
    + [("MALFORMED_FUNCTION_CALL", "stop"), ("CONTINUATION", "length")]
    + [(r, "content_filter") for r in ("SAFETY", "RECITATION", "BLOCKLIST", "SPII", "LANGUAGE")]
    + [(r, "content_filter") for r in ("PROHIBITED_CONTENT", "IMAGE_SAFETY")],
)
async def test_finish_reason_is_mapped_and_a_filter_after_text_is_a_normal_answer(
    provider: GeminiProvider, fake: FakeGemini, vendor: str, ours: str
) -> None:
    fake.finish_reason = vendor
    response = await provider.complete(HELLO)
    assert (response.content, response.finish_reason) == ("Hello from fake Gemini", ours)


async def test_missing_response_id_and_model_version_fall_back(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    body = b'{"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]}'
    fake.fail_next(Fault(raw_body=body), Fault(raw_body=body))
    first, second = await provider.complete(HELLO), await provider.complete(HELLO)
    assert first.id.startswith("gemini-")
    assert first.id != second.id
    assert (first.model, first.usage) == (MODEL, Usage())


async def test_total_tokens_are_taken_as_reported(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    # totalTokenCount also counts toolUsePromptTokenCount, which our Usage has no field for.
    usage = b'{"promptTokenCount": 3, "candidatesTokenCount": 2, "toolUsePromptTokenCount": 4, '
    body = b'{"candidates": [{"finishReason": "STOP"}], "usageMetadata": ' + usage
    fake.fail_next(Fault(raw_body=body + b'"totalTokenCount": 9}}'))
    assert (await provider.complete(HELLO)).usage == Usage(3, 2, 9)


# -- content refusals ------------------------------------------------------------------------


REFUSALS: dict[str, dict[str, object]] = {
    "blockReason=PROHIBITED_CONTENT": {"block_reason": "PROHIBITED_CONTENT"},
    "finishReason=SAFETY": {"reply": None, "finish_reason": "SAFETY"},
}


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("why", REFUSALS)
async def test_refusal_without_any_text_raises_content_filtered(
    provider: GeminiProvider, fake: FakeGemini, why: str, streamed: bool
) -> None:
    for name, value in REFUSALS[why].items():
        setattr(fake, name, value)
    with pytest.raises(ContentFilteredError, match=why):
        await (collect(provider) if streamed else provider.complete(HELLO))


async def test_stream_safety_stop_after_text_ends_with_content_filter(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.finish_reason = "SAFETY"
    *deltas, final = await collect(provider)
    assert "".join(c.delta for c in deltas) == "Hello from fake Gemini"
    assert final.finish_reason == "content_filter"


# -- streams ---------------------------------------------------------------------------------


async def test_stream_yields_deltas_then_one_final_chunk_with_the_last_usage(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.thought, fake.thoughts_tokens = "Thinking first.", 3
    *deltas, final = await collect(provider)
    assert [c.delta for c in deltas] == fake.deltas
    assert all(c.finish_reason is None and c.usage is None for c in deltas)
    assert all((c.id, c.model) == ("fake-response-1", MODEL) for c in [*deltas, final])
    assert (final.delta, final.finish_reason) == ("", "stop")
    assert final.usage == Usage(12, 5 + 3, 12 + 5 + 3, cached_tokens=4)


async def test_stream_takes_text_and_finish_reason_from_the_same_chunk(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    usage = b'"usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}'
    last = (
        b'{"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS"}], '
    )
    body = sse_body(
        b'{"candidates": [{"content": {"parts": [{"text": "a"}]}}]}', last + usage + b"}"
    )
    fake.fail_next(Fault(raw_body=body))
    chunks = await collect(provider)
    assert [(c.delta, c.finish_reason) for c in chunks] == [
        ("a", None),
        ("b", None),
        ("", "length"),
    ]
    assert chunks[-1].usage == Usage(3, 2, 5)
    assert chunks[0].id.startswith("gemini-")
    assert chunks[0].id == chunks[-1].id


async def test_stream_reassembles_characters_split_across_network_reads(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.reply = "Grüße aus Köln 👋 ナイス"
    fake.fail_next(Fault(fragment=3))
    assert "".join(c.delta for c in await collect(provider)) == fake.reply


@pytest.mark.parametrize(("after", "how"), [(0, "eof"), (2, "eof"), (99, "eof"), (2, "cut")])
async def test_stream_ending_without_a_finish_reason_raises_after_the_deltas(
    provider: GeminiProvider, fake: FakeGemini, after: int, how: StreamBreak
) -> None:
    fake.fail_next(Fault(break_after=after, break_with=how))
    chunks: list[ChatChunk] = []
    with pytest.raises(StreamInterruptedError):
        await collect(provider, into=chunks)
    assert [c.delta for c in chunks] == fake.deltas[:after]


@pytest.mark.parametrize(("how", "kind"), [("malformed", "malformed"), ("error_event", "INTERNAL")])
async def test_bad_frame_after_the_first_chunk_interrupts_the_stream(
    provider: GeminiProvider, fake: FakeGemini, how: StreamBreak, kind: str
) -> None:
    fake.fail_next(Fault(break_after=1, break_with=how, error_message=f"oops {KEY}"))
    chunks: list[ChatChunk] = []
    with pytest.raises(StreamInterruptedError, match=kind) as caught:
        await collect(provider, into=chunks)
    assert len(chunks) == 1
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("how", "error"),
    [("malformed", UpstreamUnavailableError), ("error_event", UpstreamRateLimitedError)],
)
async def test_bad_frame_before_any_chunk_raises_the_mapped_error_not_interrupted(
    provider: GeminiProvider, fake: FakeGemini, how: StreamBreak, error: type[UpstreamError]
) -> None:
    fake.fail_next(Fault(break_after=0, break_with=how, error_type="RESOURCE_EXHAUSTED"))
    with pytest.raises(error) as caught:
        await collect(provider)
    assert type(caught.value) is error


async def test_cancelling_a_stream_consumer_aborts_the_upstream_stream(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.fail_next(Fault(chunk_delay=0.2))
    first, chunks = asyncio.Event(), list[ChatChunk]()

    async def consume() -> None:
        async for chunk in provider.stream(HELLO):
            chunks.append(chunk)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(fake.client_disconnected.wait(), 5)
    assert len(chunks) < len(fake.deltas)


# -- HTTP errors -----------------------------------------------------------------------------


async def test_api_key_invalid_400_raises_auth_error_and_rests_the_key(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    provider = make_provider(session, fake.base_url, KEY, OTHER_KEY)
    message = f"API key not valid. Please pass a valid API key. {KEY}"
    fake.fail_next(Fault(status=400, error_code="API_KEY_INVALID", error_message=message))
    with pytest.raises(UpstreamAuthError) as caught:
        await provider.complete(HELLO)
    assert KEY not in str(caught.value)
    assert "not valid" not in str(caught.value)
    await provider.complete(HELLO)
    await provider.complete(HELLO)
    assert fake.keys_seen == [KEY, OTHER_KEY, OTHER_KEY]


async def test_400_raises_bad_request_quoting_the_message_with_the_key_redacted(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.fail_next(Fault(status=400, error_message=f"* temperature out of range {KEY}"))
    with pytest.raises(UpstreamBadRequestError, match="type=INVALID_ARGUMENT") as caught:
        await provider.complete(HELLO)
    assert "temperature out of range [redacted]" in str(caught.value)


async def test_error_wrapped_in_a_json_array_is_read_too(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    error = b'{"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}'
    fake.fail_next(Fault(status=404, raw_body=b'[{"error": ' + error + b"}]"))
    with pytest.raises(UpstreamNotFoundError, match=r"type=NOT_FOUND.*models/x is not found"):
        await provider.complete(HELLO)


async def test_request_the_api_would_reject_raises_bad_request(provider: GeminiProvider) -> None:
    with pytest.raises(UpstreamBadRequestError, match="contents is not specified"):
        await provider.complete(ChatRequest(MODEL, (ChatMessage("system", "Be brief."),)))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (403, UpstreamAuthError),
        (404, UpstreamNotFoundError),
        (429, UpstreamRateLimitedError),
        (500, UpstreamUnavailableError),
        (503, UpstreamUnavailableError),
    ],
)
async def test_http_status_maps_to_our_error_with_retry_after_and_without_the_key(
    provider: GeminiProvider, fake: FakeGemini, status: int, error: type[UpstreamError]
) -> None:
    headers = {"retry-after": "7"}
    fake.fail_next(Fault(status=status, error_message=f"failed for {KEY}", headers=headers))
    with pytest.raises(error, match=f"HTTP {status}") as caught:
        await provider.complete(HELLO)
    assert type(caught.value) is error
    assert caught.value.retry_after == 7.0
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "error"), [(400, UpstreamBadRequestError), (502, UpstreamUnavailableError)]
)
async def test_error_body_that_is_not_json_still_maps_by_status(
    provider: GeminiProvider, fake: FakeGemini, status: int, error: type[UpstreamError]
) -> None:
    fake.fail_next(Fault(status=status, raw_body=b"<html><body>Bad gateway</body></html>"))
    with pytest.raises(error, match=f"HTTP {status}") as caught:
        await provider.complete(HELLO)
    assert "html" not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[]",
        b'{"responseId": "r1", "modelVersion": "gemini-2.5-flash"}',
        b'{"candidates": [{"content": {"parts": [{"text": 5}]}}]}',
        b'{"candidates": {"content": {}}}',
        b'{"candidates": [], "usageMetadata": {"promptTokenCount": "many"}}',
    ],
)
async def test_malformed_200_body_raises_unavailable(
    provider: GeminiProvider, fake: FakeGemini, body: bytes
) -> None:
    fake.fail_next(Fault(raw_body=body))
    with pytest.raises(UpstreamUnavailableError, match="malformed reply"):
        await provider.complete(HELLO)


async def test_429_without_a_header_takes_the_retry_delay_from_the_body(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.fail_next(Fault(status=429))  # the fake's body carries RetryInfo retryDelay "1s"
    with pytest.raises(UpstreamRateLimitedError) as caught:
        await provider.complete(HELLO)
    assert caught.value.retry_after == pytest.approx(1.0)


async def test_429_header_wins_over_the_body_retry_delay(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.fail_next(Fault(status=429, headers={"retry-after": "9"}))
    with pytest.raises(UpstreamRateLimitedError) as caught:
        await provider.complete(HELLO)
    assert caught.value.retry_after == pytest.approx(9.0)
