"""The provider registry: builds the configured deployments and routes a model name to one.

Routing, first rule that applies wins:

1. an alias from the config's `models:` table is replaced by its target;
2. a pinned provider (the request's `provider` field or the `x-provider` header) takes the
   model as it is (a leading "<pin>/" is dropped);
3. "<deployment>/<model>" names a deployment and passes the rest through, so any model a
   deployment serves can be reached even when the config does not list it;
4. a model listed by a deployment goes to that deployment (the first by name when several do).

Anything else is `ModelNotFoundError`, whose message lists the models that are known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import aiohttp

from gateway.errors import ModelNotFoundError
from providers.base import Provider, ProviderSettings
from providers.mock import MockProvider
from providers.openai import OpenAIProvider

MAX_LISTED_MODELS = 50


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: a deployment and the model name that deployment knows."""

    provider: Provider
    model: str


@dataclass(frozen=True, slots=True)
class Deployment:
    """A configured deployment and its adapter."""

    settings: ProviderSettings
    provider: Provider


def build_provider(settings: ProviderSettings, session: aiohttp.ClientSession) -> Provider:
    """Create the adapter for one deployment; HTTP adapters share `session`."""
    if settings.kind == "mock":
        return MockProvider(settings)
    if settings.kind == "openai":
        return OpenAIProvider(settings, session)
    raise ValueError(f"unknown provider kind {settings.kind!r}")


class ProviderRegistry:
    """All configured deployments, and the routing table over their models."""

    def __init__(self, deployments: Iterable[Deployment], aliases: Mapping[str, str]) -> None:
        self._deployments = {d.settings.name: d for d in sorted(deployments, key=_by_name)}
        self._aliases = dict(aliases)
        self._models: dict[str, Deployment] = {}
        for deployment in self._deployments.values():
            for model in deployment.settings.models:
                self._models.setdefault(model, deployment)

    @classmethod
    def from_settings(
        cls,
        providers: Iterable[ProviderSettings],
        aliases: Mapping[str, str],
        session: aiohttp.ClientSession,
    ) -> ProviderRegistry:
        """Build every deployment in `providers` over the shared HTTP `session`."""
        return cls((Deployment(p, build_provider(p, session)) for p in providers), aliases)

    @property
    def deployments(self) -> list[Deployment]:
        """Every deployment, ordered by name."""
        return list(self._deployments.values())

    def resolve(self, model: str, pin: str | None = None) -> Route:
        """Route `model` (optionally pinned to deployment `pin`) or raise `ModelNotFoundError`."""
        model = self._aliases.get(model, model)
        if pin:
            deployment = self._deployments.get(pin)
            if deployment is None:
                raise ModelNotFoundError(
                    f"unknown provider {pin!r}; known providers: {', '.join(self._deployments)}"
                )
            return Route(deployment.provider, model.removeprefix(pin + "/"))
        prefix, slash, rest = model.partition("/")
        if slash and rest and prefix in self._deployments:
            return Route(self._deployments[prefix].provider, rest)
        deployment = self._models.get(model)
        if deployment is None:
            raise ModelNotFoundError(self._unknown_model_message(model))
        return Route(deployment.provider, model)

    def _unknown_model_message(self, model: str) -> str:
        known = sorted({*self._models, *self._aliases})
        listed = ", ".join(known[:MAX_LISTED_MODELS])
        if len(known) > MAX_LISTED_MODELS:
            listed += f" (and {len(known) - MAX_LISTED_MODELS} more)"
        return (
            f"unknown model {model!r}; known models: {listed}; "
            f"or name a provider as '<provider>/<model>' with one of: "
            f"{', '.join(self._deployments)}"
        )

    async def aclose(self) -> None:
        """Close every adapter."""
        for deployment in self._deployments.values():
            await deployment.provider.aclose()


def _by_name(deployment: Deployment) -> str:
    return deployment.settings.name
