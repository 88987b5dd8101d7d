"""Members' capacity in memory: requests, tokens and calls in flight, and the start-up warning."""

from __future__ import annotations

import logging

import pytest

from gateway.pipeline.routing.capacity import (
    CONCURRENT_RETRY_AFTER,
    Admission,
    CapacityGate,
    capacity_limiter,
    soonest_retry,
)
from gateway.pipeline.routing.features import RequestFeatures
from gateway.pipeline.routing.groups import Capacity, Member
from gateway.pipeline.routing.state import DeploymentStates
from gateway.tenancy.limits import MemoryRateLimiter
from tests.routing_support import Clock, group

SMALL = RequestFeatures(prompt_tokens=100, max_tokens=200)  # charges 300 tokens


def gate(clock: Clock) -> tuple[CapacityGate, DeploymentStates]:
    states = DeploymentStates(clock=clock)
    return CapacityGate(MemoryRateLimiter(clock=clock), states), states


async def test_a_member_takes_its_rpm_then_says_when_it_has_room() -> None:
    clock = Clock(start=6000.0)  # the start of a window
    capacity_gate, states = gate(clock)
    member = Member("a", "m", capacity=Capacity(rpm=3))

    admitted = [await capacity_gate.acquire(member, SMALL) for _ in range(4)]

    assert [a.allowed for a in admitted] == [True, True, True, False]
    assert admitted[3].limit == "rpm"
    assert admitted[3].retry_after >= 1.0
    assert states.full_for(member) == pytest.approx(admitted[3].retry_after)
    assert states.of(member).in_flight == 3  # the refused call holds no slot


async def test_tokens_are_charged_as_expected_and_settled_to_the_real_usage() -> None:
    clock = Clock(start=6000.0)
    capacity_gate, _ = gate(clock)
    member = Member("a", "m", capacity=Capacity(tpm=1000))

    first = [await capacity_gate.acquire(member, SMALL) for _ in range(3)]
    refused = await capacity_gate.acquire(member, SMALL)
    for admission in first:  # each call used 100 tokens, not the 300 charged
        await capacity_gate.settle(member, admission, used_tokens=100)
    after = [await capacity_gate.acquire(member, SMALL) for _ in range(2)]

    assert [a.tokens for a in first] == [300, 300, 300]
    assert (refused.allowed, refused.limit) == (False, "tpm")
    assert [a.allowed for a in after] == [True, True]


async def test_calls_in_flight_are_bounded_per_member_and_freed_on_release() -> None:
    capacity_gate, states = gate(Clock())
    member = Member("a", "m", capacity=Capacity(max_concurrent=2))

    held = [await capacity_gate.acquire(member, SMALL) for _ in range(2)]
    refused = await capacity_gate.acquire(member, SMALL)
    capacity_gate.release(member, latency=0.2, stream=False)
    again = await capacity_gate.acquire(member, SMALL)

    assert all(a.allowed for a in held)
    assert refused == Admission(False, CONCURRENT_RETRY_AFTER, "concurrent")
    assert again.allowed
    assert states.of(member).latency(stream=False) == pytest.approx(0.2)


async def test_a_member_without_limits_is_admitted_without_asking_the_limiter() -> None:
    capacity_gate, states = gate(Clock())
    member = Member("a", "m")

    admissions = [await capacity_gate.acquire(member, SMALL) for _ in range(100)]

    assert all(a.allowed for a in admissions)
    assert states.of(member).in_flight == 100


def test_the_soonest_retry_is_the_shortest_wait_among_refusals() -> None:
    admissions = [Admission(False, 30.0, "rpm"), Admission(True), Admission(False, 4.5, "tpm")]

    assert soonest_retry(admissions) == 4.5
    assert soonest_retry([Admission(True)]) is None


def test_capacity_in_memory_warns_that_it_is_per_replica(caplog: pytest.LogCaptureFixture) -> None:
    limited = group("g", "weighted", Member("a", "m", capacity=Capacity(rpm=60)))

    with caplog.at_level(logging.WARNING, logger="gateway.routing"):
        limiter = capacity_limiter([limited], redis_url="", timeout=0.1)

    assert isinstance(limiter, MemoryRateLimiter)
    assert [r.getMessage() for r in caplog.records] == [
        "deployment capacity (rpm, tpm) is counted per replica, in memory: with several "
        "replicas each may send the whole quota; set REDIS_URL to share the counts"
    ]
    assert caplog.records[0].members == ["a/m"]  # type: ignore[attr-defined]


def test_no_warning_without_rpm_or_tpm(caplog: pytest.LogCaptureFixture) -> None:
    unlimited = group("g", "weighted", Member("a", "m", capacity=Capacity(max_concurrent=5)))

    with caplog.at_level(logging.WARNING, logger="gateway.routing"):
        capacity_limiter([unlimited], redis_url="", timeout=0.1)

    assert caplog.records == []
