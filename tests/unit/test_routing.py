"""`ProviderRegistry.resolve`: which deployment, and which model name, a request goes to."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from gateway.errors import ModelNotFoundError
from providers.base import ProviderSettings
from providers.keys import KeyPool
from providers.mock import MockProvider
from providers.registry import Deployment, ProviderRegistry, Route


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
    with pytest.raises(ModelNotFoundError, match="unknown model 'foo/bar'"):
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
    with pytest.raises(ModelNotFoundError) as exc_info:
        registry().resolve("mock", "azure")

    assert exc_info.value.message == "unknown provider 'azure'; known providers: local, mock"


def test_unknown_model_is_not_found_listing_known_models() -> None:
    with pytest.raises(ModelNotFoundError) as exc_info:
        registry({"fast": "mock"}).resolve("gpt-9")

    assert "known models: fast, llama-3, mock, shared;" in exc_info.value.message


def test_model_listed_twice_goes_to_the_first_deployment_by_name() -> None:
    assert registry().resolve("shared") == Route(LOCAL.provider, "shared")
