"""The Azure OpenAI adapter against a loopback fake of Azure's deployment endpoints."""

from __future__ import annotations

import pytest

from providers.azure_openai import DEFAULT_API_VERSION, SPEC, AzureOpenAIProvider
from providers.base import Provider
from providers.errors import (
    ContentFilteredError,
    StreamInterruptedError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamNotFoundError,
    UpstreamUnavailableError,
)
from providers.http.client import UpstreamClient
from providers.openai import OpenAIProvider
from providers.types import Finish, Meta, StreamEvent, TextDelta, Usage
from tests.contract.harness import Vendor, chat, collect, deltas, finish, hello
from tests.fakes.azure_openai_server import FakeAzureOpenAI, FakeUsage, Fault

KEY = "0123456789abcdef0123456789SECRET"
HELLO = hello("gpt4o-prod")
VENDOR = Vendor(FakeAzureOpenAI, SPEC, name="azure-east", keys=(KEY,))


# -- identity --------------------------------------------------------------------------------


def test_provider_satisfies_the_protocol_and_reuses_the_openai_adapter(
    provider: AzureOpenAIProvider,
) -> None:
    assert isinstance(provider, Provider)
    assert isinstance(provider, OpenAIProvider)
    assert (provider.name, provider.kind) == ("azure-east", "azure_openai")


def test_spec_requires_a_base_url_and_reads_the_api_version_option() -> None:
    assert (SPEC.kind, SPEC.env_prefix) == ("azure_openai", "AZURE_OPENAI")
    assert (SPEC.default_base_url, SPEC.default_models) == ("", ())
    assert SPEC.env_options == {"api_version": "API_VERSION"}


# -- what goes on the wire -------------------------------------------------------------------


async def test_request_goes_to_the_deployment_named_by_the_model_with_the_default_version(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    await provider.complete(HELLO)
    recorded = fake.requests[0]
    assert recorded.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert recorded.query == {"api-version": DEFAULT_API_VERSION}


async def test_api_version_option_is_sent(fake: FakeAzureOpenAI, session: UpstreamClient) -> None:
    provider = VENDOR.adapter(session, fake.base_url, api_version="2025-04-01-preview")
    await provider.complete(HELLO)
    assert fake.requests[0].query == {"api-version": "2025-04-01-preview"}


async def test_a_model_name_cannot_add_query_parameters_to_its_deployment_url(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    request = chat("x?api-version=1#y", *HELLO.messages)
    response = await provider.complete(request)
    assert response.model == "x?api-version=1#y"  # the fake echoes the deployment segment
    assert fake.requests[0].query == {"api-version": DEFAULT_API_VERSION}


@pytest.mark.parametrize("model", ["..", ".", "a/b", "../../x", ""])
@pytest.mark.parametrize("streamed", [False, True])
async def test_a_model_that_is_not_one_path_segment_is_refused_before_anything_is_sent(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI, model: str, streamed: bool
) -> None:
    request = chat(model, *HELLO.messages)
    with pytest.raises(UpstreamBadRequestError) as caught:
        await (collect(provider, request) if streamed else provider.complete(request))
    assert caught.value.message.startswith("model: ")
    assert fake.requests == []


async def test_key_goes_in_the_api_key_header_and_no_authorization_is_sent(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    await provider.complete(HELLO)
    headers = fake.requests[0].headers
    assert headers["api-key"] == KEY
    assert "Authorization" not in headers


async def test_body_is_the_openai_body(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    await collect(provider, HELLO, [])
    body = fake.requests[0].body
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


# -- replies ---------------------------------------------------------------------------------


async def test_complete_maps_usage_and_finish_like_openai(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    fake.usage = FakeUsage(prompt_tokens=30, completion_tokens=7, cached_tokens=16)
    fake.finish_reason = "length"
    response = await provider.complete(HELLO)
    assert response.content == "Hello from fake Azure OpenAI"
    assert (response.model, response.finish_reason) == ("gpt4o-prod", "length")
    assert response.usage == Usage(30, 7, 37, cached_tokens=16)


async def test_content_filter_finish_reason_is_kept(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    fake.reply, fake.finish_reason = None, "content_filter"
    response = await provider.complete(HELLO)
    assert (response.content, response.finish_reason) == ("", "content_filter")


async def test_stream_skips_the_prompt_filter_chunk_and_ends_with_usage(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    events = await collect(provider, HELLO)
    head, *content, _ = events
    assert isinstance(head, Meta)
    assert head.id.startswith("chatcmpl-")
    assert head.model == "gpt4o-prod"
    assert content == [TextDelta(text) for text in fake.deltas]
    assert finish(events) == Finish("stop", Usage(12, 5, 17, cached_tokens=4))


async def test_stream_cut_raises_interrupted_after_the_earlier_deltas(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    fake.fail_next(Fault(break_after=2, break_with="cut"))
    chunks: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError):
        await collect(provider, HELLO, chunks)
    assert deltas(chunks) == fake.deltas[:2]


# -- errors ----------------------------------------------------------------------------------


async def test_prompt_refused_by_the_content_filter_raises_content_filtered(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    message = "The response was filtered due to the prompt triggering Azure OpenAI's policy."
    fake.fail_next(Fault(status=400, error_code="content_filter", error_message=message))
    with pytest.raises(ContentFilteredError, match="code=content_filter"):
        await provider.complete(HELLO)


async def test_rejected_key_raises_auth_error_without_echoing_the_key(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    message = f"Access denied due to invalid subscription key {KEY} or wrong API endpoint."
    fake.fail_next(Fault(status=401, error_message=message))
    with pytest.raises(UpstreamAuthError, match="HTTP 401") as caught:
        await provider.complete(HELLO)
    assert KEY not in str(caught.value)
    assert "Access denied" not in str(caught.value)


async def test_unknown_deployment_raises_not_found(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    fake.fail_next(
        Fault(status=404, error_message="The API deployment for this resource does not exist.")
    )
    with pytest.raises(UpstreamNotFoundError, match="code=DeploymentNotFound"):
        await provider.complete(HELLO)


async def test_server_error_raises_unavailable(
    provider: AzureOpenAIProvider, fake: FakeAzureOpenAI
) -> None:
    fake.fail_next(Fault(status=500))
    with pytest.raises(UpstreamUnavailableError, match="HTTP 500"):
        await provider.complete(HELLO)
