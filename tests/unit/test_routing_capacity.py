"""Members' capacity in memory: requests, tokens and calls in flight, and the start-up warning."""

from __future__ import annotations

import bisect
import logging

import pytest

from gateway.pipeline.routing.capacity import (
    CONCURRENT_RETRY_AFTER,
    Admission,
    CapacityGate,
    capacity_limiter,
    pace_of,
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
    return CapacityGate(MemoryRateLimiter(clock=clock), states, wall_clock=clock), states


@pytest.mark.parametrize("start", [6000.0 + k * 60 / 7 + 0.37 for k in range(7)])
async def test_in_any_minute_a_member_takes_its_rpm_within_5_percent(start: float) -> None:
    # 7.5 calls a second for 4 minutes, starting anywhere in a minute, to a 60-rpm member
    clock = Clock(start)
    capacity_gate, _ = gate(clock)
    member = Member("a", "m", capacity=Capacity(rpm=60))
    admitted = []
    for call in range(4 * 60 * 15 // 2):
        clock.now = start + call / 7.5
        admission = await capacity_gate.acquire(member, SMALL)
        if admission.allowed:
            capacity_gate.release(member, latency=None, stream=False)
            admitted.append(clock.now - start)

    busiest = max(bisect.bisect_left(admitted, t + 60) - i for i, t in enumerate(admitted))
    assert busiest <= 63, f"{busiest} calls in one minute"
    assert 57 <= len(admitted) / 4 <= 63


async def test_requests_are_paced_in_slices_that_make_up_the_rpm() -> None:
    clock = Clock(start=6000.0)  # the start of a slice
    capacity_gate, states = gate(clock)
    member = Member("a", "m", capacity=Capacity(rpm=60))  # 3 calls every 3 s

    first = [await capacity_gate.acquire(member, SMALL) for _ in range(4)]
    clock.now += 1.0
    still_full = await capacity_gate.acquire(member, SMALL)
    clock.now += 2.0  # the next slice
    next_slice = [await capacity_gate.acquire(member, SMALL) for _ in range(4)]

    assert [a.allowed for a in first] == [True, True, True, False]
    assert (first[3].limit, first[3].retry_after) == ("rpm", 3.0)
    assert (still_full.allowed, still_full.retry_after) == (False, 2.0)
    assert [a.allowed for a in next_slice] == [True, True, True, False]
    assert states.of(member).in_flight == 6  # the refused calls hold no slot


@pytest.mark.parametrize(
    ("rpm", "calls", "seconds"), [(60, 3, 3.0), (10, 1, 6.0), (100, 5, 3.0), (7, 1, 60 / 7)]
)
def test_a_slice_admits_a_whole_share_of_the_minute(rpm: int, calls: int, seconds: float) -> None:
    assert pace_of(rpm)[0] == calls
    assert pace_of(rpm)[1] == pytest.approx(seconds)


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
        limiter = capacity_limiter([limited], redis=None, timeout=0.1)

    assert isinstance(limiter, MemoryRateLimiter)
    assert [r.getMessage() for r in caplog.records] == [
        "deployment capacity (rpm, tpm) is counted per replica, in memory: with several "
        "replicas each may send the whole quota; set REDIS_URL to share the counts"
    ]
    assert caplog.records[0].members == ["a/m"]  # type: ignore[attr-defined]


def test_no_warning_without_rpm_or_tpm(caplog: pytest.LogCaptureFixture) -> None:
    unlimited = group("g", "weighted", Member("a", "m", capacity=Capacity(max_concurrent=5)))

    with caplog.at_level(logging.WARNING, logger="gateway.routing"):
        capacity_limiter([unlimited], redis=None, timeout=0.1)

    assert caplog.records == []
