"""The Cohere adapter against a loopback fake of the v2 Chat API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from gateway.errors import (
    StreamInterruptedError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.base import ChatChunk, ChatMessage, ChatRequest, Provider, ProviderSettings, Usage
from providers.cohere import SPEC, CohereProvider
from providers.keys import KeyPool
from tests.fakes.base import StreamBreak
from tests.fakes.cohere_server import FakeCohere, FakeUsage, Fault

KEY = "co-test-0123456789abcdefSECRET"
OTHER_KEY = "co-test-second-key-SECRET"
#: How a stream breaks after its start, and what the error then says.
BROKEN_STREAMS = [("malformed", "malformed reply"), ("error_event", "finish_reason ERROR")]
HELLO = ChatRequest(model="command-a-03-2025", messages=(ChatMessage("user", "Say hello"),))


@pytest.fixture
async def fake() -> AsyncIterator[FakeCohere]:
    async with FakeCohere() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def make_provider(session: aiohttp.ClientSession, base_url: str, *keys: str) -> CohereProvider:
    keys = keys or (KEY,)
    settings = ProviderSettings(name="cohere-main", kind="cohere", base_url=base_url, api_keys=keys)
    return CohereProvider(settings, session, KeyPool(keys, cooldown=60))


@pytest.fixture
def provider(fake: FakeCohere, session: aiohttp.ClientSession) -> CohereProvider:
    return make_provider(session, fake.base_url + "/")


async def collect(
    provider: CohereProvider, into: list[ChatChunk], received: asyncio.Event | None = None
) -> None:
    async for chunk in provider.stream(HELLO):
        into.append(chunk)
        if received is not None:
            received.set()


def reply(**fields: object) -> bytes:
    body = {"id": "r-1", "finish_reason": "COMPLETE", "message": {"role": "assistant"}} | fields
    return orjson.dumps(body)


# -- identity and wire -----------------------------------------------------------------------


def test_provider_satisfies_the_protocol(provider: CohereProvider) -> None:
    assert isinstance(provider, Provider)
    assert (provider.name, provider.kind) == ("cohere-main", "cohere")
    assert provider.capabilities.streaming
    assert provider.capabilities.stream_usage


def test_spec_describes_the_cohere_kind() -> None:
    assert (SPEC.kind, SPEC.factory, SPEC.env_prefix) == ("cohere", CohereProvider, "COHERE")
    assert SPEC.default_base_url == "https://api.cohere.com"
    assert "command-a-03-2025" in SPEC.default_models


async def test_request_body_sends_only_the_parameters_that_are_set(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    await provider.complete(HELLO)
    assert fake.requests[0].path == "/v2/chat"
    assert fake.requests[0].body == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "Say hello"}],
    }


async def test_request_body_carries_roles_and_every_set_parameter_in_cohere_names(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    roles = ("developer", "system", "user", "assistant", "tool")
    messages = tuple(ChatMessage(role, f"{role} says") for role in roles)
    request = ChatRequest(
        model="m", messages=messages, temperature=0.2, max_tokens=64, top_p=0.9, stop=("END",)
    )
    await provider.complete(request)
    body = fake.requests[0].body
    wire_roles = ("system", "system", "user", "assistant", "tool")
    assert body["messages"] == [
        {"role": wire, "content": f"{role} says"}
        for wire, role in zip(wire_roles, roles, strict=True)
    ]
    assert (body["temperature"], body["max_tokens"], body["p"]) == (0.2, 64, 0.9)
    assert body["stop_sequences"] == ["END"]
    assert {"top_p", "stop", "stream"}.isdisjoint(body)


async def test_stream_request_sets_stream_true(provider: CohereProvider, fake: FakeCohere) -> None:
    await collect(provider, [])
    assert fake.requests[0].body["stream"] is True


async def test_requests_carry_the_bearer_key_that_request_headers_cannot_replace(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    headers = (("authorization", "Bearer stolen"), ("x-request-id", "req-42"))
    await provider.complete(ChatRequest(model="m", messages=HELLO.messages, headers=headers))
    recorded = fake.requests[0].headers
    assert recorded.getall("Authorization") == [f"Bearer {KEY}"]
    assert recorded["X-Request-Id"] == "req-42"
    assert recorded["Content-Type"] == "application/json"


# -- unary replies ---------------------------------------------------------------------------


async def test_complete_returns_id_requested_model_content_and_billed_usage(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.usage = FakeUsage(prompt_tokens=30, completion_tokens=7, cached_tokens=16)
    response = await provider.complete(HELLO)
    assert (response.id, response.model) == (fake.reply_id, "command-a-03-2025")
    assert (response.content, response.finish_reason) == ("Hello from fake Cohere", "stop")
    assert response.usage == Usage(30, 7, 37, cached_tokens=16)


async def test_complete_joins_the_text_items_and_skips_thinking(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    items = [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "Hel"}]
    items.append({"type": "text", "text": "lo"})
    fake.fail_next(Fault(raw_body=reply(message={"role": "assistant", "content": items})))
    assert (await provider.complete(HELLO)).content == "Hello"


@pytest.mark.parametrize(
    ("cohere", "ours"),
    [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"),
     ("TOOL_CALL", "tool_calls"), ("SOMETHING_NEW", "something_new")],
)  # fmt: skip
async def test_finish_reasons_are_mapped(
    provider: CohereProvider, fake: FakeCohere, cohere: str, ours: str
) -> None:
    fake.finish_reason = cohere
    assert (await provider.complete(HELLO)).finish_reason == ours


@pytest.mark.parametrize("reason", ["ERROR", "TIMEOUT"])
async def test_failed_generation_raises_unavailable(
    provider: CohereProvider, fake: FakeCohere, reason: str
) -> None:
    fake.finish_reason = reason
    with pytest.raises(UpstreamUnavailableError, match=f"finish_reason {reason}"):
        await provider.complete(HELLO)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"billed_units": {"input_tokens": 9, "output_tokens": 4},
          "tokens": {"input_tokens": 80, "output_tokens": 6}}, Usage(9, 4, 13)),
        ({"tokens": {"input_tokens": 80, "output_tokens": 6}, "cached_tokens": 64},
         Usage(80, 6, 86, cached_tokens=64)),
        ({"billed_units": {"input_tokens": 9.0, "output_tokens": 4.0}}, Usage(9, 4, 13)),
        (None, Usage()),
    ],
    ids=["billed-units-win", "tokens-when-not-billed", "numbers-as-floats", "no-usage"],
)  # fmt: skip
async def test_usage_prefers_billed_units_and_falls_back_to_tokens(
    provider: CohereProvider, fake: FakeCohere, usage: object, expected: Usage
) -> None:
    fake.fail_next(Fault(raw_body=reply(usage=usage)))
    assert (await provider.complete(HELLO)).usage == expected


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"id": "r-1", "finish_reason": "COMPLETE"}',
     reply(message={"content": "text"}), reply(message={"content": [{"type": "text", "text": 5}]}),
     reply(usage={"billed_units": {"input_tokens": "many"}}),
     reply(usage={"billed_units": {"input_tokens": 1.5}})],
)  # fmt: skip
async def test_malformed_200_body_raises_unavailable(
    provider: CohereProvider, fake: FakeCohere, body: bytes
) -> None:
    fake.fail_next(Fault(raw_body=body))
    with pytest.raises(UpstreamUnavailableError, match="malformed reply"):
        await provider.complete(HELLO)


# -- streams ---------------------------------------------------------------------------------


async def test_stream_yields_deltas_then_one_final_chunk_with_finish_reason_and_usage(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.finish_reason = "MAX_TOKENS"
    chunks: list[ChatChunk] = []
    await collect(provider, chunks)
    *deltas, final = chunks
    assert [c.delta for c in deltas] == fake.deltas
    assert all(c.finish_reason is None and c.usage is None for c in deltas)
    assert {(c.id, c.model) for c in chunks} == {(fake.reply_id, "command-a-03-2025")}
    assert (final.delta, final.finish_reason) == ("", "length")
    assert final.usage == Usage(12, 5, 17, cached_tokens=4)


@pytest.mark.parametrize(
    ("event_lines", "type_fields", "done_marker"),
    [(False, True, False), (True, False, False), (True, True, True)],
    ids=["type-field-only", "event-line-only", "done-after-message-end"],
)
async def test_stream_is_read_whichever_way_events_are_typed(
    provider: CohereProvider, fake: FakeCohere, event_lines: bool, type_fields: bool,
    done_marker: bool,
) -> None:  # fmt: skip
    fake.event_lines, fake.type_fields, fake.done_marker = event_lines, type_fields, done_marker
    chunks: list[ChatChunk] = []
    await collect(provider, chunks)
    assert "".join(c.delta for c in chunks) == fake.reply
    assert chunks[-1].finish_reason == "stop"


async def test_stream_ignores_tool_citation_debug_and_unknown_events(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.extra_events = [
        fake.event("tool-plan-delta", {"delta": {"message": {"tool_plan": "I will"}}}),
        fake.event("citation-start", {"index": 0, "delta": {"message": {"citations": {}}}}),
        fake.event("citation-end", {"index": 0}),
        fake.event("debug", {"prompt": "secret prompt"}),
        fake.event("something-new", {"delta": {"message": {"content": {"text": "no"}}}}),
    ]
    chunks: list[ChatChunk] = []
    await collect(provider, chunks)
    assert [c.delta for c in chunks[:-1]] == fake.deltas


@pytest.mark.parametrize("how", ["eof", "cut"])
async def test_stream_ending_without_message_end_raises_interrupted(
    provider: CohereProvider, fake: FakeCohere, how: StreamBreak
) -> None:
    fake.fail_next(Fault(break_after=2, break_with=how))
    chunks: list[ChatChunk] = []
    with pytest.raises(StreamInterruptedError):
        await collect(provider, chunks)
    assert [c.delta for c in chunks] == fake.deltas[:2]


@pytest.mark.parametrize(("how", "said"), BROKEN_STREAMS)
async def test_broken_stream_after_the_first_chunk_raises_interrupted(
    provider: CohereProvider, fake: FakeCohere, how: StreamBreak, said: str
) -> None:
    fake.fail_next(Fault(break_after=1, break_with=how))
    chunks: list[ChatChunk] = []
    with pytest.raises(StreamInterruptedError, match=said):
        await collect(provider, chunks)
    assert len(chunks) == 1


@pytest.mark.parametrize(("how", "said"), BROKEN_STREAMS)
async def test_broken_stream_before_any_chunk_raises_unavailable_not_interrupted(
    provider: CohereProvider, fake: FakeCohere, how: StreamBreak, said: str
) -> None:
    fake.fail_next(Fault(break_after=0, break_with=how))
    with pytest.raises(UpstreamUnavailableError, match=said) as caught:
        await collect(provider, [])
    assert not isinstance(caught.value, StreamInterruptedError)


# -- HTTP errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, UpstreamBadRequestError), (422, UpstreamBadRequestError), (404, UpstreamNotFoundError)],
)
async def test_request_errors_quote_cohere_message_with_the_key_redacted(
    provider: CohereProvider, fake: FakeCohere, status: int, error: type[Exception]
) -> None:
    fake.fail_next(Fault(status=status, error_message=f"invalid request: key {KEY} model 'x'"))
    with pytest.raises(error, match=f"HTTP {status}") as caught:
        await provider.complete(HELLO)
    assert str(caught.value).endswith(": invalid request: key [redacted] model 'x'")


@pytest.mark.parametrize(
    ("status", "message"),
    [(401, "invalid api token"), (402, "billing limit reached"), (403, "forbidden"),
     (498, "invalid api token"), (498, "some other wording")],
)  # fmt: skip
async def test_rejected_key_raises_auth_error_and_rests_the_key(
    fake: FakeCohere, session: aiohttp.ClientSession, status: int, message: str
) -> None:
    provider = make_provider(session, fake.base_url, KEY, OTHER_KEY)
    fake.fail_next(Fault(status=status, error_message=f"{message}: {KEY}"))
    with pytest.raises(UpstreamAuthError, match=f"HTTP {status}") as caught:
        await provider.complete(HELLO)
    assert message.split()[0] not in str(caught.value)
    assert KEY not in str(caught.value)
    await provider.complete(HELLO)
    await provider.complete(HELLO)
    assert fake.keys_seen == [KEY, OTHER_KEY, OTHER_KEY]


async def test_429_raises_rate_limited_with_retry_after(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.fail_next(Fault(status=429, headers={"retry-after": "7"}))
    with pytest.raises(UpstreamRateLimitedError) as caught:
        await provider.complete(HELLO)
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    "fault",
    [*(Fault(status=status, error_message="internal detail") for status in (499, 500, 503)),
     Fault(status=502, raw_body=b"<html>internal detail</html>")],
    ids=["499", "500", "503", "502-not-json"],
)  # fmt: skip
async def test_other_statuses_raise_unavailable_without_quoting_the_body(
    provider: CohereProvider, fake: FakeCohere, fault: Fault
) -> None:
    fake.fail_next(fault)
    with pytest.raises(UpstreamUnavailableError, match=f"HTTP {fault.status}") as caught:
        await provider.complete(HELLO)
    assert "internal detail" not in str(caught.value)


# -- cancellation ----------------------------------------------------------------------------


async def test_cancelling_a_stream_consumer_aborts_the_upstream_stream(
    provider: CohereProvider, fake: FakeCohere
) -> None:
    fake.fail_next(Fault(chunk_delay=0.2))
    chunks: list[ChatChunk] = []
    first = asyncio.Event()
    task = asyncio.create_task(collect(provider, chunks, first))
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(fake.client_disconnected.wait(), 5)
    assert len(chunks) < len(fake.deltas)
