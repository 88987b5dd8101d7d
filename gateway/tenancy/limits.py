"""Rate limits and monthly budgets: the interface, the sliding-window arithmetic, and in-memory
backends. The Redis backends, which hold across replicas, are in `gateway.limits_redis`.

Rate limits. One call checks several `Limit`s at once — say 60 requests a minute for the API
key, 50,000 tokens a minute for the key, and larger numbers for its tenant — and is admitted only
if every one has room for its `amount`; then every one is charged, all or nothing. Once the real
token usage is known, `adjust` corrects the token charge (the delta may be negative).

Each limit is a sliding window counted in `BUCKETS` sub-windows: a call is admitted when the
sub-windows that overlap the last window-long stretch, together with its amount, stay within
`limit`. A sub-window is counted whole as long as any of it is inside the stretch, so no
window-long stretch ever holds more than `limit` units, whatever the timing — not after a cold
start either, when a burst at the end of one window would make a two-window estimate (the
previous window's count weighted by its share still inside) admit up to twice the limit. The
price is that a unit keeps counting for up to one sub-window more than a window. A refusal says
when to retry: when enough sub-windows will have left the stretch, assuming nothing else is
charged meanwhile, and never less than a second.

Budgets. `spend` adds dollars to a per-UTC-month counter and `over_budget` reads several: a key
is over when its month's spend has reached its budget. `seed_spend` sets a month's starting
value (from the usage database at start-up) unless the month already has one.

When the shared backend fails, a limiter does not guess. With `fail_open` (the default) the call
is admitted with reason `ok_degraded`; otherwise it is refused with reason `backend_unavailable`,
which a transport maps to UNAVAILABLE — an outage is never reported as the caller being over its
limit (`limited` / `over_budget`, RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

DEFAULT_WINDOW_SECONDS = 60.0
"""Length of the sliding window: limits are per minute."""

BUCKETS = 12
"""Sub-windows a window is counted in (5 s each for a minute)."""

MIN_RETRY_AFTER_SECONDS = 1.0
"""The shortest `retry_after` a refusal gives (Retry-After is whole seconds on the wire)."""

UNAVAILABLE_RETRY_AFTER_SECONDS = 1.0
"""`retry_after` of a call refused because the backend failed (fail-closed)."""


class Reason(StrEnum):
    """Why a call was admitted or refused."""

    OK = "ok"
    LIMITED = "limited"  # over a rate limit: RESOURCE_EXHAUSTED / 429
    OVER_BUDGET = "over_budget"  # a monthly budget is spent: RESOURCE_EXHAUSTED / 429
    DEGRADED = "ok_degraded"  # backend failed, admitted anyway (fail-open)
    BACKEND_UNAVAILABLE = "backend_unavailable"  # backend failed, refused: UNAVAILABLE / 503


@dataclass(frozen=True, slots=True)
class Limit:
    """`limit` units per window for (`name`, `key`), e.g. ("tpm", "tenant:t1", 200_000); this
    call needs `amount` of them (1 request, or the estimated tokens)."""

    name: str
    key: str
    limit: int
    amount: int = 1

    def __post_init__(self) -> None:
        if self.limit < 0 or self.amount < 0:
            raise ValueError(f"limit and amount must not be negative: {self}")


@dataclass(frozen=True, slots=True)
class LimitState:
    """One limit as a decision left it: units `remaining` in the window and `reset`, seconds
    until its current count starts to age out (for the limit that refused a call: `retry_after`).
    """

    limit: Limit
    remaining: int
    reset: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of `RateLimiter.acquire`.

    `limiting` is the limit that refused the call (the one with the longest wait), `states` has
    one entry per limit in the order given (empty when the backend failed), and `headers` are
    `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` for the tightest limit.
    """

    allowed: bool
    reason: Reason
    retry_after: float = 0.0
    limiting: Limit | None = None
    states: tuple[LimitState, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)


ADMITTED = Decision(allowed=True, reason=Reason.OK)
"""The decision for a call with no limits to check."""

DEGRADED = Decision(allowed=True, reason=Reason.DEGRADED)
"""The decision when the backend failed and the policy is fail-open."""

UNAVAILABLE = Decision(
    allowed=False,
    reason=Reason.BACKEND_UNAVAILABLE,
    retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS,
)
"""The decision when the backend failed and the policy is fail-closed."""


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """The outcome of `Budgets.over_budget`: `exceeded` is the first key whose budget is spent,
    `spent_usd` this month's spend per checked key (empty when the backend failed)."""

    allowed: bool
    reason: Reason
    exceeded: str | None = None
    spent_usd: tuple[float, ...] = ()


