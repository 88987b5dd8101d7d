"""Members' capacity in a real Redis, shared by three replicas as three gateways would share it."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.pipeline.routing.capacity import (
    Admission,
    CapacityGate,
    capacity_limiter,
    soonest_retry,
)
from gateway.pipeline.routing.features import RequestFeatures
from gateway.pipeline.routing.groups import Capacity, Member, ModelGroup
from gateway.pipeline.routing.router import Router
from gateway.pipeline.routing.state import DeploymentStates
from gateway.tenancy.limits_redis import RedisRateLimiter
from tests.redis_support import (  # noqa: F401  (pytest registers imported fixtures)
    gateway_client,
    redis_prefix_fixture,
    redis_url_fixture,
)
from tests.routing_support import group, make_router, plain

QUOTA = Member("quota", "m", 3.0, Capacity(rpm=60))  # a 60-rpm deployment, most of the weight
OVERFLOW = Member("overflow", "m")  # the group's other deployment, no quota
GROUP = group("g", "weighted", QUOTA, OVERFLOW)
FEATURES = RequestFeatures(prompt_tokens=50, max_tokens=50)
CALLS = 300


@dataclass
class Replica:
    """One gateway's routing: its own state and router, the shared Redis counts."""

    router: Router
    gate: CapacityGate
    states: DeploymentStates


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exits:
        yield exits


async def replica(
    groups: Iterable[ModelGroup],
    redis_url: str,
    prefix: str,
    stack: AsyncExitStack,
    **gate_options: Any,
) -> Replica:
    groups = tuple(groups)
    client = await stack.enter_async_context(gateway_client(redis_url, timeout=2.0))
    limiter = capacity_limiter(groups, redis=client, timeout=2.0, prefix=prefix)
    assert isinstance(limiter, RedisRateLimiter)
    stack.push_async_callback(limiter.aclose)
    states = DeploymentStates()
    gate = CapacityGate(limiter, states, **gate_options)
    return Replica(make_router(*groups, states=states), gate, states)


async def place(replica: Replica, models: Iterable[str]) -> tuple[Member | None, list[Admission]]:
    """What dispatch will do: walk each model's tries (the group, then its fallbacks) until a
    member admits the call; the member (None when all are full) and every refusal."""
    refusals: list[Admission] = []
    for model in models:
        routing = replica.router.route(model, plain(FEATURES))
        assert routing is not None
        for member in routing.tries(0):
            admission = await replica.gate.acquire(member, FEATURES)
            if admission.allowed:
                replica.gate.release(member, latency=0.01, stream=False)
                return member, refusals
            refusals.append(admission)
    return None, refusals


async def test_three_replicas_let_a_burst_take_one_slice_of_a_60_rpm_deployment(
    redis_url: str, redis_prefix: str, stack: AsyncExitStack
) -> None:
    at = lambda: 6000.0  # noqa: E731  # the replicas' shared wall clock, still: one slice
    replicas = [
        await replica([GROUP], redis_url, redis_prefix, stack, wall_clock=at) for _ in range(3)
    ]

    placed = await asyncio.gather(*(place(replicas[i % 3], ["g"]) for i in range(CALLS)))

    sent = Counter(member.deployment if member else "refused" for member, _ in placed)
    assert sent == {"quota": 3, "overflow": CALLS - 3}  # 60 rpm: 3 calls a 3-s slice
    # once a replica has been refused, it skips the full deployment without asking Redis
    skipped = [replicas[0].router.route("g", plain(FEATURES)) for _ in range(10)]
    assert all(r is not None and r.order == (OVERFLOW,) for r in skipped)


async def test_three_replicas_together_keep_a_deployment_to_its_rate(
    redis_url: str, redis_prefix: str, stack: AsyncExitStack
) -> None:
    # 1,200 rpm in slices of 0.25 s (5 calls each), so a second and a half shows the rate
    member = Member("quota", "m", 3.0, Capacity(rpm=1200))
    paced = group("g", "weighted", member, OVERFLOW)
    replicas = [
        await replica([paced], redis_url, redis_prefix, stack, pace_seconds=0.25) for _ in range(3)
    ]
    started = time.time()

    async def load(one: Replica) -> list[Member | None]:
        sent = []
        while time.time() < started + 1.5:
            sent.append((await place(one, ["g"]))[0])
            await asyncio.sleep(0.005)
        return sent

    sent = [m for calls in await asyncio.gather(*map(load, replicas)) for m in calls]
    slices = math.floor(time.time() / 0.25) - math.floor(started / 0.25) + 1

    to_quota = sent.count(member)
    assert 5 * (slices - 2) <= to_quota <= 5 * slices, (to_quota, slices)
    assert None not in sent  # the overflow took every other call
    assert sent.count(OVERFLOW) > to_quota


async def test_only_when_the_group_and_its_fallback_are_full_is_the_call_refused(
    redis_url: str, redis_prefix: str, stack: AsyncExitStack
) -> None:
    primary = group("primary", "weighted", Member("a", "m", capacity=Capacity(rpm=40)))
    fallback = group("fallback", "weighted", Member("b", "m", capacity=Capacity(tpm=250)))
    at = lambda: 6000.0  # noqa: E731  # one slice: 40 rpm is 2 calls in it
    replicas = [
        await replica([primary, fallback], redis_url, redis_prefix, stack, wall_clock=at)
        for _ in range(3)
    ]
    chain = ["primary", "fallback"]

    placed = [await place(replicas[i % 3], chain) for i in range(5)]

    assert [m.deployment if m else None for m, _ in placed] == ["a", "a", "b", "b", None]
    refusals = placed[-1][1]
    assert [r.limit for r in refusals] == ["rpm", "tpm"]
    # the slice has room in 3 s; the tokens' window only once the minute's count ages out
    assert refusals[0].retry_after == 3.0
    assert refusals[1].retry_after > 3.0
    assert soonest_retry(refusals) == 3.0


async def test_token_settlements_on_one_replica_make_room_on_the_others(
    redis_url: str, redis_prefix: str, stack: AsyncExitStack
) -> None:
    member = Member("t", "m", capacity=Capacity(tpm=300))
    tokens = group("tokens", "weighted", member)
    first, second = [await replica([tokens], redis_url, redis_prefix, stack) for _ in range(2)]

    held = [await first.gate.acquire(member, FEATURES) for _ in range(3)]  # 3 x 100 of 300
    refused = await second.gate.acquire(member, FEATURES)
    for admission in held[:2]:  # two used 10 tokens each: 180 back
        await first.gate.settle(member, admission, used_tokens=10)
    admitted = await second.gate.acquire(member, FEATURES)

    assert [a.tokens for a in held] == [100, 100, 100]
    assert (refused.allowed, admitted.allowed) == (False, True)


async def test_capacity_is_admitted_and_counted_when_redis_does_not_answer() -> None:
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    failures: list[int] = []
    async with gateway_client(f"redis://127.0.0.1:{port}/0", timeout=0.2) as client:
        limiter = capacity_limiter(
            [GROUP], redis=client, timeout=0.2, on_failure=lambda: failures.append(1)
        )
        gate = CapacityGate(limiter, DeploymentStates())
        try:
            admissions = [await gate.acquire(QUOTA, FEATURES) for _ in range(3)]
        finally:
            await limiter.aclose()

    assert [a.allowed for a in admissions] == [True, True, True]
    assert len(failures) == 3
