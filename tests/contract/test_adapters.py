"""One contract, every adapter: each against a loopback fake of its vendor's real wire format."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.pipeline.pricing import DEFAULT_PRICES, PriceTable
from providers.base import Provider
from providers.errors import (
    StreamInterruptedError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.registry import ADAPTERS
from providers.types import (
    ChatRequest,
    Finish,
    ImagePart,
    Message,
    Meta,
    StreamEvent,
    TextDelta,
    TextPart,
)
from tests.contract.cases import CASES, REPLY, AdapterCase
from tests.contract.harness import chat, collect, deltas, finish, folded
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
    return chat(
        case.model,
        ("system", "Answer in one sentence."),
        ("user", "Say the pangram."),
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


async def test_stream_yields_the_text_then_one_finish(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    events = [e async for e in make(case, fake, session).stream(request(case))]
    assert "".join(deltas(events)) == REPLY
    assert finish(events) == Finish("stop", case.usage)


async def test_stream_says_its_id_and_model_before_its_first_text(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    events = await collect(make(case, fake, session), request(case))
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert any(isinstance(e, Meta) and e.id and e.model for e in events[:first_text])


async def test_stream_folds_into_the_same_answer_as_complete(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    provider = make(case, fake, session)
    whole = await provider.complete(request(case))
    streamed = folded(await collect(provider, request(case)))
    assert (streamed.content, streamed.finish_reason, streamed.usage) == (
        whole.content,
        whole.finish_reason,
        whole.usage,
    )
    assert streamed.model == whole.model


@pytest.mark.parametrize("case", [c for c in CASES if not c.sends_images], ids=str)
async def test_a_non_text_part_is_refused_before_anything_is_sent(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    image = Message("user", (TextPart("What is this?"), ImagePart(url="https://x.test/cat.png")))
    asked = chat(case.model, image)
    provider = make(case, fake, session)
    if provider.capabilities(case.model).image_urls:  # it declares images: they are sent
        await provider.complete(asked)
        assert len(fake.requests) == 1
        return
    with pytest.raises(UpstreamBadRequestError, match=r"(?i)image") as unary:
        await provider.complete(asked)
    with pytest.raises(UpstreamBadRequestError, match=r"(?i)image"):
        await collect(provider, asked)
    assert unary.value.provider == case.kind
    assert fake.requests == []


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


async def collect_deltas(provider: Provider, asked: ChatRequest, into: list[str]) -> None:
    async for event in provider.stream(asked):
        assert not isinstance(event, Finish), "a cut stream must never finish"
        if isinstance(event, TextDelta):
            into.append(event.text)


async def test_stream_reassembles_characters_split_across_network_reads(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.reply = "Grüße aus Köln 👋 ナイス"
    fake.fail_next(Fault(fragment=3))
    events = await collect(make(case, fake, session), request(case))
    assert "".join(deltas(events)) == fake.reply


async def test_malformed_frame_after_the_first_chunk_interrupts_the_stream(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.fail_next(Fault(break_after=1, break_with="malformed"))
    events: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError, match="malformed"):
        await collect(make(case, fake, session), request(case), events)
    assert len(deltas(events)) == 1


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
    events = [e async for e in make(case, fake, session).stream(request(case, timeout=10))]
    assert finish(events).reason == "stop"


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
    while isinstance(first, Meta):
        first = await anext(stream)
    assert isinstance(first, TextDelta)
    await stream.aclose()
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)


async def test_cancelling_a_stream_consumer_aborts_the_upstream_stream(
    case: AdapterCase, fake: VendorFake, session: UpstreamClient
) -> None:
    fake.fail_next(Fault(chunk_delay=0.2))
    events: list[StreamEvent] = []
    first = asyncio.Event()
    provider = make(case, fake, session)
    task = asyncio.create_task(collect(provider, request(case), events, first))
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(fake.client_disconnected.wait(), DISCONNECT_WAIT)
    assert len(deltas(events)) < len(fake.deltas)
