"""The Gemini adapter against a loopback fake of the Gemini API.

Identity, what goes on the wire, whole replies, refusals and HTTP errors; streams are in
`test_gemini_stream.py`.
"""

from __future__ import annotations

from typing import Any

import pytest

from providers.base import Provider
from providers.errors import (
    ContentFilteredError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.gemini import SPEC, GeminiProvider
from providers.http.client import UpstreamClient
from providers.types import Message, Usage
from tests.contract.harness import Vendor, chat, collect, hello
from tests.fakes.gemini_server import FakeGemini, FakeUsage, Fault

KEY = "AIzaSy-test-0123456789SECRET"
OTHER_KEY = "AIzaSy-test-other-key-SECRET"
MODEL = "gemini-2.5-flash"
HELLO = hello(MODEL)
VENDOR = Vendor(FakeGemini, SPEC, name="gemini-main", keys=(KEY,))


# -- identity and what goes on the wire ------------------------------------------------------


def test_provider_satisfies_the_protocol_and_the_spec_names_it(provider: GeminiProvider) -> None:
    assert isinstance(provider, Provider)
    assert (provider.name, provider.kind) == ("gemini-main", "gemini")
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
    await (collect(provider, HELLO) if streamed else provider.complete(HELLO))
    assert fake.requests[0].path == f"/v1beta/models/{MODEL}:{method}"
    assert fake.requests[0].query == query


async def test_api_version_option_picks_the_path(fake: FakeGemini, session: UpstreamClient) -> None:
    await VENDOR.adapter(session, fake.base_url, api_version="v1").complete(HELLO)
    assert fake.requests[0].path == f"/v1/models/{MODEL}:generateContent"


async def test_model_is_quoted_as_one_path_segment_and_models_prefix_dropped(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    await provider.complete(chat("models/x?key=1#z", *HELLO.messages))
    assert fake.requests[0].path == "/v1beta/models/x?key=1#z:generateContent"
    assert fake.requests[0].query == {}


@pytest.mark.parametrize("model", ["..", "models/..", ".", "x/y", "models/x/../y", "models/"])
@pytest.mark.parametrize("streamed", [False, True])
async def test_a_model_that_is_not_one_path_segment_is_refused_before_anything_is_sent(
    provider: GeminiProvider, fake: FakeGemini, model: str, streamed: bool
) -> None:
    request = chat(model, *HELLO.messages)
    with pytest.raises(UpstreamBadRequestError) as caught:
        await (collect(provider, request) if streamed else provider.complete(request))
    assert caught.value.message.startswith("model: ")
    assert fake.requests == []


async def test_key_travels_only_in_the_x_goog_api_key_header_which_callers_cannot_set(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    headers = (("X-Goog-Api-Key", "stolen"), ("x-request-id", "req-42"))
    request = chat(MODEL, *HELLO.messages, headers=headers)
    await provider.complete(request)
    await collect(provider, request)
    assert [r.headers.getall("x-goog-api-key") for r in fake.requests] == [[KEY], [KEY]]
    assert fake.query_keys == ["", ""]
    assert all(KEY not in r.path and "Authorization" not in r.headers for r in fake.requests)
    assert fake.requests[0].headers["X-Request-Id"] == "req-42"


async def test_body_maps_roles_to_contents_and_system_instruction(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    roles = ("system", "user", "assistant", "user", "user", "developer", "assistant")
    messages = tuple(Message.of_text(role, f"m{i}") for i, role in enumerate(roles))
    await provider.complete(chat(MODEL, *(*messages, Message.of_text("user", ""))))
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
    await provider.complete(chat(MODEL, *HELLO.messages, **settings))
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


async def test_thought_parts_are_reasoning_not_content_and_thinking_tokens_count_as_output(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.thought, fake.thoughts_tokens = "Let me think...", 9
    response = await provider.complete(HELLO)
    assert (response.content, response.reasoning) == ("Hello from fake Gemini", "Let me think...")
    assert response.usage == Usage(12, 5 + 9, 12 + 5 + 9, cached_tokens=4, reasoning_tokens=9)


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
        await (collect(provider, HELLO) if streamed else provider.complete(HELLO))


# -- HTTP errors -----------------------------------------------------------------------------


async def test_api_key_invalid_400_raises_auth_error_and_rests_the_key(
    fake: FakeGemini, session: UpstreamClient
) -> None:
    provider = VENDOR.adapter(session, fake.base_url, keys=(KEY, OTHER_KEY))
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
        await provider.complete(chat(MODEL, ("system", "Be brief.")))


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
