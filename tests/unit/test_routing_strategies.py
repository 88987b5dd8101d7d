"""The strategies' distributions, over simulated calls and time with a seeded random source."""

from __future__ import annotations

import heapq
from collections import Counter

import pytest

from gateway.pipeline.pricing import Price
from gateway.pipeline.routing.features import RequestFeatures
from gateway.pipeline.routing.groups import Capacity, Member
from gateway.pipeline.routing.router import Router, open_circuits
from gateway.pipeline.routing.state import DeploymentStates
from providers.errors import UpstreamUnavailableError
from resilience.breaker import Breakers
from tests.routing_support import Clock, deployments, group, make_router, plain

A, B, C = Member("a", "m"), Member("b", "m"), Member("c", "m")


def first(router: Router, model: str = "g", features: RequestFeatures | None = None) -> Member:
    """The member a call to `model` tries first."""
    routing = router.route(model, plain(features))
    assert routing is not None
    assert routing.order, routing
    return routing.order[0]


# weighted


def test_weighted_three_to_one_over_2000_calls_is_within_5_percent_of_75_25() -> None:
    router = make_router(group("g", "weighted", Member("a", "m", 3.0), Member("b", "m", 1.0)))

    picks = Counter(first(router).deployment for _ in range(2000))

    assert abs(picks["a"] / 2000 - 0.75) <= 0.05, picks
    assert abs(picks["b"] / 2000 - 0.25) <= 0.05, picks


def test_weighted_order_holds_every_member_once() -> None:
    router = make_router(group("g", "weighted", A, B, C))

    for _ in range(50):
        routing = router.route("g", plain())
        assert routing is not None
        assert sorted(m.deployment for m in routing.order) == ["a", "b", "c"]


def test_the_same_seed_replays_the_same_choices() -> None:
    def run(seed: int) -> list[str]:
        router = make_router(group("g", "weighted", A, B, C), seed=seed)
        return [first(router).deployment for _ in range(30)]

    assert run(3) == run(3)
    assert run(3) != run(4)


# latency


def simulate_latency(
    router: Router,
    states: DeploymentStates,
    clock: Clock,
    latency: dict[str, float],
    *,
    seconds: float,
    rate: float = 20.0,
) -> list[tuple[float, str]]:
    """Calls at `rate` a second for `seconds`, each to the member put first and answered in
    `latency[deployment]` seconds; returns (time, deployment) of each call."""
    calls = []
    for _ in range(round(seconds * rate)):
        clock.now += 1 / rate
        member = first(router)
        states.started(member)
        states.finished(member, latency=latency[member.deployment], stream=False)
        calls.append((clock.now, member.deployment))
    return calls


def latency_router() -> tuple[Router, DeploymentStates, Clock]:
    clock = Clock()
    states = DeploymentStates(clock=clock)
    router = make_router(
        group("g", "latency", Member("fast", "m"), Member("slow", "m")), states=states
    )
    return router, states, clock


def test_latency_sends_90_percent_to_the_fast_one_and_a_trickle_to_the_slow_one() -> None:
    router, states, clock = latency_router()
    latency = {"fast": 0.005, "slow": 0.050}
    simulate_latency(router, states, clock, latency, seconds=5)  # warm-up

    calls = Counter(d for _, d in simulate_latency(router, states, clock, latency, seconds=60))

    total = sum(calls.values())
    assert calls["fast"] / total >= 0.90, calls
    assert calls["slow"] >= 0.01 * total, calls  # still measured


def test_latency_moves_traffic_within_10_seconds_when_the_fast_one_slows() -> None:
    router, states, clock = latency_router()
    latency = {"fast": 0.005, "slow": 0.050}
    simulate_latency(router, states, clock, latency, seconds=30)
    slowed_at = clock.now
    latency["fast"] = 0.100

    calls = simulate_latency(router, states, clock, latency, seconds=30)

    def share_to_slow(start: float, end: float) -> float:
        window = [d for t, d in calls if start <= t - slowed_at < end]
        return window.count("slow") / len(window)

    moved = next(s for s in range(30) if share_to_slow(s, s + 1) >= 0.9)
    assert moved < 10, f"traffic moved only {moved} s after the slowdown"
    assert share_to_slow(10, 30) >= 0.9


def test_latency_compares_streams_by_time_to_first_token() -> None:
    clock = Clock()
    states = DeploymentStates(clock=clock)
    router = make_router(group("g", "latency", A, B, exploration=0.0), states=states)
    # a answers whole calls fast but starts streams slowly; b the other way round
    states.finished(A, latency=0.01, stream=False)
    states.finished(A, latency=0.50, stream=True)
    states.finished(B, latency=0.90, stream=False)
    states.finished(B, latency=0.05, stream=True)

    assert first(router, features=RequestFeatures(stream=False)) == A
    assert first(router, features=RequestFeatures(stream=True)) == B


def test_latency_tries_an_unmeasured_member_first() -> None:
    states = DeploymentStates(clock=Clock())
    router = make_router(group("g", "latency", A, B), states=states)
    states.finished(A, latency=0.001, stream=False)

    routing = router.route("g", plain())

    assert routing is not None
    assert (routing.order[0], routing.reason) == (B, "unmeasured")


# least_busy


