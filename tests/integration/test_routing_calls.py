"""Calls through model groups, end to end over gRPC and JSON, against loopback deployments with
different latencies, prices and quotas."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import orjson
import pytest

from gateway.pipeline.pricing import Price
from gateway.pipeline.routing.groups import Capacity, Member, ModelGroup, RoutingConfig
from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.base import Fault
from tests.fakes.openai_server import FakeOpenAI

MODEL = "gpt-4o-mini"


def mock(name: str, latency_ms: float = 0.0) -> ProviderSettings:
    return ProviderSettings(
        name=name, kind="mock", models=("m",), options={"latency_ms": latency_ms}
    )


def openai(name: str, fake: FakeOpenAI) -> ProviderSettings:
    return ProviderSettings(
        name=name, kind="openai", base_url=fake.base_url, api_keys=("k",), models=(MODEL,)
    )


def routing(*groups: ModelGroup) -> RoutingConfig:
    return RoutingConfig({g.name: g for g in groups})


def ask(model: str = "chat", text: str = "hi", **fields: Any) -> pb.CompleteRequest:
    return pb.CompleteRequest(
        model=model, messages=[pb.Message(role="user", content=text)], **fields
    )


async def providers_of(gw: RunningGateway, calls: int, *, at_once: int = 50) -> Counter[str]:
    """Who answered `calls` gRPC calls to "chat", `at_once` at a time."""
    answered: Counter[str] = Counter()
    for start in range(0, calls, at_once):
        replies = await asyncio.gather(
            *(gw.stub.Complete(ask()) for _ in range(min(at_once, calls - start)))
        )
        answered.update(reply.provider for reply in replies)
    return answered


async def load(
    call: Callable[[], Awaitable[str]], workers: int, seconds: float
) -> list[tuple[float, str]]:
    """`workers` callers calling back to back for `seconds`: (when it ended, who answered)."""
    done: list[tuple[float, str]] = []
    until = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < until:
            provider = await call()
            done.append((time.monotonic(), provider))

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI]]:
    async with FakeOpenAI() as first, FakeOpenAI() as second:
        yield first, second


# -- weighted ------------------------------------------------------------------------------------


async def test_weighted_three_to_one_over_2000_grpc_calls_lands_within_5_percent(
    start_gateway: StartGateway,
) -> None:
    group = ModelGroup("chat", members=(Member("a", "m", 3.0), Member("b", "m", 1.0)))
    gw = await start_gateway(providers=(mock("a"), mock("b")), routing=routing(group))

    answered = await providers_of(gw, 2000)

    assert set(answered) == {"a", "b"}
    assert abs(answered["a"] / 2000 - 0.75) <= 0.75 * 0.05


async def test_a_json_answer_says_how_it_was_routed_in_headers_and_attempts(
    start_gateway: StartGateway,
) -> None:
    group = ModelGroup("chat", members=(Member("a", "m", 3.0), Member("b", "m", 1.0)))
    gw = await start_gateway(providers=(mock("a"), mock("b")), routing=routing(group))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}

    async with gw.http.post(f"{gw.http_url}/v1/complete", json=body) as response:
        reply = orjson.loads(await response.read())
        header = response.headers.get("x-gateway-route", "")

    assert response.status == 200
    assert reply["provider"] in ("a", "b")
    (attempt,) = reply["attempts"]
    assert attempt["routing"] == header
    assert header.startswith(f"group chat (weighted): {reply['provider']}/m first (weighted)")


# -- latency -------------------------------------------------------------------------------------


async def test_latency_sends_most_calls_to_the_fast_deployment_and_follows_it_when_it_slows(
    start_gateway: StartGateway,
    fakes: tuple[FakeOpenAI, FakeOpenAI],
    capsys: pytest.CaptureFixture[str],
) -> None:
    fast, slow = fakes
    fast.persistent_fault = Fault(delay=0.005)
    slow.persistent_fault = Fault(delay=0.05)
    group = ModelGroup("chat", "latency", (Member("fast", MODEL), Member("slow", MODEL)))
    gw = await start_gateway(
        providers=(openai("fast", fast), openai("slow", slow)), routing=routing(group)
    )

    async def call() -> str:
        reply: pb.CompleteResponse = await gw.stub.Complete(ask())
        return reply.provider

    await load(call, workers=4, seconds=0.5)  # warm-up: both measured
    after = Counter(p for _, p in await load(call, workers=4, seconds=1.5))
    assert after["fast"] / after.total() >= 0.9
    assert after["slow"] >= 1  # exploration: a trickle still measures it

    fast.persistent_fault = Fault(delay=0.1)
    slowed = time.monotonic()
    moved_at = None
    window: list[str] = []
    while moved_at is None and time.monotonic() < slowed + 10:
        for _, provider in await load(call, workers=8, seconds=0.25):
            window = [*window[-39:], provider]
        if len(window) == 40 and window.count("slow") >= 30:
            moved_at = time.monotonic() - slowed
    assert moved_at is not None, "traffic did not move to the faster deployment within 10 s"
    with capsys.disabled():
        share = after["fast"] / after.total()
        print(
            f"\nlatency routing: {share:.1%} to the fast one; "
            f"traffic moved {moved_at:.1f} s after it slowed"
        )


# -- least busy ----------------------------------------------------------------------------------


async def test_least_busy_keeps_calls_in_flight_balanced_when_one_deployment_stalls(
    start_gateway: StartGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    steady, stalled = fakes
    steady.persistent_fault = Fault(delay=0.01)
    stalled.persistent_fault = Fault(delay=1.0)
    group = ModelGroup("chat", "least_busy", (Member("steady", MODEL), Member("stalled", MODEL)))
    gw = await start_gateway(
        providers=(openai("steady", steady), openai("stalled", stalled)), routing=routing(group)
    )
    workers = 8

    async def call() -> str:
        reply: pb.CompleteResponse = await gw.stub.Complete(ask())
        return reply.provider

    answered = Counter(p for _, p in await load(call, workers=workers, seconds=1.5))

    # The stalled one is picked only while it holds no more calls than the steady one, so at
    # most half the callers at a time (1 s a call): two rounds of 4 in 1.5 s. Weighted would
    # have sent it half the calls, and soon every caller would wait on it.
    assert answered["stalled"] <= workers + 2  # 8, and a margin for a slow machine's timing
    assert answered["steady"] >= 10 * answered["stalled"]


# -- cost ----------------------------------------------------------------------------------------


async def test_cost_picks_the_cheapest_healthy_deployment_then_the_next_when_its_circuit_opens(
    start_gateway: StartGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    cheap, pricey = fakes
    group = ModelGroup("chat", "cost", (Member("pricey", MODEL), Member("cheap", MODEL)))
    gw = await start_gateway(
        providers=(openai("cheap", cheap), openai("pricey", pricey)),
        routing=routing(group),
        prices={
            f"cheap/{MODEL}": Price(input=0.15, output=0.6),
            f"pricey/{MODEL}": Price(input=2.5, output=10.0),
        },
        circuit_breaker_fail_max=2,
    )

    first = [await gw.stub.Complete(ask()) for _ in range(5)]
    assert {reply.provider for reply in first} == {"cheap"}
    assert "(cheapest)" in first[0].attempts[0].routing

    cheap.persistent_fault = Fault(status=500)
    failing = [await gw.stub.Complete(ask()) for _ in range(2)]  # each retried on the next
    assert [[a.provider for a in r.attempts] for r in failing] == [["cheap", "pricey"]] * 2
    after = await gw.stub.Complete(ask())

    assert after.provider == "pricey"
    (attempt,) = after.attempts
    assert "skipped cheap/gpt-4o-mini (circuit_open)" in attempt.routing


# -- capacity ------------------------------------------------------------------------------------


async def test_only_when_every_member_is_at_capacity_does_the_caller_get_resource_exhausted(
    start_gateway: StartGateway,
) -> None:
    one_a_minute = Capacity(rpm=1)
    group = ModelGroup(
        "chat", members=(Member("a", "m", 1.0, one_a_minute), Member("b", "m", 1.0, one_a_minute))
    )
    gw = await start_gateway(providers=(mock("a"), mock("b")), routing=routing(group))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}

    served = {(await gw.stub.Complete(ask())).provider for _ in range(2)}
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await gw.stub.Complete(ask())
    async with gw.http.post(f"{gw.http_url}/v1/complete", json=body) as response:
        status, retry_after = response.status, response.headers.get("Retry-After", "")

    assert served == {"a", "b"}  # the second call went to the member with room
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status == 429
    assert 1 <= int(retry_after) <= 60


# -- visible state -------------------------------------------------------------------------------


async def test_provider_status_shows_each_members_in_flight_latency_capacity_and_choices(
    start_gateway: StartGateway,
) -> None:
    group = ModelGroup(
        "chat",
        "latency",
        (Member("a", "m", 1.0, Capacity(rpm=6000)), Member("b", "m")),
    )
    gw = await start_gateway(providers=(mock("a", 1), mock("b", 20)), routing=routing(group))
    await providers_of(gw, 40, at_once=1)

    reply: pb.ProviderStatusResponse = await gw.stub.ProviderStatus(
        pb.ProviderStatusRequest(provider="a")
    )
    async with gw.http.get(f"{gw.http_url}/v1/providers/status?provider=a") as response:
        shown = orjson.loads(await response.read())

    (member,) = reply.providers[0].members
    assert (member.model, list(member.groups), member.in_flight) == ("m", ["chat"], 0)
    assert 0.001 <= member.latency.ToNanoseconds() / 1e9 < 0.02
    assert not member.HasField("time_to_first_token")
    assert 0 < member.capacity_used["rpm"] <= 1
    assert member.chosen["chat/latency/fastest"] >= 30
    chosen_json = shown["providers"][0]["members"][0]["chosen"]  # int64: strings in JSON
    assert {label: int(count) for label, count in chosen_json.items()} == dict(member.chosen)


# -- retries, fallbacks, streams, embeddings, cache ----------------------------------------------


async def test_a_failed_member_is_retried_on_another_and_fallbacks_come_after_the_group(
    start_gateway: StartGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    first, second = fakes
    first.persistent_fault = second.persistent_fault = Fault(status=503)
    group = ModelGroup("chat", members=(Member("first", MODEL), Member("second", MODEL)))
    gw = await start_gateway(
        providers=(openai("first", first), openai("second", second), mock("spare")),
        routing=routing(group),
        fallbacks={"chat": ("spare/m",)},
        primary_retries=1,
    )

    reply: pb.CompleteResponse = await gw.stub.Complete(ask())

    tried = [(a.provider, pb.AttemptOutcome.Name(a.outcome)) for a in reply.attempts]
    assert sorted(tried[:2]) == [
        ("first", "ATTEMPT_OUTCOME_ERROR"),
        ("second", "ATTEMPT_OUTCOME_ERROR"),
    ]  # each member once before any again, then the fallback
    assert tried[2:] == [("spare", "ATTEMPT_OUTCOME_SUCCESS")]
    assert reply.provider == "spare"


async def test_a_stream_through_a_group_feeds_its_time_to_first_token_back(
    start_gateway: StartGateway,
) -> None:
    group = ModelGroup("chat", "latency", (Member("a", "m"),))
    gw = await start_gateway(providers=(mock("a", 5),), routing=routing(group))
    asked = pb.StreamCompleteRequest(model="chat", messages=[pb.Message(role="user", content="hi")])

    replies = [reply async for reply in gw.stub.StreamComplete(asked)]
    status: pb.ProviderStatusResponse = await gw.stub.ProviderStatus(
        pb.ProviderStatusRequest(provider="a")
    )

    (attempt,) = replies[-1].attempts
    assert attempt.routing.startswith("group chat (latency): a/m first")
    (member,) = status.providers[0].members
    assert member.in_flight == 0
    assert 0.004 <= member.time_to_first_token.ToNanoseconds() / 1e9 < 0.1
    assert not member.HasField("latency")


async def test_embeddings_go_through_a_group_too(start_gateway: StartGateway) -> None:
    group = ModelGroup("vectors", members=(Member("a", "m"), Member("b", "m")))
    gw = await start_gateway(providers=(mock("a"), mock("b")), routing=routing(group))

    replies = [
        await gw.stub.Embed(pb.EmbedRequest(model="vectors", inputs=[f"hello {i}"]))
        for i in range(20)  # each its own: embeddings are cached
    ]

    assert {reply.provider for reply in replies} == {"a", "b"}
    assert replies[0].attempts[0].routing.startswith("group vectors (weighted)")


async def test_a_cached_answer_of_a_group_serves_whichever_member_would_be_next(
    start_gateway: StartGateway,
) -> None:
    group = ModelGroup("chat", members=(Member("a", "m"), Member("b", "m")))
    gw = await start_gateway(
        providers=(mock("a"), mock("b")), routing=routing(group), cache_backend="memory"
    )

    replies = [await gw.stub.Complete(ask(temperature=0)) for _ in range(10)]

    assert not replies[0].cached
    assert all(reply.cached for reply in replies[1:])
    assert {reply.provider for reply in replies} == {replies[0].provider}


async def test_a_member_coming_round_again_waits_as_any_retry_of_a_route_does(
    start_gateway: StartGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    only, _ = fakes
    busy = Fault(status=429, headers={"retry-after-ms": "150"})
    only.fail_next(busy, busy)
    group = ModelGroup("chat", members=(Member("only", MODEL),))
    gw = await start_gateway(
        providers=(openai("only", only),), routing=routing(group), primary_retries=2
    )

    started = time.monotonic()
    reply: pb.CompleteResponse = await gw.stub.Complete(ask())

    outcomes = [pb.AttemptOutcome.Name(a.outcome) for a in reply.attempts]
    assert outcomes == ["ATTEMPT_OUTCOME_RATE_LIMITED"] * 2 + ["ATTEMPT_OUTCOME_SUCCESS"]
    assert time.monotonic() - started >= 0.3  # the vendor's retry-after, twice
