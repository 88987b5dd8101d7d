"""One contract, every adapter: each against a loopback fake of its vendor's real wire format."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.errors import (
    StreamInterruptedError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.pipeline.pricing import DEFAULT_PRICES, PriceTable
from providers.base import ChatChunk, ChatMessage, ChatRequest, Provider
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.registry import ADAPTERS
from tests.contract.cases import CASES, REPLY, AdapterCase
from tests.contract.harness import collect
from tests.fakes.base import Fault, VendorFake

KEY = "sk-contract-0123456789"
DISCONNECT_WAIT = 5.0


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> AdapterCase:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def fake(case: AdapterCase) -> AsyncIterator[VendorFake]:
    async with case.fake() as server:
        yield server


def make(
    case: AdapterCase,
    fake: VendorFake,
    session: UpstreamClient,
    keys: tuple[str, ...] = (KEY,),
    cooldown: float = 60.0,
) -> Provider:
    settings = case.settings(fake, keys)
    return ADAPTERS[case.kind].factory(settings, session, KeyPool(keys, cooldown=cooldown))


def request(case: AdapterCase, timeout: float | None = 10.0) -> ChatRequest:
    return ChatRequest(
        model=case.model,
        messages=(
            ChatMessage("system", "Answer in one sentence."),
            ChatMessage("user", "Say the pangram."),
        ),
        temperature=0.0,
        max_tokens=64,
        timeout=timeout,
    )


async def test_complete_returns_the_text_finish_reason_and_usage(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    answer = await make(case, fake, session).complete(request(case))
    assert answer.content == REPLY
    assert answer.finish_reason == "stop"
    assert answer.usage == case.usage
    assert answer.id


async def test_stream_yields_the_text_then_one_final_chunk(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    chunks = [c async for c in make(case, fake, session).stream(request(case))]
    *deltas, final = chunks
    assert "".join(c.delta for c in deltas) == REPLY
    assert all(c.finish_reason is None for c in deltas)
    assert final.finish_reason == "stop"
    assert final.usage == case.usage


async def test_usage_is_priced_from_the_table(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    answer = await make(case, fake, session).complete(request(case))
    table = PriceTable(DEFAULT_PRICES)
    cost = table.cost(case.kind, case.kind, (answer.model, case.model), answer.usage)
    price = table.lookup(case.kind, case.model)
    if case.kind == "ollama":
        assert price is None
        assert cost == 0.0
    else:
        assert price is not None
        assert cost == pytest.approx(price.cost(case.usage))
        assert cost > 0


STATUS_ERRORS = [
    (400, UpstreamBadRequestError),
    (401, UpstreamAuthError),
    (404, UpstreamNotFoundError),
    (500, UpstreamUnavailableError),
    (529, UpstreamUnavailableError),
]


@pytest.mark.parametrize(("status", "error"), STATUS_ERRORS)
async def test_vendor_error_statuses_map_to_our_errors(
    case: AdapterCase,
    fake: VendorFake,
    session: UpstreamClient,
    status: int,
    error: type[UpstreamError],
) -> None:
    fake.fail_next(Fault(status=status, error_message=f"bad things happened with {KEY}"))
    with pytest.raises(error) as caught:
        await make(case, fake, session).complete(request(case))
    assert KEY not in str(caught.value)
    assert caught.value.provider == case.kind


async def test_rate_limit_carries_the_retry_after(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.fail_next(Fault(status=429, headers={"retry-after": "7"}))
    with pytest.raises(UpstreamRateLimitedError) as caught:
        await make(case, fake, session).complete(request(case))
    assert caught.value.retry_after == pytest.approx(7.0)


async def test_malformed_body_is_unavailable(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.fail_next(Fault(raw_body=b"<html>502 Bad Gateway</html>"))
    with pytest.raises(UpstreamUnavailableError):
        await make(case, fake, session).complete(request(case))


@pytest.mark.parametrize("how", ["eof", "cut"])
async def test_stream_cut_before_the_terminal_event_raises_after_the_text_so_far(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient, how: str
) -> None:
    fake.fail_next(Fault(break_after=2, break_with=how))  # type: ignore[arg-type]
    received: list[str] = []
    with pytest.raises(StreamInterruptedError):
        await collect_deltas(make(case, fake, session), request(case), received)
    assert len(received) <= 2
    assert "".join(received) == "".join(fake.deltas[: len(received)])
    if how == "eof":
        assert len(received) == 2


async def collect_deltas(provider: Provider, chat: ChatRequest, into: list[str]) -> None:
    async for chunk in provider.stream(chat):
        assert chunk.finish_reason is None, "a cut stream must never finish"
        into.append(chunk.delta)


async def test_stream_reassembles_characters_split_across_network_reads(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.reply = "Grüße aus Köln 👋 ナイス"
    fake.fail_next(Fault(fragment=3))
    chunks = await collect(make(case, fake, session), request(case))
    assert "".join(c.delta for c in chunks) == fake.reply


async def test_malformed_frame_after_the_first_chunk_interrupts_the_stream(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.fail_next(Fault(break_after=1, break_with="malformed"))
    chunks: list[ChatChunk] = []
    with pytest.raises(StreamInterruptedError, match="malformed"):
        await collect(make(case, fake, session), request(case), chunks)
    assert len(chunks) == 1


async def test_malformed_frame_before_any_chunk_is_unavailable_not_interrupted(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.fail_next(Fault(break_after=0, break_with="malformed"))
    with pytest.raises(UpstreamUnavailableError, match="malformed") as caught:
        await collect(make(case, fake, session), request(case), [])
    assert not isinstance(caught.value, StreamInterruptedError)


async def test_slow_first_byte_past_the_time_limit_times_out(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.fail_next(Fault(delay=3.0))
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeoutError):
        await make(case, fake, session).complete(request(case, timeout=0.3))
    assert time.perf_counter() - started < 2.0
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)


async def test_slow_first_byte_within_the_time_limit_still_answers(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.fail_next(Fault(delay=0.3))
    chunks = [c async for c in make(case, fake, session).stream(request(case, timeout=10))]
    assert chunks[-1].finish_reason == "stop"


async def test_keys_are_used_round_robin(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    provider = make(case, fake, session, keys=("k1", "k2", "k3"))
    for _ in range(4):
        await provider.complete(request(case))
    assert fake.keys_seen == ["k1", "k2", "k3", "k1"]


async def test_a_key_answered_429_rests_while_the_others_carry_on(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    provider = make(case, fake, session, keys=("k1", "k2"))
    fake.fail_next(Fault(status=429, headers={"retry-after": "30"}))
    with pytest.raises(UpstreamRateLimitedError):
        await provider.complete(request(case))
    for _ in range(3):
        await provider.complete(request(case))
    assert fake.keys_seen == ["k1", "k2", "k2", "k2"]


async def test_cancelling_a_stream_aborts_the_upstream_request(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.fail_next(Fault(chunk_delay=1.0))
    stream = make(case, fake, session).stream(request(case))
    first = await anext(stream)
    assert first.delta
    await stream.aclose()
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)


async def test_cancelling_a_stream_consumer_aborts_the_upstream_stream(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.fail_next(Fault(chunk_delay=0.2))
    chunks: list[ChatChunk] = []
    first = asyncio.Event()
    provider = make(case, fake, session)
    task = asyncio.create_task(collect(provider, request(case), chunks, first))
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)
    assert len(chunks) < len(fake.deltas)
