"""The provider registry: builds the configured deployments and routes a model name to one.

Routing, first rule that applies wins:

1. an alias from the config's `models:` table is replaced by its target;
2. a pinned provider (the request's `provider` field or the `x-provider` header) takes the
   model as it is (a leading "<pin>/" is dropped);
3. "<deployment>/<model>" names a deployment and passes the rest through, so any model a
   deployment serves can be reached even when the config does not list it;
4. a model listed by a deployment goes to that deployment (the first by name when several do).

Anything else is `UnknownModelError`, whose message lists the models that are known.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from providers import anthropic, azure_openai, cohere, gemini, mock, ollama, openai
from providers.base import AdapterSpec, Provider, ProviderSettings
from providers.embed_types import Embedder
from providers.embeddings import cohere as cohere_embed
from providers.embeddings import gemini as gemini_embed
from providers.embeddings import mock as mock_embed
from providers.embeddings import ollama as ollama_embed
from providers.embeddings import openai as openai_embed
from providers.embeddings.base import EmbedderSpec
from providers.errors import UnknownModelError
from providers.http.client import UpstreamClient
from providers.keys import KeyPool

MAX_LISTED_MODELS = 50

log = logging.getLogger("gateway.providers")


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
    #: Its embeddings, when its kind can embed (`EMBEDDERS`); None when it cannot.
    embedder: Embedder | None = None


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

#: Every adapter kind that can embed. Adding one: a module in `providers.embeddings`, one line here.
EMBEDDERS: Final[Mapping[str, EmbedderSpec]] = {
    spec.kind: spec
    for spec in (
        mock_embed.SPEC,
        openai_embed.SPEC,
        openai_embed.AZURE_SPEC,
        gemini_embed.SPEC,
        cohere_embed.SPEC,
        ollama_embed.SPEC,
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
    embedding = EMBEDDERS.get(settings.kind)
    embedder = embedding.factory(settings, session, keys) if embedding is not None else None
    return Deployment(settings, spec.factory(settings, session, keys), keys, embedder)


def log_enabled(providers: Sequence[ProviderSettings]) -> None:
    """Say at start which deployments serve calls, and whether the built-in mock is one (why)."""
    built_in = {spec.kind for spec in ADAPTERS.values() if spec.built_in}
    real = [p for p in providers if p.kind not in built_in]
    if len(real) == len(providers):
        mock_state = (
            f"off: a real provider is configured ({mock.SPEC.env_prefix}_ENABLED=true keeps it)"
        )
    elif real:
        mock_state = "on, next to real providers (enabled explicitly)"
    else:
        mock_state = "on: no real provider is configured"
    log.info(
        "providers enabled",
        extra={"providers": [f"{p.name} ({p.kind})" for p in providers], "mock": mock_state},
    )


class RouteTable:
    """The routing rules over deployment names and the models they list; no adapter needed.

    The registry routes every call with it, and the config checks every reference in the YAML
    file with it at start, so a reference that starts is one that routes.
    """

    def __init__(self, deployments: Iterable[ProviderSettings], aliases: Mapping[str, str]) -> None:
        self._listed = {d.name: d.models for d in sorted(deployments, key=lambda d: d.name)}
        self._aliases = dict(aliases)
        self._models: dict[str, str] = {}
        for name, models in self._listed.items():
            for model in models:
                self._models.setdefault(model, name)

    @property
    def deployment_names(self) -> list[str]:
        """Every deployment name, in order."""
        return list(self._listed)

    def known_models(self, *, aliases: bool = True) -> list[str]:
        """Every listed model (and alias), in order."""
        return sorted({*self._models, *(self._aliases if aliases else ())})

    def lists(self, model: str) -> bool:
        """Whether some deployment lists `model` by that very name."""
        return model in self._models

    def unalias(self, model: str) -> str:
        """The model an alias stands for (any other name as it is)."""
        return self._aliases.get(model, model)

    def target(self, model: str, pin: str | None = None) -> RouteTarget | None:
        """Where `model` goes (to deployment `pin` when given), or None when no rule applies."""
        model = self.unalias(model)
        if pin:
            listed = self._listed.get(pin)
            if listed is None:
                return None
            model = model.removeprefix(pin + "/")
            return RouteTarget(pin, model, model in listed)
        prefix, slash, rest = model.partition("/")
        if slash and rest and prefix in self._listed:
            return RouteTarget(prefix, rest, rest in self._listed[prefix])
        name = self._models.get(model)
        return None if name is None else RouteTarget(name, model, True)


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """A deployment name and the model name that deployment knows."""

    deployment: str
    model: str
    #: Whether the deployment's config lists the model.
    listed: bool


class ProviderRegistry:
    """All configured deployments, and the routing table over their models."""

    def __init__(self, deployments: Iterable[Deployment], aliases: Mapping[str, str]) -> None:
        self._deployments = {d.settings.name: d for d in sorted(deployments, key=_by_name)}
        self._routes = RouteTable((d.settings for d in self._deployments.values()), aliases)

    @classmethod
    def from_settings(
        cls,
        providers: Iterable[ProviderSettings],
        aliases: Mapping[str, str],
        session: UpstreamClient,
        *,
        key_cooldown: float,
    ) -> ProviderRegistry:
        """Build every deployment in `providers` over the shared HTTP `session` (and log them)."""
        providers = tuple(providers)
        log_enabled(providers)
        deployments = (build_deployment(p, session, key_cooldown=key_cooldown) for p in providers)
        return cls(deployments, aliases)

    @property
    def deployments(self) -> list[Deployment]:
        """Every deployment, ordered by name."""
        return list(self._deployments.values())

    def resolve(self, model: str, pin: str | None = None) -> Route:
        """Route `model` (optionally pinned to deployment `pin`) or raise `UnknownModelError`."""
        if pin and pin not in self._deployments:
            raise UnknownModelError(
                f"unknown provider {pin!r}; known providers: {', '.join(self._deployments)}"
            )
        target = self._routes.target(model, pin)
        if target is None:
            raise UnknownModelError(self._unknown_model_message(self._routes.unalias(model)))
        return Route(self._deployments[target.deployment].provider, target.model, target.listed)

    def resolve_embedding(self, model: str, pin: str | None = None) -> Route:
        """Route an embedding `model`: as `resolve`, and also by an embedding model's bare name
        (the first deployment by name whose kind lists it). Whether the deployment can embed at
        all is `embedder`'s to say."""
        try:
            return self.resolve(model, pin)
        except UnknownModelError:
            if pin:
                raise
            name = self._routes.unalias(model)
            for deployment in self._deployments.values():
                spec = EMBEDDERS.get(deployment.settings.kind)
                if spec is not None and name in spec.models:
                    return Route(deployment.provider, name, True)
            raise

    def embedder(self, deployment: str) -> Embedder | None:
        """The embeddings of `deployment`, or None when its kind cannot embed."""
        found = self._deployments.get(deployment)
        return found.embedder if found is not None else None

    def _unknown_model_message(self, model: str) -> str:
        known = self._routes.known_models()
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
