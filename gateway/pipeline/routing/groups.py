"""Model groups and conditional routes, as the config file declares them.

A *model group* is one public model name served by several deployments (its *members*), each
with the model name that deployment knows, a weight and an optional capacity. Its *strategy*
orders the members for each call. A group with strategy `complexity` has no members of its own:
it has ordered *tiers* (cheap first), each naming a model or another group, and picks one per
call from a score of the request.

A *route* sends a request to another model or group by who asks and why: the caller's tenant,
its `use_case` metadata or its API key, optionally only for some requested models. The first
route that matches wins; a request no route matches keeps its model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

WEIGHTED: Final = "weighted"
LEAST_BUSY: Final = "least_busy"
LATENCY: Final = "latency"
COST: Final = "cost"
USAGE: Final = "usage"
COMPLEXITY: Final = "complexity"
#: Every strategy a group may name; the first is the default.
STRATEGIES: Final = (WEIGHTED, LEAST_BUSY, LATENCY, COST, USAGE, COMPLEXITY)

#: Share of a latency group's calls sent to another member than the fastest, to keep measuring.
DEFAULT_EXPLORATION = 0.05


@dataclass(frozen=True, slots=True)
class Capacity:
    """What one deployment's model may take; None is no bound.

    `rpm` and `tpm` hold across replicas (counted in Redis when it is configured);
    `max_concurrent` is per replica; `context_window` is prompt plus requested output tokens.
    """

    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    context_window: int | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """A deployment serving a group, with the model name it knows and its share of calls."""

    deployment: str
    model: str
    weight: float = 1.0
    capacity: Capacity = field(default_factory=Capacity)

    @property
    def key(self) -> str:
        """`<deployment>/<model>`: how capacity, state and logs name the member."""
        return f"{self.deployment}/{self.model}"


@dataclass(frozen=True, slots=True)
class Tier:
    """A complexity tier: requests scoring at most `max_score` go to `model` (a model or group)."""

    name: str
    model: str
    max_score: float = 1.0


@dataclass(frozen=True, slots=True)
class ModelGroup:
    """A public model name and how calls to it are spread (see the module docstring)."""

    name: str
    strategy: str = WEIGHTED
    members: tuple[Member, ...] = ()
    #: Strategy `complexity`: the tiers, cheapest first; the last takes every score.
    tiers: tuple[Tier, ...] = ()
    #: Strategy `complexity`: phrase -> points added to the score when the prompt has it
    #: (negative for phrases of simple requests); merged over the built-in phrases.
    keywords: Mapping[str, float] = field(default_factory=dict)
    #: Strategy `complexity`: tier name -> example requests for it, matched by similarity.
    examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Strategy `latency`: share of calls sent to another member than the fastest.
    exploration: float = DEFAULT_EXPLORATION


@dataclass(frozen=True, slots=True)
class RouteContext:
    """Who asks and why, as routes see it ("" when unknown)."""

    #: The tenant the call counts against (from the credential, else `metadata.tenant`).
    tenant: str = ""
    #: The request's `metadata.use_case`.
    use_case: str = ""
    #: The id of the gateway API key the caller used.
    api_key: str = ""


@dataclass(frozen=True, slots=True)
class RouteRule:
    """Send matching requests to `model`. Every condition given must hold; an empty one is any.

    Each condition is a set of accepted values: `tenants`, `use_cases`, `api_keys` (key ids),
    and `models`, the requested model names the route applies to.
    """

    model: str
    tenants: frozenset[str] = frozenset()
    use_cases: frozenset[str] = frozenset()
    api_keys: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()

    def matches(self, requested: str, context: RouteContext) -> bool:
        """Whether a request for `requested` from `context` takes this route."""
        return (
            (not self.models or requested in self.models)
            and (not self.tenants or context.tenant in self.tenants)
            and (not self.use_cases or context.use_case in self.use_cases)
            and (not self.api_keys or context.api_key in self.api_keys)
        )


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """The config file's `groups` (by public name) and `routes` (in order)."""

    groups: Mapping[str, ModelGroup] = field(default_factory=dict)
    routes: tuple[RouteRule, ...] = ()
