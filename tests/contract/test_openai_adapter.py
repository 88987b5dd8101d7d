"""The OpenAI adapter against a loopback fake of the Chat Completions API.

Identity, what goes on the wire, whole replies and failures; streams are in
`test_openai_stream.py`.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from providers.base import Provider
from providers.errors import (
    ContentFilteredError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from providers.http.client import UpstreamClient
from providers.openai import SPEC, OpenAIProvider
from tests.contract.harness import Vendor, chat, hello
from tests.fakes.openai_server import FakeOpenAI, Fault

KEY = "sk-test-0123456789abcdefSECRET"
HELLO = hello("gpt-4o-mini")
VENDOR = Vendor(FakeOpenAI, SPEC, name="openai-main", keys=(KEY,))


# -- identity --------------------------------------------------------------------------------


def test_provider_satisfies_the_protocol(provider: OpenAIProvider) -> None:
    assert isinstance(provider, Provider)
    assert (provider.name, provider.kind) == ("openai-main", "openai")


async def test_aclose_leaves_the_shared_session_open(
    provider: OpenAIProvider, session: UpstreamClient
) -> None:
    await provider.aclose()
    assert not session.closed
    assert (await provider.complete(HELLO)).content


# -- unary replies ---------------------------------------------------------------------------


async def test_complete_returns_id_model_and_finish_reason(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.model, fake.finish_reason = "gpt-4o-mini-2024-07-18", "length"
    response = await provider.complete(HELLO)
    assert response.id.startswith("chatcmpl-")
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.finish_reason == "length"


async def test_content_filter_finish_with_null_content_is_a_normal_reply(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.reply, fake.finish_reason = None, "content_filter"
    response = await provider.complete(HELLO)
    assert (response.content, response.finish_reason) == ("", "content_filter")


# -- what goes on the wire -------------------------------------------------------------------


async def test_request_body_sends_only_the_parameters_that_are_set(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    await provider.complete(HELLO)
    assert fake.requests[0].body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello"}],
    }


async def test_request_body_carries_every_set_parameter(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    request = chat(
        "gpt-4o",
        ("system", "Be brief."),
        ("user", "Hi"),
        temperature=0.2,
        max_tokens=64,
        top_p=0.9,
        stop=("\n\n", "END"),
    )
    await provider.complete(request)
    body = fake.requests[0].body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.2, 64, 0.9)
    assert body["stop"] == ["\n\n", "END"]


async def test_requests_carry_the_bearer_key_and_json_headers(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    await provider.complete(HELLO)
    headers = fake.requests[0].headers
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Content-Type"] == "application/json"


async def test_no_authorization_header_is_sent_without_a_key(
    fake: FakeOpenAI, session: UpstreamClient
) -> None:
    await VENDOR.adapter(session, fake.base_url, keys=()).complete(HELLO)
    assert "Authorization" not in fake.requests[0].headers


async def test_request_headers_are_forwarded(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    request = chat("m", *HELLO.messages, headers=(("x-request-id", "req-42"),))
    await provider.complete(request)
    assert fake.requests[0].headers["X-Request-Id"] == "req-42"


async def test_request_headers_cannot_replace_the_credential(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    request = chat("m", *HELLO.messages, headers=(("authorization", "Bearer stolen"),))
    await provider.complete(request)
    assert fake.requests[0].headers.getall("Authorization") == [f"Bearer {KEY}"]


# -- HTTP errors -----------------------------------------------------------------------------


async def test_400_raises_bad_request_quoting_the_vendor_message(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(
        Fault(
            status=400,
            error_type="invalid_request_error",
            error_code="context_length_exceeded",
            error_message="This model's maximum context length is 8192 tokens.",
        )
    )
    with pytest.raises(UpstreamBadRequestError) as caught:
        await provider.complete(HELLO)
    message = str(caught.value)
    assert "'openai-main'" in message
    assert "HTTP 400" in message
    assert "code=context_length_exceeded" in message
    assert "maximum context length is 8192 tokens" in message
    assert caught.value.provider == "openai-main"


async def test_400_vendor_message_is_truncated_and_the_key_redacted(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(status=400, error_message=f"bad key {KEY} " + "x" * 1000))
    with pytest.raises(UpstreamBadRequestError) as caught:
        await provider.complete(HELLO)
    message = str(caught.value)
    assert KEY not in message
    assert "[redacted]" in message
    assert len(message) < 450


async def test_422_raises_bad_request(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.fail_next(Fault(status=422, error_type="invalid_request_error"))
    with pytest.raises(UpstreamBadRequestError, match="HTTP 422"):
        await provider.complete(HELLO)


@pytest.mark.parametrize("code", ["content_filter", "content_policy_violation"])
async def test_400_content_policy_code_raises_content_filtered(
    provider: OpenAIProvider, fake: FakeOpenAI, code: str
) -> None:
    fake.fail_next(Fault(status=400, error_type="invalid_request_error", error_code=code))
    with pytest.raises(ContentFilteredError):
        await provider.complete(HELLO)


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_credential_raises_auth_error_without_echoing_the_key(
    provider: OpenAIProvider, fake: FakeOpenAI, status: int
) -> None:
    fake.fail_next(
        Fault(
            status=status,
            error_type="invalid_request_error",
            error_code="invalid_api_key",
            error_message=f"Incorrect API key provided: {KEY}. You can find your API key at ...",
        )
    )
    with pytest.raises(UpstreamAuthError) as caught:
        await provider.complete(HELLO)
    message = str(caught.value)
    assert KEY not in message
    assert "Incorrect API key" not in message
    assert f"HTTP {status}" in message
    assert "credentials" in message


async def test_404_raises_not_found(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.fail_next(
        Fault(
            status=404,
            error_type="invalid_request_error",
            error_code="model_not_found",
            error_message="The model `gpt-9` does not exist or you do not have access to it.",
        )
    )
    with pytest.raises(UpstreamNotFoundError, match="gpt-9"):
        await provider.complete(HELLO)


async def test_429_retry_after_ms_takes_precedence(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    headers = {"retry-after-ms": "1500", "retry-after": "2"}
    fake.fail_next(Fault(status=429, error_code="rate_limit_exceeded", headers=headers))
    with pytest.raises(UpstreamRateLimitedError) as caught:
        await provider.complete(HELLO)
    assert caught.value.retry_after == 1.5


async def test_429_retry_after_http_date_is_converted_to_seconds(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake.fail_next(Fault(status=429, headers={"retry-after": when}))
    with pytest.raises(UpstreamRateLimitedError) as caught:
        await provider.complete(HELLO)
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 30


async def test_429_without_retry_after_leaves_it_unset(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(status=429, error_code="insufficient_quota"))
    with pytest.raises(UpstreamRateLimitedError, match="insufficient_quota") as caught:
        await provider.complete(HELLO)
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409])
async def test_server_side_statuses_raise_unavailable(
    provider: OpenAIProvider, fake: FakeOpenAI, status: int
) -> None:
    fake.fail_next(Fault(status=status, error_message="The server had an error"))
    with pytest.raises(UpstreamUnavailableError, match=f"HTTP {status}") as caught:
        await provider.complete(HELLO)
    assert "The server had an error" not in str(caught.value)


async def test_error_body_that_is_not_json_is_tolerated(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(status=502, raw_body=b"<html><body>Bad gateway</body></html>"))
    with pytest.raises(UpstreamUnavailableError, match="HTTP 502") as caught:
        await provider.complete(HELLO)
    assert "html" not in str(caught.value)


# -- malformed replies, transport failures and cancellation ----------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[]",
        b'{"id": "chatcmpl-1", "object": "chat.completion"}',
        b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": 5}}]}',
        b'{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": "many"}}',
    ],
)
async def test_malformed_200_body_raises_unavailable(
    provider: OpenAIProvider, fake: FakeOpenAI, body: bytes
) -> None:
    fake.fail_next(Fault(raw_body=body))
    with pytest.raises(UpstreamUnavailableError, match="malformed reply"):
        await provider.complete(HELLO)


async def test_refused_connection_raises_unavailable(session: UpstreamClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = VENDOR.adapter(session, f"http://127.0.0.1:{port}/v1")
    with pytest.raises(UpstreamUnavailableError, match="connection failed"):
        await provider.complete(HELLO)


async def test_spent_time_budget_raises_timeout_without_calling(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    request = chat("m", *HELLO.messages, timeout=0.0)
    with pytest.raises(UpstreamTimeoutError):
        await provider.complete(request)
    assert fake.requests == []


async def test_cancelling_complete_aborts_the_upstream_request(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(delay=30))
    task = asyncio.create_task(provider.complete(HELLO))
    await asyncio.wait_for(fake.request_received.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(fake.client_disconnected.wait(), 5)
