"""The token and cost counters: every series exists from a deployment's first call, and a call
adds exactly what it used (zeros are not written)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from gateway.pipeline.accounting import _count_usage
from providers.base import ProviderSettings
from providers.mock import MockProvider
from providers.registry import Route
from providers.types import Usage


def route(name: str) -> Route:
    """A route to a mock deployment of its own, so that each test reads its own series."""
    settings = ProviderSettings(name=name, kind="mock", models=("counted-model",))
    return Route(MockProvider(settings), "counted-model")


def tokens(route: Route, kind: str) -> float | None:
    labels = {"provider": route.provider.name, "model": route.model_label, "type": kind}
    return REGISTRY.get_sample_value("gateway_tokens_total", labels)


def cost(route: Route) -> float | None:
    labels = {"provider": route.provider.name, "model": route.model_label}
    return REGISTRY.get_sample_value("gateway_cost_usd_total", labels)


def test_a_call_that_used_no_cached_or_reasoning_tokens_still_shows_those_series_at_zero() -> None:
    first = route("counted-first")

    _count_usage(first, Usage(9, 20, 29, 0), 0.0)

    assert tokens(first, "prompt") == 9
    assert tokens(first, "completion") == 20
    assert tokens(first, "cached") == 0
    assert tokens(first, "reasoning") == 0
    assert cost(first) == 0


def test_later_calls_add_what_they_used() -> None:
    later = route("counted-later")
    _count_usage(later, Usage(1, 1, 2, 0), 0.0)

    _count_usage(later, Usage(5, 7, 12, 3, reasoning_tokens=4), 0.25)

    assert tokens(later, "prompt") == 6
    assert tokens(later, "completion") == 8
    assert tokens(later, "cached") == 3
    assert tokens(later, "reasoning") == 4
    assert cost(later) == 0.25
