"""Group members' capacity: requests and tokens per minute across replicas, calls per replica.

Counts live in the tenancy rate limiter (`gateway.tenancy.limits`), under their own key prefix:
in Redis when it is configured, so N replicas together keep a deployment under its quota; in
this process's memory otherwise (then each replica counts alone, which the start-up log says).

Requests are *paced*: the wall clock is cut into slices of about `PACE_SECONDS`, each admitting
an equal whole share of the minute's `rpm` (`pace_of`: 60 rpm is 3 calls every 3 s, 10 rpm one
call every 6 s), each slice a counter of its own. A whole minute of quota is then never taken at
once, and any sixty seconds hold at most `rpm` plus one share (5% of it, or one call when that
is more), which is also how vendors evaluate their per-minute quotas (over seconds). A sliding
minute alone would let a burst at the end of one minute be followed by most of a minute's quota
within the next sixty seconds: up to twice `rpm`, measured after a cold start. A burst above a
slice's share goes to the group's other members, or waits for the next slice.

Tokens are counted over a sliding minute (one call may rightly use a large share of a minute's
tokens, which slices would refuse): a call is charged its expected tokens (estimated prompt plus
`max_tokens`, or a default) and `settle` corrects them once the real usage is known.
`max_concurrent` is counted here, per replica.

`acquire` admits a call to one member or says when it will have room; the caller moves on to the
next member, and only when every member of the group and of its fallbacks is full does the call
fail, with RESOURCE_EXHAUSTED and the soonest of their retry times. When Redis fails, calls are
admitted (counted in `gateway_rate_limit_backend_failures_total`): an outage of the counter must
not become an outage of the deployments.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from gateway.pipeline.routing.features import RequestFeatures
from gateway.pipeline.routing.groups import Member, ModelGroup
from gateway.pipeline.routing.state import DeploymentStates
from gateway.tenancy.limits import (
    MIN_RETRY_AFTER_SECONDS,
    Decision,
    Limit,
    MemoryRateLimiter,
    RateLimiter,
)
from gateway.tenancy.limits_redis import RedisRateLimiter

log = logging.getLogger("gateway.routing")

#: Prepended to every capacity counter in Redis (apart from the callers' own rate limits).
CAPACITY_PREFIX = "aigw:capacity:"
RPM: Final = "rpm"
TPM: Final = "tpm"
CONCURRENT: Final = "concurrent"
#: About how long a pacing slice of requests lasts (see `pace_of`).
PACE_SECONDS = 3.0
#: Retry pushback of a member whose calls in flight are at `max_concurrent`.
CONCURRENT_RETRY_AFTER = 1.0


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a call may go to a member now; if not, which limit is full and for how long."""

    allowed: bool
    retry_after: float = 0.0
    limit: str = ""
    #: Tokens charged to the member's `tpm` (what `settle` corrects).
    tokens: int = 0


def capacity_limiter(
    groups: Iterable[ModelGroup],
    *,
    redis: Redis | None,
    timeout: float,
    prefix: str = CAPACITY_PREFIX,
    on_failure: Callable[[], None] | None = None,
) -> RateLimiter:
    """The limiter members' rpm/tpm are counted in: the one place it is built.

    In Redis (the process's one client, built in assembly) when there is one and some member has
    rpm or tpm; in memory otherwise, with a warning when the limits it counts are then per
    replica. The limiter does not own the client.
    """
    limited = sorted(
        member.key
        for group in groups
        for member in group.members
        if member.capacity.rpm or member.capacity.tpm
    )
    if limited and redis is not None:
        return RedisRateLimiter(
            redis,
            timeout=timeout,
            prefix=prefix,
            fail_open=True,
            on_failure=on_failure,
        )
    if limited:
        log.warning(
            "deployment capacity (rpm, tpm) is counted per replica, in memory: with several "
            "replicas each may send the whole quota; set REDIS_URL to share the counts",
            extra={"members": sorted(set(limited))},
        )
    return MemoryRateLimiter()


