"""What this replica knows about each group member: calls in flight, recent latency, capacity.

Latency is a *decayed average*: every observation counts with weight 1, and every weight halves
each `half_life` seconds, so the average follows the last several seconds of calls however many
there were, and a member that gets no calls keeps the average it had. Two are kept per member:
time to first token (streams) and whole latency (unary calls); a request is compared on its kind.
Only tries that got an answer are observed: a fast failure must not look like a fast deployment
(failures are the circuit breaker's business).

Capacity is what the last rate-limit decision said (`charged`, `refused`): the share of each
limit used, and until when the member is known to be full, so the next calls skip it without
asking Redis. Every change is mirrored in the routing metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.pipeline.routing.groups import Member
from gateway.tenancy.limits import Decision
from metrics import DEPLOYMENT_CAPACITY_USED, DEPLOYMENT_IN_FLIGHT, DEPLOYMENT_LATENCY, labeled

#: Seconds after which an observation counts half as much in the latency averages.
DEFAULT_LATENCY_HALF_LIFE_SECONDS = 5.0


class DecayedAverage:
    """An average over observations whose weight halves every `half_life` seconds."""

    __slots__ = ("_at", "_decay", "_sum", "_weight")

    def __init__(self, half_life: float) -> None:
        if half_life <= 0:
            raise ValueError(f"half_life must be positive, got {half_life}")
        self._decay = math.log(2) / half_life
        self._sum = 0.0
        self._weight = 0.0
        self._at = 0.0

    def add(self, value: float, now: float) -> None:
        """Observe `value` at time `now` (seconds, never going back)."""
        if self._weight:
            keep = math.exp(-self._decay * max(0.0, now - self._at))
            self._sum *= keep
            self._weight *= keep
        self._sum += value
        self._weight += 1.0
        self._at = now

    @property
    def value(self) -> float | None:
        """The average, or None before the first observation."""
        return self._sum / self._weight if self._weight else None


@dataclass(slots=True)
class MemberState:
    """One member's state on this replica."""

    unary: DecayedAverage
    ttft: DecayedAverage
    in_flight: int = 0
    #: Until when (state clock) the member is known to be at capacity.
    full_until: float = 0.0
    #: Limit name ("rpm", "tpm", "concurrent") -> share used, as last seen.
    used: dict[str, float] = field(default_factory=dict)
    #: "<group>/<strategy>/<reason>" -> calls routing put the member first for.
    chosen: dict[str, int] = field(default_factory=dict)

    def latency(self, stream: bool) -> float | None:
        """Recent time to first token (`stream`) or whole latency, in seconds."""
        return (self.ttft if stream else self.unary).value

    @property
    def headroom(self) -> float:
        """The share of its tightest limit left (1.0 with no limit seen)."""
        return 1.0 - max(self.used.values(), default=0.0)


class DeploymentStates:
    """Every member's `MemberState` on this replica, keyed by `Member.key`."""

    def __init__(
        self,
        *,
        half_life: float = DEFAULT_LATENCY_HALF_LIFE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._half_life = half_life
        self._clock = clock
        self._states: dict[str, MemberState] = {}

    def now(self) -> float:
        """The clock the states keep time by."""
        return self._clock()

    def of(self, member: Member) -> MemberState:
        """The member's state (a fresh one the first time)."""
        state = self._states.get(member.key)
        if state is None:
            state = self._states[member.key] = MemberState(
                DecayedAverage(self._half_life), DecayedAverage(self._half_life)
            )
        return state

    def started(self, member: Member) -> None:
        """A call to `member` is in flight."""
        state = self.of(member)
        state.in_flight += 1
        self._show_in_flight(member, state)

    def finished(self, member: Member, *, latency: float | None, stream: bool) -> None:
        """A call to `member` ended; `latency` (seconds) when it got an answer, else None.

        For a stream, `latency` is the time to its first token.
        """
        state = self.of(member)
        state.in_flight = max(0, state.in_flight - 1)
        self._show_in_flight(member, state)
        if latency is None:
            return
        average = state.ttft if stream else state.unary
        average.add(latency, self._clock())
        kind = "ttft" if stream else "unary"
        labeled(DEPLOYMENT_LATENCY, member.deployment, member.model, kind).set(average.value or 0)

    def put_first(self, member: Member, group: str, strategy: str, reason: str) -> None:
        """Routing put `member` first in `group`'s order, by `strategy`, for `reason`."""
        chosen = self.of(member).chosen
        label = f"{group}/{strategy}/{reason}"
        chosen[label] = chosen.get(label, 0) + 1

    def charged(self, member: Member, decision: Decision) -> None:
        """Record what an admitting rate-limit decision said of the member's limits."""
        state = self.of(member)
        for limit_state in decision.states:
            limit = limit_state.limit
            if limit.limit:
                used = 1.0 - limit_state.remaining / limit.limit
                self._show_used(member, state, limit.name, min(1.0, max(0.0, used)))

    def refused(self, member: Member, limit: str, retry_after: float) -> None:
        """The member's `limit` is full for `retry_after` seconds."""
        state = self.of(member)
        state.full_until = max(state.full_until, self._clock() + retry_after)
        self._show_used(member, state, limit, 1.0)

    def full_for(self, member: Member) -> float:
        """Seconds until the member is no longer known to be full (0: not known full)."""
        state = self._states.get(member.key)
        return 0.0 if state is None else max(0.0, state.full_until - self._clock())

    def _show_in_flight(self, member: Member, state: MemberState) -> None:
        labeled(DEPLOYMENT_IN_FLIGHT, member.deployment, member.model).set(state.in_flight)
        if member.capacity.max_concurrent:
            used = state.in_flight / member.capacity.max_concurrent
            self._show_used(member, state, "concurrent", min(1.0, used))

    def _show_used(self, member: Member, state: MemberState, limit: str, used: float) -> None:
        state.used[limit] = used
        labeled(DEPLOYMENT_CAPACITY_USED, member.deployment, member.model, limit).set(used)
