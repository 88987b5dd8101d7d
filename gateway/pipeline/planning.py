"""Plans through model groups and conditional routes: `RoutedPlans` (when routing is configured).

A plan is the steps dispatch tries in order. For each model — the requested one, then each
fallback — `Router.route` says where it goes:

- a model no group or route takes: its one route, as without routing (the requested model's
  route gets the primary retries, a fallback's the fallback retries);
- a group: one step per try of its members in the router's order (`Routing.tries`), so a retry
  goes to another member before the same one comes round again; each step carries the member,
  so dispatch takes a place in its capacity first;
- a complexity tier naming a model or group: that, then the stronger tiers (`escalation`).

Every step carries the routing decision in one line (`Step.routed`) and its tier, which end up
in the call's `attempts`. A plan in which nothing may be tried fails before any provider is
called: RESOURCE_EXHAUSTED (with the soonest retry time) when members were left out for
capacity, UNAVAILABLE when their circuits are open, INVALID_ARGUMENT when none can serve the
request.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.errors import InvalidArgumentError, RateLimitedError, ServiceUnavailableError
from gateway.pipeline.dispatch import Step
from gateway.pipeline.routing.decision import AT_CAPACITY, CIRCUIT_OPEN, Routing
from gateway.pipeline.routing.features import (
    CHARS_PER_TOKEN,
    TOKENS_PER_MESSAGE,
    RequestFeatures,
    features_of,
)
from gateway.pipeline.routing.groups import RouteContext
from gateway.pipeline.routing.router import Router, UnknownTierError
from gateway.pipeline.types import CompletionRequest, EmbeddingRequest, MemberStatus
from providers.errors import UnknownModelError
from providers.registry import Route

log = logging.getLogger("gateway.routing")

#: The request metadata key that pins a complexity tier (`metadata: {"route_tier": "strong"}`).
TIER_METADATA_KEY = "route_tier"

#: Resolves a model (on a pinned deployment when given) to a route, or raises `UnknownModelError`.
Resolve = Callable[..., Route]
#: Why a route cannot serve the request, or None.
ProblemOf = Callable[[Route], str | None]


@dataclass(frozen=True, slots=True)
class PlanRetries:
    """How many extra tries the requested model and each fallback get."""

    primary: int
    fallback: int


class RoutedPlans:
    """Builds plans through the router (see the module docstring)."""

    def __init__(
        self,
        router: Router,
        retries: PlanRetries,
        fallbacks: Mapping[str, tuple[str, ...]],
    ) -> None:
        self._router = router
        self._retries = retries
        self._fallbacks = fallbacks

    def plan(
        self,
        request: CompletionRequest | EmbeddingRequest,
        *,
        resolve: Resolve,
        problem_of: ProblemOf,
        pin: str | None,
        context: RouteContext,
        stream: bool = False,
    ) -> tuple[Step, ...]:
        """The steps for `request` (see the module docstring)."""
        found: list[RequestFeatures] = []

        def features() -> RequestFeatures:
            if not found:
                found.append(_features(request, stream))
            return found[0]

        tier = request.metadata.get(TIER_METADATA_KEY) or None
        builder = _Builder(resolve, problem_of, features)
        try:
            routing = self._router.route(
                request.model, features, context=context, pin=pin, tier=tier
            )
        except UnknownTierError as exc:
            raise InvalidArgumentError(f"metadata.{TIER_METADATA_KEY}: {exc}") from None
        if routing is None:
            builder.direct(request.model, pin, self._retries.primary, primary=True)
        else:
            builder.routed(routing, self._retries.primary, fallback=False, pin=pin)
            self._escalate(builder, routing)
        fallbacks = request.routing.fallback_models or self._fallbacks.get(request.model, ())
        for index, model in enumerate(fallbacks):
            try:
                fallback = self._router.route(model, features, context=context)
            except UnknownTierError as exc:  # a complexity group as a fallback, a bad pin
                raise InvalidArgumentError(f"fallback_models[{index}]: {exc}") from None
            if fallback is None:
                builder.direct(model, None, self._retries.fallback, index=index)
            else:
                builder.routed(fallback, self._retries.fallback, fallback=True)
                self._escalate(builder, fallback)
        return builder.finish()

    def members_of(self, deployment: str) -> tuple[MemberStatus, ...]:
        """What this replica knows of each model of `deployment` that serves a group."""
        return tuple(
            MemberStatus(
                member.model,
                groups,
                in_flight=state.in_flight,
                latency=state.latency(stream=False),
                time_to_first_token=state.latency(stream=True),
                capacity_used=dict(state.used),
                chosen=dict(state.chosen),
            )
            for member, groups, state in self._router.members_of(deployment)
        )

    def _escalate(self, builder: _Builder, routing: Routing) -> None:
        """The stronger tiers after a complexity decision, each routed in turn."""
        for model in routing.escalation:
            stronger = self._router.route(model, builder.features)
            if stronger is None:
                builder.direct(model, None, self._retries.fallback, escalation=True)
            else:
                builder.routed(stronger, self._retries.fallback, fallback=True)


class _Builder:
    """The steps of one plan as they are added, and what was left out on the way."""

    def __init__(
        self, resolve: Resolve, problem_of: ProblemOf, features: Callable[[], RequestFeatures]
    ) -> None:
        self._resolve = resolve
        self._problem_of = problem_of
        self.features = features
        self.steps: list[Step] = []
        self._full: list[float] = []
        self._open = 0
        self._left_out: list[str] = []

    def direct(
        self,
        model: str,
        pin: str | None,
        retries: int,
        *,
        primary: bool = False,
        index: int = 0,
        escalation: bool = False,
        routed: str = "",
        tier: str = "",
        strict: bool = True,
    ) -> None:
        """The one route of a model outside every group, as without routing.

        The requested model's route must serve the request (else INVALID_ARGUMENT) when
        `strict`; otherwise, like a fallback's, it is skipped when its turn comes.
        """
        try:
            route = self._resolve(model, pin)
        except UnknownModelError as exc:
            if primary:
                raise
            where = "a complexity tier" if escalation else f"fallback_models[{index}]"
            raise InvalidArgumentError(f"{where}: {exc.message}") from None
        problem = self._problem_of(route)
        if problem is not None and primary and strict:
            raise InvalidArgumentError(problem)
        step = Step(route, retries, problem, routed=routed, tier=tier, fallback=not primary)
        self.steps.append(step)

    def routed(
        self, routing: Routing, retries: int, *, fallback: bool, pin: str | None = None
    ) -> None:
        """The steps of one routing decision: a group's members, or the model it reached."""
        summary = routing.summary()
        tier = routing.complexity.tier.name if routing.complexity is not None else ""
        log.info("routing decision", extra=routing.log_fields())
        if not routing.group:
            self.direct(
                routing.model,
                pin,
                retries,
                primary=not fallback,
                routed=summary,
                tier=tier,
                strict=not routing.escalation,  # a stronger tier may serve what this one cannot
            )
            return
        for skip in routing.skipped:
            if skip.reason == AT_CAPACITY:
                self._full.append(skip.retry_after)
            elif skip.reason == CIRCUIT_OPEN:
                self._open += 1
            else:
                self._left_out.append(f"{skip.member.key}: {skip.reason}")
        features = self.features()
        first = True
        for member in routing.tries(retries):
            route = self._resolve(member.model, member.deployment)
            self.steps.append(
                Step(
                    route,
                    0,
                    self._problem_of(route),
                    member=member,
                    group=routing.group,
                    features=features,
                    routed=summary,
                    tier=tier,
                    fallback=fallback and first,
                )
            )
            first = False

    def finish(self) -> tuple[Step, ...]:
        """The plan, or the error of a plan in which nothing may be tried."""
        if any(step.unsupported is None for step in self.steps):
            return tuple(self.steps)
        if self._full:
            raise RateLimitedError(
                "every deployment that could serve the call is at capacity; retry later",
                retry_after=min(self._full),
            )
        if self._open:
            raise ServiceUnavailableError(
                "every deployment that could serve the call has its circuit open; retry later"
            )
        problems = [s.unsupported for s in self.steps if s.unsupported] + self._left_out
        raise InvalidArgumentError(
            "no deployment can serve the request: " + "; ".join(problems or ["none configured"])
        )


def _features(request: CompletionRequest | EmbeddingRequest, stream: bool) -> RequestFeatures:
    """What routing reads of `request` (an embedding call: its size alone)."""
    if isinstance(request, CompletionRequest):
        chat = request.chat
        return features_of(
            chat,
            stream=stream,
            tools=len(chat.tools),
            structured_output=chat.response_format is not None,
            reasoning_effort=chat.reasoning_effort or "",
        )
    chars = sum(len(text) for text in request.embed.inputs)
    tokens = math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(request.embed.inputs)
    return RequestFeatures(prompt_tokens=tokens, max_tokens=0)
