"""`ProviderRegistry.resolve`: which deployment, and which model name, a request goes to."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from providers.base import ProviderSettings
from providers.errors import UnknownModelError
from providers.keys import KeyPool
from providers.mock import MockProvider
from providers.registry import Deployment, ProviderRegistry, Route, log_enabled


def deployment(name: str, *models: str) -> Deployment:
    """A mock deployment called `name` that lists `models`."""
    settings = ProviderSettings(name=name, kind="mock", models=models)
    return Deployment(settings, MockProvider(settings), KeyPool((), cooldown=60))


MOCK = deployment("mock", "mock", "shared")
LOCAL = deployment("local", "llama-3", "shared")


def registry(aliases: Mapping[str, str] | None = None) -> ProviderRegistry:
    """A registry over MOCK and LOCAL, given out of name order on purpose."""
    return ProviderRegistry([MOCK, LOCAL], aliases or {})


def test_listed_model_routes_to_the_deployment_that_lists_it() -> None:
    assert registry().resolve("llama-3") == Route(LOCAL.provider, "llama-3")


def test_deployment_prefix_routes_there_with_the_rest_as_the_model() -> None:
    assert registry().resolve("local/qwen-2") == Route(LOCAL.provider, "qwen-2")


def test_deployment_prefix_keeps_further_slashes_in_the_model() -> None:
    route = registry().resolve("local/meta-llama/Llama-3")

    assert route == Route(LOCAL.provider, "meta-llama/Llama-3")


def test_unknown_prefix_is_looked_up_as_a_whole_model_name() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'foo/bar'"):
        registry().resolve("foo/bar")


def test_unknown_prefix_routes_when_the_whole_name_is_listed() -> None:
    hub = deployment("hub", "foo/bar")

    route = ProviderRegistry([MOCK, hub], {}).resolve("foo/bar")

    assert route == Route(hub.provider, "foo/bar")


def test_alias_routes_to_its_target() -> None:
    route = registry({"fast": "local/llama-3-8b"}).resolve("fast")

    assert route == Route(LOCAL.provider, "llama-3-8b")


def test_pin_overrides_the_deployment_that_lists_the_model() -> None:
    assert registry().resolve("mock", "local") == Route(LOCAL.provider, "mock")


def test_pin_strips_its_own_prefix_from_the_model() -> None:
    assert registry().resolve("local/llama-3", "local") == Route(LOCAL.provider, "llama-3")


def test_unknown_pin_is_not_found_listing_known_providers() -> None:
    with pytest.raises(UnknownModelError) as exc_info:
        registry().resolve("mock", "azure")

    assert exc_info.value.message == "unknown provider 'azure'; known providers: local, mock"


def test_unknown_model_is_not_found_listing_known_models() -> None:
    with pytest.raises(UnknownModelError) as exc_info:
        registry({"fast": "mock"}).resolve("gpt-9")

    assert "known models: fast, llama-3, mock, shared;" in exc_info.value.message


def test_model_listed_twice_goes_to_the_first_deployment_by_name() -> None:
    assert registry().resolve("shared") == Route(LOCAL.provider, "shared")


# What the gateway says at start about its deployments


def enabled_log(caplog: pytest.LogCaptureFixture, *providers: ProviderSettings) -> dict[str, Any]:
    """The fields of the "providers enabled" line `log_enabled(providers)` writes."""
    with caplog.at_level(logging.INFO, logger="gateway.providers"):
        log_enabled(providers)
    (record,) = [r for r in caplog.records if r.getMessage() == "providers enabled"]
    return {"providers": getattr(record, "providers", None), "mock": getattr(record, "mock", None)}


def test_start_log_says_the_mock_is_off_next_to_a_real_provider(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logged = enabled_log(caplog, ProviderSettings(name="openai", kind="openai"))

    assert logged["providers"] == ["openai (openai)"]
    assert logged["mock"].startswith("off: a real provider is configured")
    assert "MOCK_ENABLED=true" in logged["mock"]


def test_start_log_says_the_mock_is_on_when_nothing_else_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logged = enabled_log(caplog, ProviderSettings(name="mock", kind="mock"))

    assert logged == {"providers": ["mock (mock)"], "mock": "on: no real provider is configured"}
