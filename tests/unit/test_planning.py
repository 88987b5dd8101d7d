"""`RoutedPlans`: the steps of a call through groups and routes, and plans that cannot be tried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.errors import InvalidArgumentError, RateLimitedError, ServiceUnavailableError
from gateway.pipeline.planning import PlanRetries, RoutedPlans
from gateway.pipeline.routing.groups import Capacity, Member, ModelGroup, RouteContext, RouteRule
from gateway.pipeline.routing.state import DeploymentStates
from gateway.pipeline.types import CompletionRequest
from providers.base import ProviderSettings
from providers.registry import ProviderRegistry
from providers.types import ChatRequest, Message, Sampling
from tests.routing_support import Clock, make_router

NAMES = ("a", "b", "solo")
PROVIDERS = tuple(ProviderSettings(name=n, kind="mock", models=("m",)) for n in NAMES)
A, B = Member("a", "m"), Member("b", "m")
CHAT = ModelGroup("chat", members=(A, B))
CHEAP = ModelGroup("cheap", members=(Member("solo", "m"),))


def registry() -> ProviderRegistry:
    return ProviderRegistry.from_settings(PROVIDERS, {}, None, key_cooldown=1.0)  # type: ignore[arg-type]  # the mock needs no HTTP session


def plans(
    *routes: RouteRule,
    states: DeploymentStates | None = None,
    circuit_open: Callable[[str], bool] = lambda deployment: False,
    fallbacks: dict[str, tuple[str, ...]] | None = None,
) -> RoutedPlans:
    router = make_router(
        CHAT,
        CHEAP,
        routes=routes,
        providers=PROVIDERS,
        states=states,
        circuit_open=circuit_open,
    )
    return RoutedPlans(router, PlanRetries(primary=1, fallback=0), fallbacks or {})


def plan(routed: RoutedPlans, model: str = "chat", **context: Any) -> list[tuple[str, str]]:
    """The (deployment, routing) of each step of a call to `model` from `context`."""
    found = registry()
    steps = routed.plan(
        request(model),
        resolve=found.resolve,
        problem_of=lambda route: None,
        pin=None,
        context=RouteContext(**context),
    )
    return [(step.route.provider.name, step.routed) for step in steps]


def request(model: str, max_tokens: int | None = None) -> CompletionRequest:
    chat = ChatRequest(model, (Message.of_text("user", "hi"),), Sampling(max_tokens=max_tokens))
    return CompletionRequest(chat)


def test_a_group_plans_each_member_once_with_the_decision_on_every_step() -> None:
    steps = plan(plans())

    assert sorted(name for name, _ in steps) == ["a", "b"]
    assert all(why.startswith("group chat (weighted): ") for _, why in steps)


def test_a_model_outside_every_group_and_route_plans_as_before() -> None:
    assert plan(plans(), "solo/m") == [("solo", "")]


def test_a_route_on_the_api_key_sends_the_call_to_another_group() -> None:
    routed = plans(RouteRule("cheap", api_keys=frozenset({"key-1"})))

    assert plan(routed, api_key="key-2")[0][1].startswith("group chat")
    # one member, one retry: it twice
    assert (
        plan(routed, api_key="key-1")
        == [("solo", "route[0] -> cheap; group cheap (weighted): solo/m first (weighted)")] * 2
    )


def test_fallbacks_follow_the_group() -> None:
    steps = plan(plans(fallbacks={"chat": ("cheap",)}))

    assert [name for name, _ in steps][2:] == ["solo"]


def test_a_plan_whose_every_member_is_full_is_resource_exhausted_with_the_soonest_retry() -> None:
    clock = Clock()
    states = DeploymentStates(clock=clock)
    states.refused(A, "rpm", 7.0)
    states.refused(B, "rpm", 3.0)

    with pytest.raises(RateLimitedError) as refused:
        plan(plans(states=states))

    assert refused.value.retry_after == pytest.approx(3.0)


def test_a_plan_whose_every_member_has_its_circuit_open_is_unavailable() -> None:
    with pytest.raises(ServiceUnavailableError):
        plan(plans(circuit_open=lambda deployment: deployment in ("a", "b")))


def test_a_request_no_member_can_take_is_invalid_and_says_why() -> None:
    small = ModelGroup("small", members=(Member("a", "m", capacity=Capacity(context_window=100)),))
    router = make_router(small, providers=PROVIDERS)
    routed = RoutedPlans(router, PlanRetries(1, 0), {})
    found = registry()

    with pytest.raises(InvalidArgumentError, match="a/m: context_window"):
        routed.plan(
            request("small", max_tokens=1000),
            resolve=found.resolve,
            problem_of=lambda route: None,
            pin=None,
            context=RouteContext(),
        )


def test_a_full_member_of_a_fallback_group_does_not_stop_the_plan() -> None:
    states = DeploymentStates(clock=Clock())
    states.refused(Member("solo", "m"), "rpm", 5.0)

    steps = plan(plans(states=states, fallbacks={"chat": ("cheap",)}))

    assert sorted(name for name, _ in steps) == ["a", "b"]