class RateLimiter(Protocol):
    """Sliding-window rate limits, checked and charged all or nothing."""

    async def acquire(self, limits: Sequence[Limit]) -> Decision:
        """Admit the call if every limit has room for its amount, and then charge them all.

        Each (name, key) may appear once. A failing backend never raises: see `Reason`.
        """
        ...

    async def adjust(self, name: str, key: str, delta: int) -> None:
        """Add `delta` (negative to refund) to the current window of (`name`, `key`).

        The count never drops below zero. A failing backend is counted, not raised.
        """
        ...

    async def aclose(self) -> None:
        """Release the backend's resources."""
        ...


class Budgets(Protocol):
    """Dollars spent per key and UTC month, against budgets the caller supplies."""

    async def spend(self, key: str, usd: float) -> None:
        """Add `usd` to this month's spend of `key`. A failing backend is counted, not raised."""
        ...

    async def seed_spend(self, key: str, usd: float) -> bool:
        """Set this month's spend of `key` to `usd` unless it has one; True if it was set."""
        ...

    async def over_budget(self, checks: Sequence[tuple[str, float]]) -> BudgetDecision:
        """Whether any (key, budget_usd) has spent its budget this month, in one read."""
        ...

    async def aclose(self) -> None:
        """Release the backend's resources."""
        ...


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """A limit's counts at one instant, before this call's charge: the `BUCKETS + 1`
    sub-windows that overlap the last window-long stretch, oldest first, the current one last."""

    buckets: tuple[int, ...]

    @property
    def total(self) -> int:
        """Every unit the stretch counts."""
        return sum(self.buckets)


def fits(limit: Limit, counts: WindowCounts) -> bool:
    """Whether `limit.amount` more fits.

    The Redis script makes the same comparison, so both agree.
    """
    return counts.total + limit.amount <= limit.limit


def retry_after(limit: Limit, counts: WindowCounts, *, into: float, span: float) -> float:
    """Seconds until the counted sub-windows have room for `limit.amount`, if nothing else is
    charged.

    `into` is the time since the current sub-window began, `span` a sub-window's length. The
    k-th oldest sub-window (from 0) leaves the stretch `(k + 1) * span - into` from now. An
    amount larger than the limit never fits; it gets one window, like any long wait.
    """
    room = limit.limit - limit.amount  # what the counted units must fall to
    if room < 0:
        return span * BUCKETS
    left = counts.total
    wait = span * (len(counts.buckets) + 1) - into  # every sub-window gone
    for k, count in enumerate(counts.buckets):
        left -= count
        if left <= room:
            wait = (k + 1) * span - into
            break
    return max(MIN_RETRY_AFTER_SECONDS, wait)


def _reset(counts: WindowCounts, *, into: float, span: float) -> float:
    """Seconds until the oldest counted unit leaves the stretch (a window when none is counted)."""
    for k, count in enumerate(counts.buckets):
        if count:
            return (k + 1) * span - into
    return span * BUCKETS


def build_decision(
    limits: Sequence[Limit],
    counts: Sequence[WindowCounts],
    fitted: Sequence[bool],
    *,
    into: float,
    span: float,
) -> Decision:
    """The decision for `limits`, given their counts and which fit (admitted when all do)."""
    allowed = all(fitted)
    states: list[LimitState] = []
    limiting: LimitState | None = None
    for limit, count, fit in zip(limits, counts, fitted, strict=True):
        if allowed:
            *older, current = count.buckets
            count = WindowCounts((*older, current + limit.amount))
        remaining = max(0, limit.limit - count.total)
        reset = _reset(count, into=into, span=span)
        if not fit:
            reset = retry_after(limit, count, into=into, span=span)
        state = LimitState(limit, remaining, reset)
        states.append(state)
        if not fit and (limiting is None or state.reset > limiting.reset):
            limiting = state
    if limiting is not None:
        return Decision(
            allowed=False,
            reason=Reason.LIMITED,
            retry_after=limiting.reset,
            limiting=limiting.limit,
            states=tuple(states),
            headers=rate_limit_headers(limiting),
        )
    tightest = min(states, key=_share_left)
    return Decision(
        allowed=True, reason=Reason.OK, states=tuple(states), headers=rate_limit_headers(tightest)
    )


def _share_left(state: LimitState) -> float:
    return state.remaining / state.limit.limit if state.limit.limit else 0.0


def rate_limit_headers(state: LimitState) -> dict[str, str]:
    """IETF-draft `RateLimit-*` headers describing one limit (whole units, whole seconds)."""
    return {
        "RateLimit-Limit": str(state.limit.limit),
        "RateLimit-Remaining": str(state.remaining),
        "RateLimit-Reset": str(max(1, math.ceil(state.reset))),
    }


def check_distinct(limits: Sequence[Limit]) -> None:
    """Raise ValueError if a (name, key) appears twice: one call charges a counter once."""
    if len({(limit.name, limit.key) for limit in limits}) != len(limits):
        raise ValueError(f"each (name, key) may appear once per call: {limits}")


