"""`Router.route`: which names it takes over, the order to try, what it leaves out and says."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from gateway.pipeline.routing.decision import Routing
from gateway.pipeline.routing.features import IMAGES, TOOLS, RequestFeatures
from gateway.pipeline.routing.groups import (
    Capacity,
    Member,
    ModelGroup,
    RouteContext,
    RouteRule,
    Tier,
)
from gateway.pipeline.routing.router import UnknownTierError
from gateway.pipeline.routing.state import DeploymentStates
from tests.routing_support import Clock, deployments, group, make_router, plain

A, B, C = Member("a", "m"), Member("b", "m"), Member("c", "m")
SMART = ModelGroup(
    "smart",
    "complexity",
    tiers=(Tier("light", "pool", 0.3), Tier("mid", "c/m", 0.6), Tier("heavy", "a/big")),
)
POOL = group("pool", "weighted", A, B)


def routed(routing: Routing | None) -> Routing:
    assert routing is not None
    return routing


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# what it takes over


def test_a_model_outside_every_group_and_route_is_left_to_the_registry() -> None:
    router = make_router(POOL, providers=deployments("a", "b", "c"))
    called: list[str] = []

    def features() -> RequestFeatures:
        called.append("features")
        return RequestFeatures()

    assert router.route("m", features) is None
    assert router.route("c/m", features) is None
    assert called == []  # features are never computed for it


def test_an_alias_of_a_group_routes_through_the_group() -> None:
    router = make_router(POOL, aliases={"default": "pool"})

    routing = routed(router.route("default", plain()))

    assert (routing.group, set(routing.order)) == ("pool", {A, B})


def test_a_group_may_shadow_a_model_a_deployment_lists() -> None:
    # "m" is listed by both deployments; the group decides how calls to it spread
    router = make_router(group("m", "weighted", A, B))

    assert routed(router.route("m", plain())).group == "m"


# the order to try


def test_tries_go_through_every_member_before_one_comes_round_again() -> None:
    routing = Routing("g", "g", group="g", order=(A, B, C))

    assert routing.tries(0) == [A, B, C]
    assert routing.tries(4) == [A, B, C, A, B]


def test_a_single_member_group_is_retried_like_a_single_deployment() -> None:
    assert Routing("g", "g", group="g", order=(A,)).tries(2) == [A, A, A]


def test_a_pin_keeps_only_the_members_on_the_pinned_deployment() -> None:
    router = make_router(group("g", "weighted", A, B, Member("b", "other")))

    routing = routed(router.route("g", plain(), pin="b"))

    assert routing.order == (B, Member("b", "other"))
    assert routing.reason == "pinned"


def test_a_pin_on_a_deployment_outside_the_group_is_resolved_as_before() -> None:
    router = make_router(POOL, providers=deployments("a", "b", "c"))

    routing = routed(router.route("pool", plain(), pin="c"))

    assert (routing.group, routing.model, routing.order) == ("", "pool", ())


# what it leaves out


def test_a_member_lacking_a_capability_the_request_needs_is_left_out() -> None:
    router = make_router(
        group("g", "weighted", A, B),
        capabilities=lambda m: frozenset({TOOLS}) if m.deployment == "a" else frozenset({IMAGES}),
    )

    with_image = routed(router.route("g", plain(RequestFeatures(images=1))))
    with_tools = routed(router.route("g", plain(RequestFeatures(tools=2))))

    assert (with_image.order, with_image.skipped[0].reason) == ((B,), "lacks_images")
    assert (with_tools.order, with_tools.skipped[0].reason) == ((A,), "lacks_tools")


def test_a_member_known_full_is_left_out_with_its_retry_time() -> None:
    clock = Clock()
    states = DeploymentStates(clock=clock)
    router = make_router(group("g", "weighted", A, B), states=states)
    states.refused(A, "rpm", 12.0)
    clock.now += 2

    routing = routed(router.route("g", plain()))

    assert routing.order == (B,)
    assert routing.retry_after == pytest.approx(10.0)
    clock.now += 10.5
    assert set(routed(router.route("g", plain())).order) == {A, B}


def test_a_member_at_its_concurrency_bound_is_left_out() -> None:
    states = DeploymentStates(clock=Clock())
    one = Member("a", "m", capacity=Capacity(max_concurrent=1))
    router = make_router(group("g", "weighted", one, B), states=states)
    states.started(one)

    routing = routed(router.route("g", plain()))

    assert routing.order == (B,)
    assert routing.skipped[0].reason == "at_capacity"


def test_when_every_member_is_full_the_order_is_empty_with_the_soonest_retry() -> None:
    states = DeploymentStates(clock=Clock())
    router = make_router(group("g", "weighted", A, B), states=states)
    states.refused(A, "rpm", 30.0)
    states.refused(B, "tpm", 4.0)

    routing = routed(router.route("g", plain()))

    assert (routing.order, routing.reason) == ((), "none_eligible")
    assert routing.retry_after == pytest.approx(4.0)


# complexity groups


def test_a_complexity_group_routes_a_simple_request_to_its_cheap_tier_group() -> None:
    router = make_router(SMART, POOL, providers=deployments("a", "b", "c"))

    routing = routed(router.route("smart", plain(RequestFeatures(prompt_tokens=10))))

    assert routing.complexity is not None
    assert routing.complexity.tier.name == "light"
    assert (routing.complexity_group, routing.group, set(routing.order)) == (
        "smart",
        "pool",
        {A, B},
    )
    assert routing.escalation == ("c/m", "a/big")


def test_a_complexity_tier_naming_a_model_leaves_it_to_the_registry() -> None:
    router = make_router(SMART, POOL, providers=deployments("a", "b", "c"))
    hard = RequestFeatures(prompt_tokens=10, reasoning_effort="high", code=True)

    routing = routed(router.route("smart", plain(hard)))

    assert routing.complexity is not None
    assert (routing.complexity.tier.name, routing.model, routing.group) == ("heavy", "a/big", "")
    assert routing.escalation == ()


def test_a_caller_may_pin_a_tier() -> None:
    router = make_router(SMART, POOL, providers=deployments("a", "b", "c"))

    routing = routed(router.route("smart", plain(), tier="mid"))

    assert routing.complexity is not None
    assert (routing.model, routing.complexity.reason) == ("c/m", "tier mid pinned by the caller")


def test_pinning_a_tier_the_group_lacks_is_an_error_listing_its_tiers() -> None:
    router = make_router(SMART, POOL, providers=deployments("a", "b", "c"))

    with pytest.raises(UnknownTierError, match="light, mid, heavy"):
        router.route("smart", plain(), tier="huge")


# conditional routes


def test_a_route_sends_a_tenant_to_another_group() -> None:
    cheap = group("cheap", "weighted", C)
    router = make_router(POOL, cheap, routes=[RouteRule("cheap", tenants=frozenset({"free"}))])

    free = routed(router.route("pool", plain(), context=RouteContext(tenant="free")))
    paid = routed(router.route("pool", plain(), context=RouteContext(tenant="paid")))

    assert (free.route, free.group, free.order) == (0, "cheap", (C,))
    assert (paid.route, paid.group) == (None, "pool")


def test_the_first_matching_route_wins_and_may_name_a_plain_model() -> None:
    routes = [
        RouteRule("c/m", use_cases=frozenset({"summarize"}), models=frozenset({"pool"})),
        RouteRule("pool", api_keys=frozenset({"key_1"})),
    ]
    router = make_router(POOL, routes=routes, providers=deployments("a", "b", "c"))

    both = RouteContext(use_case="summarize", api_key="key_1")
    routing = routed(router.route("pool", plain(), context=both))
    by_key = routed(router.route("c/m", plain(), context=RouteContext(api_key="key_1")))

    assert (routing.route, routing.model, routing.group) == (0, "c/m", "")
    assert (by_key.route, by_key.group) == (1, "pool")


def test_a_route_to_a_model_outside_groups_is_resolved_by_the_registry() -> None:
    router = make_router(
        POOL,
        routes=[RouteRule("c/m", tenants=frozenset({"free"}))],
        providers=deployments("a", "b", "c"),
    )

    routing = routed(router.route("anything", plain(), context=RouteContext(tenant="free")))

    assert (routing.model, routing.group, routing.order) == ("c/m", "", ())


# what it says


def test_each_decision_is_counted_by_group_strategy_deployment_and_reason() -> None:
    router = make_router(group("counted", "cost", A), prices={})
    before = sample(
        "gateway_routing_decisions_total",
        group="counted",
        strategy="cost",
        provider="a",
        reason="unpriced",
    )

    for _ in range(3):
        router.route("counted", plain())

    after = sample(
        "gateway_routing_decisions_total",
        group="counted",
        strategy="cost",
        provider="a",
        reason="unpriced",
    )
    assert after - before == 3


def test_members_left_out_are_counted_by_reason() -> None:
    router = make_router(group("skips", "weighted", A, B), circuit_open=lambda d: d == "b")
    labels = {"group": "skips", "provider": "b", "reason": "circuit_open"}
    before = sample("gateway_routing_skipped_total", **labels)

    router.route("skips", plain())

    assert sample("gateway_routing_skipped_total", **labels) - before == 1


def test_complexity_tiers_and_scores_are_counted() -> None:
    scored = ModelGroup(
        "scored", "complexity", tiers=(Tier("light", "a/m", 0.3), Tier("heavy", "b/m"))
    )
    router = make_router(scored, providers=deployments("a", "b"))
    tier_labels = {"group": "scored", "strategy": "complexity", "provider": "b"}
    before = sample("gateway_routing_decisions_total", **tier_labels, reason="tier:heavy")
    scores = sample("gateway_routing_complexity_score_count", group="scored")

    router.route("scored", plain(RequestFeatures(reasoning_effort="high")))

    assert (
        sample("gateway_routing_decisions_total", **tier_labels, reason="tier:heavy") == before + 1
    )
    assert sample("gateway_routing_complexity_score_count", group="scored") == scores + 1


def test_in_flight_latency_and_capacity_used_are_exported_per_member() -> None:
    states = DeploymentStates(clock=Clock())
    shown = Member("shown", "m1", capacity=Capacity(max_concurrent=4))

    states.started(shown)
    states.started(shown)
    states.finished(shown, latency=0.25, stream=True)

    member = {"provider": "shown", "model": "m1"}
    assert sample("gateway_deployment_in_flight", **member) == 1
    assert sample("gateway_deployment_recent_latency_seconds", **member, kind="ttft") == 0.25
    used = sample("gateway_deployment_capacity_used_ratio", **member, limit="concurrent")
    assert used == 0.25


def test_the_summary_and_log_fields_say_tier_order_and_what_was_left_out() -> None:
    router = make_router(
        SMART, POOL, providers=deployments("a", "b", "c"), circuit_open=lambda d: d == "b"
    )

    routing = routed(router.route("smart", plain(RequestFeatures(prompt_tokens=10))))

    summary = routing.summary()
    assert "smart: score 0.00: no signal -> tier light (max_score 0.3)" in summary
    assert "group pool (weighted): a/m first (weighted)" in summary
    assert "skipped b/m (circuit_open)" in summary
    fields = routing.log_fields()
    assert fields["route_tier"] == "light"
    assert fields["route_order"] == ["a/m"]
    assert fields["route_skipped"] == {"b/m": "circuit_open"}
