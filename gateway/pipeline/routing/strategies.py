"""How a group orders its members for one call: the strategies.

Each strategy orders `Candidate`s — a member and this replica's view of it (calls in flight,
recent latency for the request's kind, capacity headroom) — drawing its chances from the
`random.Random` it is given, so a seeded one replays the same choices. `order` returns every
candidate, the one to try first at the head, and why it is first. Which members may serve at
all (circuit closed, not full, able to take the request) is settled before, by the router: a
strategy orders only those.

- `weighted`: random, in proportion to the weights (each later place drawn from the rest).
- `least_busy`: fewest calls in flight first; ties drawn by weight.
- `latency`: lowest recent latency first, a member never measured before any measured one; a
  share `exploration` of calls puts another member first, so a recovered one is noticed.
- `cost`: cheapest first for this request's estimated prompt and output tokens; members without
  a known price after the priced ones.
- `usage`: most capacity headroom (the share of its tightest limit left) first.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from gateway.pipeline.pricing import PER_TOKENS, Price
from gateway.pipeline.routing.features import RequestFeatures
from gateway.pipeline.routing.groups import (
    COST,
    LATENCY,
    LEAST_BUSY,
    USAGE,
    WEIGHTED,
    Member,
    ModelGroup,
)

#: Why a member was put first (the `reason` of the routing metrics).
BY_WEIGHT: Final = "weighted"
FEWEST_IN_FLIGHT: Final = "fewest_in_flight"
FASTEST: Final = "fastest"
UNMEASURED: Final = "unmeasured"
EXPLORE: Final = "explore"
CHEAPEST: Final = "cheapest"
UNPRICED: Final = "unpriced"
MOST_HEADROOM: Final = "most_headroom"

#: The price of a member's model (None: unknown).
PriceOf = Callable[[Member], Price | None]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A member that may serve the call, and what this replica knows of it now."""

    member: Member
    in_flight: int = 0
    #: Recent latency for the request's kind (time to first token for a stream), in seconds.
    latency: float | None = None
    #: Share of its tightest capacity limit left.
    headroom: float = 1.0


@dataclass(frozen=True, slots=True)
class Ordered:
    """Members in the order to try them, and why the first is first."""

    members: tuple[Member, ...]
    reason: str


class Strategy(Protocol):
    """Orders the members that may serve one call."""

    @property
    def name(self) -> str:
        """The strategy's name in the config and the metrics."""
        ...

    def order(self, candidates: Sequence[Candidate], features: RequestFeatures) -> Ordered:
        """Every candidate, the one to try first at the head."""
        ...


class Weighted:
    """Random order, each place drawn in proportion to the weights of the members left."""

    name = WEIGHTED

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def order(self, candidates: Sequence[Candidate], features: RequestFeatures) -> Ordered:
        """See `Strategy.order`."""
        return _ordered(weighted_shuffle(candidates, self._rng), BY_WEIGHT)


class LeastBusy:
    """Fewest calls in flight first; equal ones in weighted random order."""

    name = LEAST_BUSY

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def order(self, candidates: Sequence[Candidate], features: RequestFeatures) -> Ordered:
        """See `Strategy.order`."""
        shuffled = weighted_shuffle(candidates, self._rng)
        return _ordered(sorted(shuffled, key=lambda c: c.in_flight), FEWEST_IN_FLIGHT)


class Latency:
    """Lowest recent latency first, unmeasured members before all; some calls explore."""

    name = LATENCY

    def __init__(self, rng: random.Random, *, exploration: float) -> None:
        if not 0 <= exploration < 1:
            raise ValueError(f"exploration must be in [0, 1), got {exploration}")
        self._rng = rng
        self._exploration = exploration

    def order(self, candidates: Sequence[Candidate], features: RequestFeatures) -> Ordered:
        """See `Strategy.order`."""
        shuffled = weighted_shuffle(candidates, self._rng)
        unmeasured = [c for c in shuffled if c.latency is None]
        measured = sorted((c for c in shuffled if c.latency is not None), key=_latency)
        if unmeasured:
            return _ordered(unmeasured + measured, UNMEASURED)
        if len(measured) > 1 and self._rng.random() < self._exploration:
            measured.insert(0, measured.pop(self._rng.randrange(1, len(measured))))
            return _ordered(measured, EXPLORE)
        return _ordered(measured, FASTEST)


class Cost:
    """Cheapest first for the request's estimated tokens; unpriced members last."""

    name = COST

    def __init__(self, price_of: PriceOf) -> None:
        self._price_of = price_of

    def order(self, candidates: Sequence[Candidate], features: RequestFeatures) -> Ordered:
        """See `Strategy.order`. Equal costs keep the config's order."""
        priced: list[tuple[float, Candidate]] = []
        unpriced: list[Candidate] = []
        for candidate in candidates:
            price = self._price_of(candidate.member)
            if price is None:
                unpriced.append(candidate)
            else:
                priced.append((estimated_cost(price, features), candidate))
        priced.sort(key=lambda pair: pair[0])
        ordered = [candidate for _, candidate in priced] + unpriced
        return _ordered(ordered, CHEAPEST if priced else UNPRICED)


class Usage:
    """Most capacity headroom first; equal ones in weighted random order."""

    name = USAGE

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def order(self, candidates: Sequence[Candidate], features: RequestFeatures) -> Ordered:
        """See `Strategy.order`."""
        shuffled = weighted_shuffle(candidates, self._rng)
        return _ordered(sorted(shuffled, key=lambda c: -c.headroom), MOST_HEADROOM)


def strategy_for(group: ModelGroup, rng: random.Random, price_of: PriceOf) -> Strategy:
    """The strategy a (member-serving) group names."""
    if group.strategy == LEAST_BUSY:
        return LeastBusy(rng)
    if group.strategy == LATENCY:
        return Latency(rng, exploration=group.exploration)
    if group.strategy == COST:
        return Cost(price_of)
    if group.strategy == USAGE:
        return Usage(rng)
    if group.strategy == WEIGHTED:
        return Weighted(rng)
    raise ValueError(f"group {group.name!r}: strategy {group.strategy!r} orders no members")


def estimated_cost(price: Price, features: RequestFeatures) -> float:
    """USD for the request's estimated prompt tokens and expected output tokens at `price`."""
    prompt = features.prompt_tokens * price.input
    output = features.expected_output_tokens * price.output
    return (prompt + output) / PER_TOKENS


def weighted_shuffle(candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    """The candidates in random order, each place drawn in proportion to weight.

    Efraimidis and Spirakis' weighted sampling without replacement: each gets the key
    u ** (1 / weight) for a uniform u, and the largest key comes first.
    """
    if len(candidates) < 2:
        return list(candidates)
    return sorted(candidates, key=lambda c: rng.random() ** (1.0 / c.member.weight), reverse=True)


def _ordered(candidates: Sequence[Candidate], reason: str) -> Ordered:
    return Ordered(tuple(c.member for c in candidates), reason)


def _latency(candidate: Candidate) -> float:
    return candidate.latency or 0.0