def test_least_busy_keeps_calls_in_flight_balanced() -> None:
    states = DeploymentStates(clock=Clock())
    router = make_router(group("g", "least_busy", A, B, C), states=states)

    for _ in range(30):  # no call ends: each goes where the fewest are in flight
        states.started(first(router))
        in_flight = [states.of(m).in_flight for m in (A, B, C)]
        assert max(in_flight) - min(in_flight) <= 1, in_flight


def test_least_busy_sends_little_to_a_deployment_that_stalls() -> None:
    clock = Clock()
    states = DeploymentStates(clock=clock)
    router = make_router(group("g", "least_busy", A, B, C), states=states)
    durations = {"a": float("inf"), "b": 0.2, "c": 0.2}  # a stalls: its calls never end
    ending: list[tuple[float, str]] = []
    sent: Counter[str] = Counter()

    for _ in range(400):  # 40 calls a second for 10 s
        clock.now += 0.025
        while ending and ending[0][0] <= clock.now:
            states.finished(Member(heapq.heappop(ending)[1], "m"), latency=0.2, stream=False)
        member = first(router)
        states.started(member)
        sent[member.deployment] += 1
        heapq.heappush(ending, (clock.now + durations[member.deployment], member.deployment))

    # The stalled one holds no more calls than the others have in flight at once (about 4).
    assert states.of(A).in_flight <= max(states.of(B).in_flight, states.of(C).in_flight) + 1
    assert sent["a"] <= 0.02 * sum(sent.values()), sent


# cost


PRICES = {
    "a/m": Price(input=5.0, output=15.0),
    "b/m": Price(input=0.15, output=0.60),
    "c/m": Price(input=1.0, output=4.0),
}


def test_cost_puts_the_cheapest_first_then_the_next() -> None:
    router = make_router(group("g", "cost", A, B, C), prices=PRICES)

    routing = router.route("g", plain())

    assert routing is not None
    assert [m.deployment for m in routing.order] == ["b", "c", "a"]
    assert routing.reason == "cheapest"


def test_cost_takes_the_next_cheapest_when_the_cheapest_circuit_opens() -> None:
    breakers = Breakers(fail_max=2, reset_timeout=60)
    router = make_router(
        group("g", "cost", A, B, C), prices=PRICES, circuit_open=open_circuits(breakers)
    )
    assert first(router).deployment == "b"

    for _ in range(2):
        breaker = breakers("b")
        breaker.failed(breaker.admit(), UpstreamUnavailableError("down", provider="b"))
    routing = router.route("g", plain())

    assert routing is not None
    assert [m.deployment for m in routing.order] == ["c", "a"]
    assert [(s.member.deployment, s.reason) for s in routing.skipped] == [("b", "circuit_open")]


def test_cost_weighs_output_for_a_long_answer() -> None:
    # "in" is cheap to read and dear to write; "out" the other way round
    members = (Member("in", "m"), Member("out", "m"))
    prices = {"in/m": Price(input=0.1, output=10.0), "out/m": Price(input=2.0, output=1.0)}
    router = make_router(group("g", "cost", *members), prices=prices)

    long_prompt = RequestFeatures(prompt_tokens=50_000, max_tokens=100)
    long_answer = RequestFeatures(prompt_tokens=100, max_tokens=8_000)

    assert first(router, features=long_prompt).deployment == "in"
    assert first(router, features=long_answer).deployment == "out"


def test_cost_puts_unpriced_members_last_and_free_kinds_at_zero() -> None:
    providers = (*deployments("a", "b"), *deployments("local", kind="ollama"))
    members = (A, Member("local", "m"), B)
    router = make_router(
        group("g", "cost", *members), providers=providers, prices={"a/m": PRICES["a/m"]}
    )

    routing = router.route("g", plain())

    assert routing is not None
    assert [m.deployment for m in routing.order] == ["local", "a", "b"]


# usage


def test_usage_puts_the_member_with_most_headroom_first() -> None:
    states = DeploymentStates(clock=Clock())
    capped = Capacity(max_concurrent=10)
    members = (Member("a", "m", capacity=capped), Member("b", "m", capacity=capped))
    router = make_router(group("g", "usage", *members), states=states)
    for _ in range(6):
        states.started(members[0])
    for _ in range(2):
        states.started(members[1])

    routing = router.route("g", plain())

    assert routing is not None
    assert routing.order == (members[1], members[0])
    assert routing.reason == "most_headroom"


# every strategy leaves out what cannot serve


@pytest.mark.parametrize("strategy", ["weighted", "least_busy", "latency", "cost", "usage"])
def test_every_strategy_leaves_out_an_open_circuit_and_a_too_small_context(strategy: str) -> None:
    small = Member("small", "m", capacity=Capacity(context_window=1000))
    router = make_router(
        group("g", strategy, A, B, small),
        circuit_open=lambda deployment: deployment == "a",
        prices=PRICES,
    )

    for _ in range(20):
        routing = router.route("g", plain(RequestFeatures(prompt_tokens=900, max_tokens=200)))
        assert routing is not None
        assert routing.order == (B,)
        assert {s.member.deployment: s.reason for s in routing.skipped} == {
            "a": "circuit_open",
            "small": "context_window",
        }
