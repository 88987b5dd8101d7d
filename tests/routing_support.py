"""Helpers for routing tests: requests of the pipeline's shape, a router over simulated time.

`Text`, `Image`, `Call`, `Msg`, `Sampling` and `Request` have the shape of the draft
`providers/types.py` values (messages with parts, sampling) that `features_of` reads; when that
module lands, tests can build its own values instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gateway.pipeline.pricing import Price, PriceTable
from gateway.pipeline.routing.features import RequestFeatures
from gateway.pipeline.routing.groups import Member, ModelGroup, RouteRule, RoutingConfig
from gateway.pipeline.routing.router import CapabilitiesOf, CircuitOpen, Router, price_lookup
from gateway.pipeline.routing.state import DeploymentStates
from providers.base import ProviderSettings
from providers.registry import RouteTable


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Image:
    url: str = "https://example.test/cat.png"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Call:
    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class Msg:
    role: str
    parts: tuple[Text | Image, ...] = ()
    tool_calls: tuple[Call, ...] = ()
    tool_call_id: str = ""


@dataclass(frozen=True, slots=True)
class Sampling:
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Request:
    model: str
    messages: tuple[Msg, ...]
    sampling: Sampling = field(default_factory=Sampling)


def user(text: str, *images: Image) -> Msg:
    """A user message of `text` and then `images`."""
    return Msg("user", (Text(text), *images))


class Clock:
    """Simulated seconds, moved by the test."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def deployments(*names: str, kind: str = "openai") -> tuple[ProviderSettings, ...]:
    """Deployments of `kind` called `names`, each listing the model "m"."""
    return tuple(
        ProviderSettings(name=n, kind=kind, models=("m",), base_url=f"http://{n}.test")
        for n in names
    )


def group(name: str, strategy: str, *members: Member, **options: object) -> ModelGroup:
    """A group of `members` with `strategy`."""
    return ModelGroup(name, strategy, members=members, **options)  # type: ignore[arg-type]


def make_router(
    *groups: ModelGroup,
    routes: Iterable[RouteRule] = (),
    providers: Iterable[ProviderSettings] | None = None,
    aliases: Mapping[str, str] | None = None,
    states: DeploymentStates | None = None,
    seed: int = 7,
    prices: Mapping[str, Price] | None = None,
    circuit_open: CircuitOpen = lambda deployment: False,
    capabilities: CapabilitiesOf | None = None,
) -> Router:
    """A router over `groups`; its deployments default to every member's, of kind openai."""
    if providers is None:
        names = sorted({m.deployment for g in groups for m in g.members})
        providers = deployments(*names)
    providers = tuple(providers)
    config = RoutingConfig({g.name: g for g in groups}, tuple(routes))
    table = PriceTable(prices or {}, providers)
    return Router(
        config,
        RouteTable(providers, aliases or {}),
        states or DeploymentStates(),
        price_of=price_lookup(table, providers),
        circuit_open=circuit_open,
        capabilities=capabilities,
        rng=random.Random(seed),  # noqa: S311  # a seeded simulation, not secrecy
    )


def plain(features: RequestFeatures | None = None) -> Callable[[], RequestFeatures]:
    """A features callback for `Router.route` (a small plain request by default)."""
    found = features or RequestFeatures(prompt_tokens=20, messages=1, last_user_text="hi")
    return lambda: found
