"""A routing decision: the members to try in order, those left out and why, and how to say it.

`Router.route` makes them (see `gateway.pipeline.routing.router`); dispatch tries the members
(`Routing.tries`), and the decision goes to the logs (`log_fields`), the response's routing
header and the attempts (`summary`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.pipeline.routing.complexity import Complexity
from gateway.pipeline.routing.groups import Member

#: Why a member was left out of a call's order (`Skip.reason`, and a metric label).
CIRCUIT_OPEN: Final = "circuit_open"
AT_CAPACITY: Final = "at_capacity"
CONTEXT_WINDOW: Final = "context_window"
LACKS: Final = "lacks_"  # + the capability, e.g. "lacks_images"
#: `Routing.reason` when a pinned deployment chose the members.
PINNED: Final = "pinned"
#: `Routing.reason` when no member may take the call.
NONE_ELIGIBLE: Final = "none_eligible"


@dataclass(frozen=True, slots=True)
class Skip:
    """A member left out of a call's order, why, and (at capacity) for how long."""

    member: Member
    reason: str
    retry_after: float = 0.0


@dataclass(frozen=True, slots=True)
class Routing:
    """Where one requested model goes (see `gateway.pipeline.routing.router`)."""

    requested: str
    #: The name reached after routes, aliases and tiers: a group's, or a model to resolve as before.
    model: str
    #: The group whose members `order` holds ("" when `model` is not a group).
    group: str = ""
    strategy: str = ""
    order: tuple[Member, ...] = ()
    #: Why the first member is first (or `NONE_ELIGIBLE`).
    reason: str = ""
    skipped: tuple[Skip, ...] = ()
    #: The complexity group's decision, when one was on the way.
    complexity: Complexity | None = None
    complexity_group: str = ""
    #: The stronger tiers' models, to try after this one, before the configured fallbacks.
    escalation: tuple[str, ...] = ()
    #: The index of the conditional route taken, if one was.
    route: int | None = None

    def tries(self, retries: int) -> list[Member]:
        """Members in the order to try: each once, then round again to `1 + retries` tries."""
        if not self.order:
            return []
        count = max(len(self.order), 1 + retries)
        return [self.order[i % len(self.order)] for i in range(count)]

    @property
    def retry_after(self) -> float | None:
        """The soonest a member left out for capacity has room (None: none was)."""
        waits = [s.retry_after for s in self.skipped if s.reason == AT_CAPACITY]
        return min(waits, default=None)

    def summary(self) -> str:
        """The decision in one line, for logs and the response's routing header."""
        parts = []
        if self.route is not None:
            parts.append(f"route[{self.route}] -> {self.model}")
        if self.complexity is not None:
            parts.append(f"{self.complexity_group}: {self.complexity.reason}")
        if self.group:
            first = f"{self.order[0].key} first" if self.order else "no member"
            parts.append(f"group {self.group} ({self.strategy}): {first} ({self.reason})")
        if self.skipped:
            left_out = ", ".join(f"{s.member.key} ({s.reason})" for s in self.skipped)
            parts.append(f"skipped {left_out}")
        return "; ".join(parts)

    def log_fields(self) -> dict[str, object]:
        """The decision as structured log fields."""
        fields: dict[str, object] = {"route_model": self.model}
        if self.group:
            fields.update(
                route_group=self.group,
                route_strategy=self.strategy,
                route_reason=self.reason,
                route_order=[m.key for m in self.order],
            )
        if self.skipped:
            fields["route_skipped"] = {s.member.key: s.reason for s in self.skipped}
        if self.complexity is not None:
            fields.update(
                route_tier=self.complexity.tier.name,
                route_score=round(self.complexity.score, 3),
                route_tier_reason=self.complexity.reason,
            )
        return fields
