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
from dataclasses import dataclass, field
from typing import Final

from gateway.errors import ModelNotFoundError
from providers import anthropic, azure_openai, cohere, gemini, mock, ollama, openai
from providers.base import AdapterSpec, Provider, ProviderSettings
from providers.keys import KeyPool
from providers.upstream_client import UpstreamClient

MAX_LISTED_MODELS = 50


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: a deployment and the model name that deployment knows."""

    provider: Provider
    model: str
    #: Whether the deployment's config lists the model (else metrics label it "other").
    listed: bool = field(default=False, compare=False)

    @property
    def model_label(self) -> str:
        """The model as a metric label: only configured names, so label sets stay bounded."""
        return self.model if self.listed else "other"


@dataclass(frozen=True, slots=True)
class Deployment:
    """A configured deployment, its adapter and its key pool."""

    settings: ProviderSettings
    provider: Provider
    keys: KeyPool


#: Every adapter kind. Adding a provider: one module with a `SPEC`, one line here.
ADAPTERS: Final[Mapping[str, AdapterSpec]] = {
    spec.kind: spec
    for spec in (
        mock.SPEC,
        openai.SPEC,
        azure_openai.SPEC,
        anthropic.SPEC,
        gemini.SPEC,
        cohere.SPEC,
        ollama.SPEC,
    )
}


def build_deployment(
    settings: ProviderSettings, session: UpstreamClient, *, key_cooldown: float
) -> Deployment:
    """Create the adapter for one deployment; HTTP adapters share `session`."""
    spec = ADAPTERS.get(settings.kind)
    if spec is None:
        raise ValueError(f"unknown provider kind {settings.kind!r}")
    keys = KeyPool(settings.api_keys, cooldown=key_cooldown)
    return Deployment(settings, spec.factory(settings, session, keys), keys)


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
        session: UpstreamClient,
        *,
        key_cooldown: float,
    ) -> ProviderRegistry:
        """Build every deployment in `providers` over the shared HTTP `session`."""
        deployments = (build_deployment(p, session, key_cooldown=key_cooldown) for p in providers)
        return cls(deployments, aliases)

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
            model = model.removeprefix(pin + "/")
            return Route(deployment.provider, model, model in deployment.settings.models)
        prefix, slash, rest = model.partition("/")
        if slash and rest and prefix in self._deployments:
            deployment = self._deployments[prefix]
            return Route(deployment.provider, rest, rest in deployment.settings.models)
        deployment = self._models.get(model)
        if deployment is None:
            raise ModelNotFoundError(self._unknown_model_message(model))
        return Route(deployment.provider, model, True)

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
