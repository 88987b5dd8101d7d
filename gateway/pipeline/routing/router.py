"""Which deployments a call goes to, in which order, and why: `Router.route`.

For the model a request names:

1. the first matching conditional route (`routes:`) replaces it (routes do not chain);
2. an alias is replaced by its target;
3. a `complexity` group scores the request and picks a tier (or takes the caller's pinned tier);
   the tier names a model or a group, and the stronger tiers after it are its `escalation`;
4. a group orders its members by its strategy, leaving out those that cannot take the call now:
   circuit open, known to be at capacity, context window too small for the prompt and requested
   output, or lacking a capability the request needs.

`route` returns None when none of that applies (a model outside every group and route): the call
is resolved as it always was, at no cost. Otherwise the `Routing` holds the members to try in
order — `tries(retries)` goes through every member before any comes round again, so a retry
lands on another deployment of the group first — or, when the name reached is not a group,
the model to resolve as before. Fallbacks are routed the same way, each after the one before.
A pinned deployment (`provider`) keeps only the group's members on it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from gateway.pipeline.pricing import FREE_KINDS, Price, PriceTable
from gateway.pipeline.routing.capacity import CONCURRENT_RETRY_AFTER
from gateway.pipeline.routing.complexity import Complexity, ComplexityScorer, ExampleMatch
from gateway.pipeline.routing.decision import (
    AT_CAPACITY,
    CIRCUIT_OPEN,
    CONTEXT_WINDOW,
    LACKS,
    NONE_ELIGIBLE,
    PINNED,
    Routing,
    Skip,
)
from gateway.pipeline.routing.features import CAPABILITIES, RequestFeatures
from gateway.pipeline.routing.groups import (
    COMPLEXITY,
    Member,
    ModelGroup,
    RouteContext,
    RoutingConfig,
)
from gateway.pipeline.routing.state import DeploymentStates, MemberState
from gateway.pipeline.routing.strategies import (
    Candidate,
    Ordered,
    PriceOf,
    Strategy,
    strategy_for,
)
from metrics import ROUTING_COMPLEXITY_SCORE, ROUTING_DECISIONS, ROUTING_SKIPPED, labeled
from providers.base import ProviderSettings
from providers.registry import RouteTable
from resilience.breaker import OPEN, CircuitBreaker

_UNORDERED = Ordered((), "")

#: What a member's model can do (`features.CAPABILITIES` names).
CapabilitiesOf = Callable[[Member], frozenset[str]]
#: Whether a deployment's circuit is open (and not yet due for its probe).
CircuitOpen = Callable[[str], bool]


class UnknownTierError(LookupError):
    """A caller pinned a tier its complexity group does not have."""


class Router:
    """Routes requested models through the configured groups and routes (built once, at start)."""

    def __init__(
        self,
        config: RoutingConfig,
        table: RouteTable,
        states: DeploymentStates,
        *,
        price_of: PriceOf,
        circuit_open: CircuitOpen,
        capabilities: CapabilitiesOf | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._groups = dict(config.groups)
        self._routes = config.routes
        self._table = table
        self._states = states
        self._circuit_open = circuit_open
        self._capabilities = capabilities or _everything
        rng = rng or random.Random()  # noqa: S311  # spreading load, not secrecy
        self._strategies: dict[str, Strategy] = {}
        self._scorers: dict[str, ComplexityScorer] = {}
        for name, group in self._groups.items():
            if group.strategy == COMPLEXITY:
                self._scorers[name] = ComplexityScorer(group)
            else:
                self._strategies[name] = strategy_for(group, rng, price_of)

    def groups(self) -> Mapping[str, ModelGroup]:
        """Every configured group by name."""
        return self._groups

    def members_of(self, deployment: str) -> list[tuple[Member, tuple[str, ...], MemberState]]:
        """Each member on `deployment` (once per model), the groups it serves, and its state."""
        found: dict[str, tuple[Member, list[str]]] = {}
        for group in self._groups.values():
            for member in group.members:
                if member.deployment == deployment:
                    found.setdefault(member.key, (member, []))[1].append(group.name)
        return [
            (member, tuple(groups), self._states.of(member)) for member, groups in found.values()
        ]

    def route(
        self,
        model: str,
        features: Callable[[], RequestFeatures],
        *,
        context: RouteContext | None = None,
        pin: str | None = None,
        tier: str | None = None,
        example: ExampleMatch | None = None,
    ) -> Routing | None:
        """Route `model` for one call (None: resolve it as before, nothing applies).

        `features` is called at most once, only when a group is reached. `pin` is the caller's
        deployment pin, `tier` its pinned complexity tier, `example` the `ExampleMatcher`'s
        answer for the request when its group has examples.
        """
        rule, target = self._reroute(model, context)
        group = self._groups.get(self._table.unalias(target))
        if group is None:
            return None if rule is None else Routing(model, target, route=rule)
        found = features()
        complexity: Complexity | None = None
        complexity_group = ""
        escalation: tuple[str, ...] = ()
        if group.strategy == COMPLEXITY:
            complexity, escalation = self._choose_tier(group, found, tier, example)
            complexity_group, target = group.name, complexity.tier.model
            inner = self._groups.get(self._table.unalias(target))
            self._count_tier(group, complexity, inner)
            if inner is None:
                return Routing(
                    model,
                    target,
                    complexity=complexity,
                    complexity_group=complexity_group,
                    escalation=escalation,
                    route=rule,
                )
            group = inner
        ordered, skipped = self._order(group, found, pin)
        if ordered is None:  # the pinned deployment serves none of the group: resolve as before
            ordered, group_name, strategy = _UNORDERED, "", ""
        else:
            target = group_name = group.name
            strategy = group.strategy
        return Routing(
            model,
            target,
            group=group_name,
            strategy=strategy,
            order=ordered.members,
            reason=ordered.reason,
            skipped=skipped,
            complexity=complexity,
            complexity_group=complexity_group,
            escalation=escalation,
            route=rule,
        )

    def _reroute(self, model: str, context: RouteContext | None) -> tuple[int | None, str]:
        """The first conditional route's index and target, or (None, `model`)."""
        if context is not None:
            for index, rule in enumerate(self._routes):
                if rule.matches(model, context):
                    return index, rule.model
        return None, model

    def _choose_tier(
        self,
        group: ModelGroup,
        features: RequestFeatures,
        tier: str | None,
        example: ExampleMatch | None,
    ) -> tuple[Complexity, tuple[str, ...]]:
        names = [t.name for t in group.tiers]
        if tier is not None and tier not in names:
            raise UnknownTierError(
                f"model {group.name!r} has no tier {tier!r}; its tiers: {', '.join(names)}"
            )
        complexity = self._scorers[group.name].choose(features, example=example, pinned=tier)
        labeled(ROUTING_COMPLEXITY_SCORE, group.name).observe(complexity.score)
        after = group.tiers[names.index(complexity.tier.name) + 1 :]
        return complexity, tuple(t.model for t in after)

    def _count_tier(
        self, group: ModelGroup, complexity: Complexity, inner: ModelGroup | None
    ) -> None:
        """Count the tier chosen; by deployment when it names one (a group counts its own)."""
        target = None if inner is not None else self._table.target(complexity.tier.model)
        provider = target.deployment if target is not None else ""
        reason = f"tier:{complexity.tier.name}"
        labeled(ROUTING_DECISIONS, group.name, COMPLEXITY, provider, reason).inc()

    def _order(
        self, group: ModelGroup, features: RequestFeatures, pin: str | None
    ) -> tuple[Ordered | None, tuple[Skip, ...]]:
        """The group's members in order (None: the pin names no member), and those left out."""
        members = group.members
        if pin:
            members = tuple(m for m in members if m.deployment == pin)
            if not members:
                return None, ()
        candidates = []
        skipped = []
        for member in members:
            skip = self._excluded(member, features)
            if skip is not None:
                skipped.append(skip)
                labeled(ROUTING_SKIPPED, group.name, member.deployment, skip.reason).inc()
                continue
            state = self._states.of(member)
            latency = state.latency(features.stream)
            candidates.append(Candidate(member, state.in_flight, latency, state.headroom))
        if not candidates:
            ordered = Ordered((), NONE_ELIGIBLE)
        elif pin:
            ordered = Ordered(tuple(c.member for c in candidates), PINNED)
        else:
            ordered = self._strategies[group.name].order(candidates, features)
        first = ordered.members[0].deployment if ordered.members else ""
        labeled(ROUTING_DECISIONS, group.name, group.strategy, first, ordered.reason).inc()
        if ordered.members:
            self._states.put_first(ordered.members[0], group.name, group.strategy, ordered.reason)
        return ordered, tuple(skipped)

    def _excluded(self, member: Member, features: RequestFeatures) -> Skip | None:
        """Why `member` cannot take this call now, or None when it can."""
        if self._circuit_open(member.deployment):
            return Skip(member, CIRCUIT_OPEN)
        full_for = self._states.full_for(member)
        if full_for > 0:
            return Skip(member, AT_CAPACITY, full_for)
        most, window = member.capacity.max_concurrent, member.capacity.context_window
        if most is not None and self._states.of(member).in_flight >= most:
            return Skip(member, AT_CAPACITY, CONCURRENT_RETRY_AFTER)
        if window is not None and features.prompt_tokens + (features.max_tokens or 0) > window:
            return Skip(member, CONTEXT_WINDOW)
        missing = features.needs - self._capabilities(member)
        if missing:
            return Skip(member, LACKS + min(missing))
        return None


def _everything(member: Member) -> frozenset[str]:
    return CAPABILITIES


def price_lookup(table: PriceTable, providers: Iterable[ProviderSettings]) -> PriceOf:
    """Members' prices from the price table; models of free kinds (mock, ollama) cost 0."""
    free = frozenset(p.name for p in providers if p.kind in FREE_KINDS)
    zero = Price(input=0.0, output=0.0)

    def price_of(member: Member) -> Price | None:
        if member.deployment in free:
            return table.lookup(member.deployment, member.model) or zero
        return table.lookup(member.deployment, member.model)

    return price_of


def open_circuits(breakers: Callable[[str], CircuitBreaker]) -> CircuitOpen:
    """`CircuitOpen` over the gateway's breakers: open, and its probe not yet due."""

    def circuit_open(deployment: str) -> bool:
        breaker = breakers(deployment)
        if breaker.state != OPEN:
            return False
        next_probe = breaker.status().next_probe_at
        return next_probe is not None and next_probe > datetime.now(UTC)

    return circuit_open
