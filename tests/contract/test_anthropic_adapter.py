"""The Anthropic adapter against a loopback fake of the Messages API.

Identity, what goes on the wire, whole replies and HTTP errors; streams are in
`test_anthropic_stream.py`.
"""

from __future__ import annotations

import aiohttp
import pytest

from providers.anthropic import SPEC, AnthropicProvider
from providers.base import Provider
from providers.errors import (
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.http.client import UpstreamClient
from providers.types import Message, Usage
from tests.contract.harness import Vendor, chat, collect, finish, hello
from tests.fakes.anthropic_server import FakeAnthropic, FakeUsage, Fault

KEY = "sk-ant-test-0123456789abcdefSECRET"
HELLO = hello("claude-sonnet-4-5")
VENDOR = Vendor(FakeAnthropic, SPEC, name="claude", keys=(KEY,))


# -- identity and configuration --------------------------------------------------------------


def test_provider_satisfies_the_protocol(provider: AnthropicProvider) -> None:
    assert isinstance(provider, Provider)
    assert (provider.name, provider.kind) == ("claude", "anthropic")


def test_spec_names_the_kind_its_environment_and_current_models() -> None:
    assert (SPEC.kind, SPEC.factory, SPEC.env_prefix) == (
        "anthropic",
        AnthropicProvider,
        "ANTHROPIC",
    )
    assert SPEC.default_base_url == "https://api.anthropic.com"
    assert SPEC.env_options == {"version": "VERSION", "max_tokens": "MAX_TOKENS"}
    assert SPEC.number_options == {"max_tokens"}
    assert {"claude-sonnet-4-5-20250929", "claude-sonnet-4-5"} <= set(SPEC.default_models)


# -- what goes on the wire -------------------------------------------------------------------


async def test_body_has_default_max_tokens_and_only_the_set_parameters(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    await provider.complete(HELLO)
    assert fake.requests[0].path == "/v1/messages"
    assert fake.requests[0].body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Say hello"}],
    }


async def test_system_and_developer_turns_are_lifted_into_the_system_string(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    turns = [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hey")]
    messages = tuple(Message.of_text(r, c) for r, c in [*turns, ("developer", "No emoji.")])
    await provider.complete(chat("m", *messages))
    assert fake.requests[0].body["system"] == "Be brief.\n\nNo emoji."
    assert fake.requests[0].body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hey"},
    ]


async def test_set_parameters_are_sent_with_stop_as_stop_sequences(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    await provider.complete(
        chat("m", *HELLO.messages, temperature=0.2, max_tokens=64, top_p=0.9, stop=("X",))
    )
    body = fake.requests[0].body
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.2, 64, 0.9)
    assert (body["stop_sequences"], "stop" in body) == (["X"], False)


async def test_options_set_the_default_max_tokens_and_the_version(
    fake: FakeAnthropic, session: UpstreamClient
) -> None:
    provider = VENDOR.adapter(  # the options as the config loads them
        session, fake.base_url + "/", max_tokens=1024.0, version="2099-01-01"
    )
    await provider.complete(HELLO)
    sent = fake.requests[0]
    assert repr(sent.body["max_tokens"]) == "1024"  # an integer, as the API requires
    assert sent.headers["anthropic-version"] == "2099-01-01"


async def test_requests_carry_the_api_key_and_the_default_version(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    await provider.complete(HELLO)
    sent = fake.requests[0]
    assert (fake.keys_seen, sent.headers["anthropic-version"]) == ([KEY], "2023-06-01")
    assert sent.headers["Content-Type"] == "application/json"
    assert "Authorization" not in sent.headers


async def test_request_headers_are_forwarded_but_never_replace_ours(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    extra = (("x-request-id", "req-42"), ("X-Api-Key", "stolen"), ("anthropic-version", "1"))
    await provider.complete(chat("m", *HELLO.messages, headers=extra))
    sent = fake.requests[0]
    assert sent.headers["x-request-id"] == "req-42"
    assert sent.headers.getall("x-api-key") == [KEY]
    assert sent.headers.getall("anthropic-version") == ["2023-06-01"]


# -- unary replies ---------------------------------------------------------------------------


async def test_complete_joins_every_text_block_and_skips_the_others(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    tool: dict[str, object] = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    fake.blocks = [{"type": "text", "text": "Hi, "}, tool, {"type": "text", "text": "you"}]
    fake.model = "claude-sonnet-4-5-20250929"
    response = await provider.complete(HELLO)
    assert (response.content, response.model) == ("Hi, you", "claude-sonnet-4-5-20250929")
    assert response.id.startswith("msg_")


@pytest.mark.parametrize(
    ("stop_reason", "ours"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("some_future_reason", "stop"),
    ],
)
async def test_stop_reason_maps_to_our_finish_reason(
    provider: AnthropicProvider, fake: FakeAnthropic, stop_reason: str, ours: str
) -> None:
    fake.finish_reason = stop_reason
    assert (await provider.complete(HELLO)).finish_reason == ours
    assert finish(await collect(provider, HELLO)).reason == ours


async def test_usage_counts_cache_reads_and_writes_as_prompt_tokens(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.usage = FakeUsage(100, 7, cached_tokens=60, cache_creation_tokens=30)
    assert (await provider.complete(HELLO)).usage == Usage(100, 7, 107, 60, 30)


# -- HTTP errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("status", "vendor_type", "kind"),
    [
        (400, "invalid_request_error", UpstreamBadRequestError),
        (413, "request_too_large", UpstreamBadRequestError),
        (401, "authentication_error", UpstreamAuthError),
        (403, "permission_error", UpstreamAuthError),
        (404, "not_found_error", UpstreamNotFoundError),
        (429, "rate_limit_error", UpstreamRateLimitedError),
        (500, "api_error", UpstreamUnavailableError),
        (529, "overloaded_error", UpstreamUnavailableError),
    ],
)
async def test_error_status_maps_to_our_error_without_the_key(
    provider: AnthropicProvider,
    fake: FakeAnthropic,
    streamed: bool,
    status: int,
    vendor_type: str,
    kind: type[UpstreamError],
) -> None:
    fake.fail_next(Fault(status=status, error_message=f"key {KEY} did something"))
    with pytest.raises(kind, match=f"HTTP {status}, type={vendor_type}") as caught:
        await (collect(provider, HELLO) if streamed else provider.complete(HELLO))
    assert KEY not in str(caught.value)


async def test_400_quotes_the_vendor_message(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.fail_next(Fault(status=400, error_message="max_tokens: must be at most 8192"))
    with pytest.raises(UpstreamBadRequestError, match="must be at most 8192"):
        await provider.complete(HELLO)


@pytest.mark.parametrize(
    ("status", "kind"), [(529, UpstreamUnavailableError), (429, UpstreamRateLimitedError)]
)
async def test_error_body_that_is_not_json_still_maps_by_status(
    provider: AnthropicProvider, fake: FakeAnthropic, status: int, kind: type[UpstreamError]
) -> None:
    fake.fail_next(Fault(status=status, raw_body=b"<html>Overloaded</html>"))
    with pytest.raises(kind, match=f"HTTP {status}") as caught:
        await provider.complete(HELLO)
    assert "html" not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"id": "msg_1", "type": "message"}',
        b'{"content": [{"type": "text", "text": 5}]}',
        b'{"content": [], "usage": {"input_tokens": "many"}}',
    ],
)
async def test_malformed_200_body_raises_unavailable(
    provider: AnthropicProvider, fake: FakeAnthropic, body: bytes
) -> None:
    fake.fail_next(Fault(raw_body=body))
    with pytest.raises(UpstreamUnavailableError, match="malformed reply"):
        await provider.complete(HELLO)


# -- the fake's fidelity ---------------------------------------------------------------------


async def test_fake_rejects_a_system_role_like_the_real_api(fake: FakeAnthropic) -> None:
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.base_url + "/v1/messages", json=body) as response,
    ):
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"