class CapacityGate:
    """Admits calls to members within their capacity, keeping `DeploymentStates` up to date."""

    def __init__(
        self,
        limiter: RateLimiter,
        states: DeploymentStates,
        *,
        pace_seconds: float = PACE_SECONDS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._limiter = limiter
        self._states = states
        self._pace_seconds = pace_seconds
        #: Shared by the replicas (slices are numbered by it), unlike the states' clock.
        self._wall_clock = wall_clock

    async def acquire(self, member: Member, features: RequestFeatures) -> Admission:
        """Admit one call to `member` (then it is in flight: end it with `release`), or not."""
        capacity = member.capacity
        most = capacity.max_concurrent
        if most is not None and self._states.of(member).in_flight >= most:
            return Admission(False, CONCURRENT_RETRY_AFTER, CONCURRENT)
        self._states.started(member)  # holds the slot while Redis is asked
        limits = []
        next_slice = 0.0
        if capacity.rpm:
            calls, seconds = pace_of(capacity.rpm, self._pace_seconds)
            now = self._wall_clock()
            index = math.floor(now / seconds)
            limits.append(Limit(RPM, f"{member.key}@{index}", calls))
            next_slice = (index + 1) * seconds - now
        tokens = features.expected_tokens if capacity.tpm else 0
        if capacity.tpm:
            limits.append(Limit(TPM, member.key, capacity.tpm, tokens))
        if not limits:
            return Admission(True)
        try:
            decision = await self._limiter.acquire(limits)
        except BaseException:
            self._states.finished(member, latency=None, stream=False)
            raise
        if decision.allowed:
            self._states.charged(member, decision)
            return Admission(True, tokens=tokens)
        self._states.finished(member, latency=None, stream=False)
        wait, full = _refusal(decision, next_slice)
        self._states.refused(member, full, wait)  # exactly: the next slice may be near
        return Admission(False, max(MIN_RETRY_AFTER_SECONDS, wait), full)

    def release(self, member: Member, *, latency: float | None, stream: bool) -> None:
        """An admitted call ended: `latency` when it got an answer (see `DeploymentStates`)."""
        self._states.finished(member, latency=latency, stream=stream)

    async def settle(self, member: Member, admission: Admission, used_tokens: int) -> None:
        """Correct the tokens charged at admission to the `used_tokens` the provider reported."""
        if member.capacity.tpm and used_tokens != admission.tokens:
            await self._limiter.adjust(TPM, member.key, used_tokens - admission.tokens)


def pace_of(rpm: int, pace_seconds: float = PACE_SECONDS) -> tuple[int, float]:
    """Calls a slice admits and how long it lasts, for `rpm` in slices of about `pace_seconds`.

    The share is a whole number of calls and the slice as long as that share of a minute, so
    the slices together admit exactly `rpm` a minute.
    """
    calls = max(1, round(rpm * pace_seconds / 60))
    return calls, 60 * calls / rpm


def _refusal(decision: Decision, next_slice: float) -> tuple[float, str]:
    """How long until every full limit of a refusal has room, and the one that waits longest.

    A slice of requests has room at the next slice (`next_slice` seconds away), whatever the
    sliding window's estimate for its key says. (The caller's retry time is at least
    `MIN_RETRY_AFTER_SECONDS`, like every retry time on the wire; this one is exact.)
    """
    waits = []
    for state in decision.states:
        limit = state.limit
        if state.remaining >= limit.amount:  # this one had room: not why the call was refused
            continue
        wait = next_slice if limit.name == RPM else state.reset
        waits.append((wait, limit.name))
    return max(waits, default=(decision.retry_after, RPM))


def soonest_retry(admissions: Iterable[Admission]) -> float | None:
    """The shortest wait among refusals (None when none was refused)."""
    return min((a.retry_after for a in admissions if not a.allowed), default=None)