def budget_decision(checks: Sequence[tuple[str, float]], spent: Sequence[float]) -> BudgetDecision:
    """The verdict on `checks` given each key's spend: over once spend reaches the budget."""
    for (key, budget_usd), spent_usd in zip(checks, spent, strict=True):
        if spent_usd >= budget_usd:
            return BudgetDecision(False, Reason.OVER_BUDGET, key, tuple(spent))
    return BudgetDecision(True, Reason.OK, None, tuple(spent))


def utc_now() -> datetime:
    """The current time in UTC (the budgets' default clock)."""
    return datetime.now(UTC)


def utc_month(now: datetime) -> str:
    """`YYYYMM` of the UTC month `now` falls in: the suffix of a month's budget counter."""
    utc = now.astimezone(UTC)
    return f"{utc.year:04d}{utc.month:02d}"  # not strftime: this runs for every call


@dataclass(slots=True)
class _Counter:
    #: Sub-window index -> units counted in it (only those the last stretch overlaps).
    buckets: dict[int, int]


class MemoryRateLimiter:
    """A `RateLimiter` in this process's memory: the embedded default, not shared by replicas.

    Time is `clock()` seconds (monotonic by default; tests inject their own). Counters idle for
    a window (and a sub-window) are dropped once per window. Nothing here awaits, so each call
    is atomic.
    """

    def __init__(
        self,
        *,
        window: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        self._window = window
        self._span = window / BUCKETS
        self._clock = clock
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._swept_index = -math.inf

    async def acquire(self, limits: Sequence[Limit]) -> Decision:
        """See `RateLimiter.acquire`."""
        if not limits:
            return ADMITTED
        check_distinct(limits)
        bucket, into = self._now()
        counts = [self._counts(limit.name, limit.key, bucket) for limit in limits]
        fitted = [fits(limit, count) for limit, count in zip(limits, counts, strict=True)]
        if all(fitted):
            for limit, count in zip(limits, counts, strict=True):
                self._store(limit.name, limit.key, bucket, count.buckets[-1] + limit.amount)
        return build_decision(limits, counts, fitted, into=into, span=self._span)

    async def adjust(self, name: str, key: str, delta: int) -> None:
        """See `RateLimiter.adjust`. A refund beyond the current sub-window's count is not made:
        the counts stay on the safe side."""
        bucket, _ = self._now()
        count = self._counts(name, key, bucket)
        self._store(name, key, bucket, max(0, count.buckets[-1] + delta))

    async def aclose(self) -> None:
        """Nothing to release."""

    def _now(self) -> tuple[int, float]:
        """The current sub-window's index and the seconds into it; sweeps once per window."""
        now = self._clock()
        bucket = math.floor(now / self._span)
        if bucket >= self._swept_index + BUCKETS:
            self._swept_index = bucket
            stale = [k for k, c in self._counters.items() if max(c.buckets) < bucket - BUCKETS]
            for k in stale:
                del self._counters[k]
        return bucket, now - bucket * self._span

    def _counts(self, name: str, key: str, bucket: int) -> WindowCounts:
        counter = self._counters.get((name, key))
        if counter is None:
            return WindowCounts((0,) * (BUCKETS + 1))
        found = counter.buckets
        return WindowCounts(tuple(found.get(b, 0) for b in range(bucket - BUCKETS, bucket + 1)))

    def _store(self, name: str, key: str, bucket: int, current: int) -> None:
        counter = self._counters.get((name, key))
        if counter is None:
            counter = self._counters[name, key] = _Counter({})
        counter.buckets[bucket] = current
        if len(counter.buckets) > BUCKETS + 1:
            counter.buckets = {b: n for b, n in counter.buckets.items() if b >= bucket - BUCKETS}


class MemoryBudgets:
    """`Budgets` in this process's memory: the embedded default, not shared by replicas.

    `clock` gives the current time (UTC now by default); a new month starts every key at zero.
    """

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._month = ""
        self._spent: dict[str, float] = {}

    async def spend(self, key: str, usd: float) -> None:
        """See `Budgets.spend`."""
        spent = self._this_month()
        spent[key] = spent.get(key, 0.0) + usd

    async def seed_spend(self, key: str, usd: float) -> bool:
        """See `Budgets.seed_spend`."""
        spent = self._this_month()
        if key in spent:
            return False
        spent[key] = usd
        return True

    async def over_budget(self, checks: Sequence[tuple[str, float]]) -> BudgetDecision:
        """See `Budgets.over_budget`."""
        spent = self._this_month()
        return budget_decision(checks, [spent.get(key, 0.0) for key, _ in checks])

    async def aclose(self) -> None:
        """Nothing to release."""

    def _this_month(self) -> dict[str, float]:
        month = utc_month(self._clock())
        if month != self._month:
            self._month = month
            self._spent = {}
        return self._spent
