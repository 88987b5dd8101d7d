"""The Anthropic adapter against a loopback fake of the Messages API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import aiohttp
import pytest

from gateway.errors import (
    StreamInterruptedError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.anthropic import SPEC, AnthropicProvider
from providers.base import ChatChunk, ChatMessage, ChatRequest, Provider, ProviderSettings, Usage
from providers.keys import KeyPool
from tests.fakes.anthropic_server import FakeAnthropic, FakeUsage, Fault
from tests.fakes.base import RecordedRequest, StreamBreak, sse

KEY = "sk-ant-test-0123456789abcdefSECRET"
HELLO = ChatRequest(model="claude-sonnet-4-5", messages=(ChatMessage("user", "Say hello"),))
START: dict[str, object] = {
    "type": "message_start",
    "message": {"id": "msg_1", "model": "m", "content": []},
}
PING: dict[str, object] = {"type": "ping"}


@dataclass
class Rig:
    """An adapter wired to a fake Anthropic server."""

    provider: AnthropicProvider
    fake: FakeAnthropic

    @property
    def sent(self) -> RecordedRequest:
        """The first request the fake received."""
        return self.fake.requests[0]

    async def stream(
        self, into: list[ChatChunk] | None = None, first: asyncio.Event | None = None
    ) -> list[ChatChunk]:
        """Stream HELLO into `into` (setting `first` at the first chunk) and return the chunks."""
        chunks = [] if into is None else into
        async for chunk in self.provider.stream(HELLO):
            chunks.append(chunk)
            if first is not None:
                first.set()
        return chunks


MakeRig = Callable[..., Rig]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def make_rig(session: aiohttp.ClientSession) -> AsyncIterator[MakeRig]:
    async with FakeAnthropic() as fake:

        def make(**options: object) -> Rig:
            url = fake.base_url + "/"
            settings = ProviderSettings(
                "claude", "anthropic", base_url=url, api_keys=(KEY,), options=options
            )
            return Rig(AnthropicProvider(settings, session, KeyPool((KEY,), cooldown=60)), fake)

        yield make


@pytest.fixture
def rig(make_rig: MakeRig) -> Rig:
    return make_rig()


def raw_stream(*events: Mapping[str, object]) -> Fault:
    """A 200 answer whose body is exactly these named events, then message_stop."""
    frames = [sse(e, str(e["type"])) for e in (*events, {"type": "message_stop"})]
    return Fault(raw_body=b"".join(frames))


def delta(text: str, kind: str = "text_delta", key: str = "text") -> dict[str, object]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": kind, key: text}}


# -- identity and configuration --------------------------------------------------------------


def test_provider_satisfies_the_protocol(rig: Rig) -> None:
    assert isinstance(rig.provider, Provider)
    assert (rig.provider.name, rig.provider.kind) == ("claude", "anthropic")
    assert rig.provider.capabilities.stream_usage


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


async def test_body_has_default_max_tokens_and_only_the_set_parameters(rig: Rig) -> None:
    await rig.provider.complete(HELLO)
    assert rig.sent.path == "/v1/messages"
    assert rig.sent.body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Say hello"}],
    }


async def test_system_and_developer_turns_are_lifted_into_the_system_string(rig: Rig) -> None:
    turns = [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hey"), ("tool", "42")]
    messages = tuple(ChatMessage(r, c) for r, c in [*turns, ("developer", "No emoji.")])
    await rig.provider.complete(ChatRequest(model="m", messages=messages))
    assert rig.sent.body["system"] == "Be brief.\n\nNo emoji."
    assert rig.sent.body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hey"},
        {"role": "user", "content": "42"},  # a tool result travels as user text
    ]


async def test_set_parameters_are_sent_with_stop_as_stop_sequences(rig: Rig) -> None:
    await rig.provider.complete(
        ChatRequest("m", HELLO.messages, temperature=0.2, max_tokens=64, top_p=0.9, stop=("X",))
    )
    body = rig.sent.body
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.2, 64, 0.9)
    assert (body["stop_sequences"], "stop" in body) == (["X"], False)


async def test_options_set_the_default_max_tokens_and_the_version(make_rig: MakeRig) -> None:
    rig = make_rig(max_tokens=1024.0, version="2099-01-01")  # as the config loads them
    await rig.provider.complete(HELLO)
    assert repr(rig.sent.body["max_tokens"]) == "1024"  # an integer, as the API requires
    assert rig.sent.headers["anthropic-version"] == "2099-01-01"


async def test_requests_carry_the_api_key_and_the_default_version(rig: Rig) -> None:
    await rig.provider.complete(HELLO)
    assert (rig.fake.keys_seen, rig.sent.headers["anthropic-version"]) == ([KEY], "2023-06-01")
    assert rig.sent.headers["Content-Type"] == "application/json"
    assert "Authorization" not in rig.sent.headers


async def test_request_headers_are_forwarded_but_never_replace_ours(rig: Rig) -> None:
    extra = (("x-request-id", "req-42"), ("X-Api-Key", "stolen"), ("anthropic-version", "1"))
    await rig.provider.complete(ChatRequest(model="m", messages=HELLO.messages, headers=extra))
    assert rig.sent.headers["x-request-id"] == "req-42"
    assert rig.sent.headers.getall("x-api-key") == [KEY]
    assert rig.sent.headers.getall("anthropic-version") == ["2023-06-01"]


# -- unary replies ---------------------------------------------------------------------------


async def test_complete_joins_every_text_block_and_skips_the_others(rig: Rig) -> None:
    tool: dict[str, object] = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    rig.fake.blocks = [{"type": "text", "text": "Hi, "}, tool, {"type": "text", "text": "you"}]
    rig.fake.model = "claude-sonnet-4-5-20250929"
    response = await rig.provider.complete(HELLO)
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
async def test_stop_reason_maps_to_our_finish_reason(rig: Rig, stop_reason: str, ours: str) -> None:
    rig.fake.finish_reason = stop_reason
    assert (await rig.provider.complete(HELLO)).finish_reason == ours
    assert (await rig.stream())[-1].finish_reason == ours


async def test_usage_counts_cache_reads_and_writes_as_prompt_tokens(rig: Rig) -> None:
    rig.fake.usage = FakeUsage(100, 7, cached_tokens=60, cache_creation_tokens=30)
    assert (await rig.provider.complete(HELLO)).usage == Usage(100, 7, 107, 60, 30)


# -- streams ---------------------------------------------------------------------------------


async def test_stream_yields_deltas_then_one_final_chunk_with_all_usage(rig: Rig) -> None:
    rig.fake.usage = FakeUsage(50, 9, cached_tokens=20, cache_creation_tokens=5)
    *deltas, final = await rig.stream()  # the fake sends a ping before the deltas
    assert [c.delta for c in deltas] == rig.fake.deltas
    assert all(c.id.startswith("msg_") and c.model == "claude-sonnet-4-5" for c in deltas)
    assert all(c.finish_reason is None and c.usage is None for c in deltas)
    assert (final.delta, final.finish_reason, final.id) == ("", "stop", deltas[0].id)
    # Input and cache counts come from message_start, the output count from message_delta.
    assert final.usage == Usage(50, 9, 59, 20, 5)


async def test_stream_ignores_pings_unknown_events_and_non_text_deltas(rig: Rig) -> None:
    thinking = delta("hmm", "thinking_delta", "thinking")
    tool_input = delta('{"a": 1', "input_json_delta", "partial_json")
    future: dict[str, object] = {"type": "some_future_event", "data": 1}
    events = [PING, START, PING, thinking, future, delta("Hi"), tool_input, delta(" there")]
    rig.fake.fail_next(raw_stream(*events))
    assert [c.delta for c in await rig.stream()] == ["Hi", " there", ""]


async def test_stream_takes_input_counts_repeated_in_message_delta(rig: Rig) -> None:
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 3}}}
    late = {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 2}
    rig.fake.fail_next(raw_stream(start, {"type": "message_delta", "delta": {}, "usage": late}))
    assert (await rig.stream())[-1].usage == Usage(14, 2, 16, 4, 0)


@pytest.mark.parametrize("how", ["eof", "cut"])
async def test_stream_ending_without_message_stop_is_interrupted(
    rig: Rig, how: StreamBreak
) -> None:
    rig.fake.fail_next(Fault(break_after=2, break_with=how))
    chunks: list[ChatChunk] = []
    with pytest.raises(StreamInterruptedError):
        await rig.stream(chunks)
    assert [c.delta for c in chunks] == rig.fake.deltas[:2]


@pytest.mark.parametrize(
    ("break_with", "error_type", "kind"),
    [
        ("error_event", "", UpstreamUnavailableError),  # the fake's overloaded_error
        ("error_event", "rate_limit_error", UpstreamRateLimitedError),
        ("malformed", "", UpstreamUnavailableError),
    ],
)
async def test_failure_before_the_first_chunk_is_mapped_not_interrupted(
    rig: Rig, break_with: StreamBreak, error_type: str, kind: type[UpstreamError]
) -> None:
    rig.fake.fail_next(Fault(break_after=0, break_with=break_with, error_type=error_type))
    with pytest.raises(kind) as caught:
        await rig.stream()
    assert not isinstance(caught.value, StreamInterruptedError)


@pytest.mark.parametrize("break_with", ["error_event", "malformed"])
async def test_failure_after_the_first_chunk_interrupts_the_stream(
    rig: Rig, break_with: StreamBreak
) -> None:
    rig.fake.fail_next(Fault(break_after=1, break_with=break_with))
    chunks: list[ChatChunk] = []
    with pytest.raises(StreamInterruptedError, match=r"overloaded_error|malformed"):
        await rig.stream(chunks)
    assert len(chunks) == 1


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
    rig: Rig, streamed: bool, status: int, vendor_type: str, kind: type[UpstreamError]
) -> None:
    rig.fake.fail_next(Fault(status=status, error_message=f"key {KEY} did something"))
    with pytest.raises(kind, match=f"HTTP {status}, type={vendor_type}") as caught:
        await (rig.stream() if streamed else rig.provider.complete(HELLO))
    assert KEY not in str(caught.value)


async def test_400_quotes_the_vendor_message(rig: Rig) -> None:
    rig.fake.fail_next(Fault(status=400, error_message="max_tokens: must be at most 8192"))
    with pytest.raises(UpstreamBadRequestError, match="must be at most 8192"):
        await rig.provider.complete(HELLO)


async def test_429_carries_retry_after(rig: Rig) -> None:
    rig.fake.fail_next(Fault(status=429, headers={"retry-after": "7"}))
    with pytest.raises(UpstreamRateLimitedError) as caught:
        await rig.provider.complete(HELLO)
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "kind"), [(529, UpstreamUnavailableError), (429, UpstreamRateLimitedError)]
)
async def test_error_body_that_is_not_json_still_maps_by_status(
    rig: Rig, status: int, kind: type[UpstreamError]
) -> None:
    rig.fake.fail_next(Fault(status=status, raw_body=b"<html>Overloaded</html>"))
    with pytest.raises(kind, match=f"HTTP {status}") as caught:
        await rig.provider.complete(HELLO)
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
async def test_malformed_200_body_raises_unavailable(rig: Rig, body: bytes) -> None:
    rig.fake.fail_next(Fault(raw_body=body))
    with pytest.raises(UpstreamUnavailableError, match="malformed reply"):
        await rig.provider.complete(HELLO)


# -- the fake's fidelity, and cancellation ---------------------------------------------------


async def test_fake_rejects_a_system_role_like_the_real_api(
    rig: Rig, session: aiohttp.ClientSession
) -> None:
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}
    async with session.post(rig.fake.base_url + "/v1/messages", json=body) as response:
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_cancelling_a_stream_consumer_aborts_the_upstream_stream(rig: Rig) -> None:
    rig.fake.fail_next(Fault(chunk_delay=0.2))
    chunks: list[ChatChunk] = []
    first = asyncio.Event()
    task = asyncio.create_task(rig.stream(chunks, first))
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(rig.fake.client_disconnected.wait(), 5)
    assert len(chunks) < len(rig.fake.deltas)
