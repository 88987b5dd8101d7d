"""Rate limits and budgets in a real Redis, shared by several limiters as replicas would share
it, and against servers that refuse connections or never answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.tenancy.limits import Limit, Reason
from gateway.tenancy.limits_redis import (
    ACQUIRE_SCRIPT,
    BUDGET_TTL_SECONDS,
    RedisBudgets,
    RedisRateLimiter,
)
from tests.redis_support import (  # noqa: F401  (pytest registers imported fixtures)
    gateway_client,
    redis_prefix_fixture,
    redis_url_fixture,
    refused_url_fixture,
    silent_url_fixture,
    sync_client,
)

TIMEOUT = 0.1
"""The limiters' timeout against broken servers: short, so a stall shows up as a slow test."""

REPLICAS = 3
BURST = 300

MakeLimiter = Callable[..., Awaitable[RedisRateLimiter]]
MakeBudgets = Callable[..., Awaitable[RedisBudgets]]


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    """Closes everything a test opened."""
    async with AsyncExitStack() as exits:
        yield exits


@pytest.fixture
def make_limiter(redis_url: str, redis_prefix: str, stack: AsyncExitStack) -> MakeLimiter:
    """Build limiters, each with its own connection pool, in this test's key space."""

    async def make(**options: Any) -> RedisRateLimiter:
        client = await stack.enter_async_context(gateway_client(redis_url, timeout=2.0))
        return RedisRateLimiter(client, **{"timeout": 2.0, "prefix": redis_prefix, **options})

    return make


@pytest.fixture
def make_budgets(redis_url: str, redis_prefix: str, stack: AsyncExitStack) -> MakeBudgets:
    """Build budgets, each with its own connection pool, in this test's key space."""

    async def make(**options: Any) -> RedisBudgets:
        client = await stack.enter_async_context(gateway_client(redis_url, timeout=2.0))
        return RedisBudgets(client, **{"timeout": 2.0, "prefix": redis_prefix, **options})

    return make


@pytest.fixture
async def replicas(make_limiter: MakeLimiter) -> list[RedisRateLimiter]:
    """Three limiters sharing one Redis, as three gateway replicas would."""
    return [await make_limiter() for _ in range(REPLICAS)]


async def burst(replicas: list[RedisRateLimiter], calls: list[list[Limit]]) -> list[bool]:
    """Run every call at once, spread round-robin over the replicas; which were admitted."""
    decisions = await asyncio.gather(
        *(replicas[i % len(replicas)].acquire(call) for i, call in enumerate(calls))
    )
    return [decision.allowed for decision in decisions]


async def test_three_replicas_admit_the_limit_in_total(replicas: list[RedisRateLimiter]) -> None:
    rpm = Limit("rpm", "key:abc", 60)

    allowed = await burst(replicas, [[rpm]] * BURST)

    assert 57 <= sum(allowed) <= 63


async def test_three_replicas_admit_the_token_limit_in_total(
    replicas: list[RedisRateLimiter],
) -> None:
    amounts = [100 + (i * 337) % 901 for i in range(BURST)]  # spread over 100..1000
    calls = [[Limit("tpm", "key:abc", 50_000, amount)] for amount in amounts]

    allowed = await burst(replicas, calls)

    tokens = sum(call[0].amount for call, ok in zip(calls, allowed, strict=True) if ok)
    assert 47_500 <= tokens <= 52_500


async def test_a_refusal_by_one_limit_charges_none(replicas: list[RedisRateLimiter]) -> None:
    key = Limit("rpm", "key:abc", 1)
    tenant = Limit("rpm", "tenant:t1", 10)
    assert (await replicas[0].acquire([key, tenant])).allowed

    refused = await replicas[1].acquire([key, tenant])

    assert (refused.allowed, refused.reason, refused.limiting) == (False, Reason.LIMITED, key)
    assert refused.retry_after >= 1.0
    assert sum(await burst(replicas, [[tenant]] * 20)) == 9


async def test_adjust_on_one_replica_is_seen_by_the_others(
    replicas: list[RedisRateLimiter],
) -> None:
    def tokens(amount: int) -> list[Limit]:
        return [Limit("tpm", "key:abc", 1000, amount)]

    assert (await replicas[0].acquire(tokens(900))).allowed
    assert not (await replicas[2].acquire(tokens(700))).allowed

    await replicas[1].adjust("tpm", "key:abc", -600)

    assert (await replicas[2].acquire(tokens(700))).allowed
    assert not (await replicas[0].acquire(tokens(1))).allowed


async def test_adjust_never_takes_a_count_below_zero(replicas: list[RedisRateLimiter]) -> None:
    await replicas[0].acquire([Limit("tpm", "key:abc", 1000, 100)])

    await replicas[1].adjust("tpm", "key:abc", -5000)

    assert not (await replicas[2].acquire([Limit("tpm", "key:abc", 1000, 1001)])).allowed
    assert (await replicas[2].acquire([Limit("tpm", "key:abc", 1000, 1000)])).allowed


async def test_decision_reports_remaining_and_headers(replicas: list[RedisRateLimiter]) -> None:
    rpm = Limit("rpm", "key:abc", 10)
    tpm = Limit("tpm", "key:abc", 1000, 600)

    decision = await replicas[0].acquire([rpm, tpm])

    assert [state.remaining for state in decision.states] == [9, 400]
    assert decision.headers["RateLimit-Limit"] == "1000"
    assert decision.headers["RateLimit-Remaining"] == "400"
    assert 1 <= int(decision.headers["RateLimit-Reset"]) <= 65  # a window and a sub-window


def test_the_script_reads_the_redis_clock_not_the_callers() -> None:
    assert "redis.call('TIME')" in ACQUIRE_SCRIPT
    assert "ARGV[1]" in ACQUIRE_SCRIPT  # the window length, the only scalar argument


async def test_windows_follow_the_redis_server_clock(
    redis_url: str, make_limiter: MakeLimiter
) -> None:
    limiter = await make_limiter()
    with sync_client(redis_url) as client:
        for attempt in range(3):  # until `before` and `after` fall in the same 5-s sub-window
            before = server_seconds(client.time())
            decision = await limiter.acquire([Limit(f"rpm{attempt}", "key:abc", 10)])
            after = server_seconds(client.time())
            if before // 5 == after // 5:
                break

    # Until the charge leaves the stretch: a window after the server's current sub-window ends.
    reset = decision.states[0].reset
    assert 65 - after % 5 - 0.002 <= reset <= 65 - before % 5 + 0.002


async def test_a_short_window_rolls_over(make_limiter: MakeLimiter) -> None:
    first, second = await make_limiter(window=0.25), await make_limiter(window=0.25)
    rpm = Limit("rpm", "key:abc", 5)
    assert sum(await burst([first, second], [[rpm]] * 6)) == 5

    await asyncio.sleep(0.6)  # two windows: the charges have aged out entirely

    assert sum(await burst([first, second], [[rpm]] * 6)) == 5


async def test_counters_expire_after_two_windows(
    redis_url: str, redis_prefix: str, make_limiter: MakeLimiter
) -> None:
    limiter = await make_limiter()

    await limiter.acquire([Limit("rpm", "key:abc", 10)])

    with sync_client(redis_url) as client:
        ttl_ms = client.pttl(f"{redis_prefix}rpm:key:abc")
    assert 119_000 < ttl_ms <= 120_000


async def test_a_flushed_script_cache_is_refilled(
    redis_url: str, make_limiter: MakeLimiter
) -> None:
    limiter = await make_limiter()
    with sync_client(redis_url) as client:
        client.script_flush()

    decision = await limiter.acquire([Limit("rpm", "key:abc", 10)])

    assert (decision.allowed, decision.reason) == (True, Reason.OK)


async def test_budgets_add_up_across_replicas(make_budgets: MakeBudgets) -> None:
    first, second, reader = [await make_budgets() for _ in range(3)]
    await asyncio.gather(first.spend("tenant:t1", 2.5), second.spend("tenant:t1", 7.25))

    under = await reader.over_budget([("tenant:t1", 10.0)])
    await second.spend("tenant:t1", 0.25)
    over = await reader.over_budget([("key:abc", 5.0), ("tenant:t1", 10.0)])

    assert (under.allowed, under.spent_usd) == (True, (9.75,))
    assert (over.allowed, over.reason, over.exceeded) == (False, Reason.OVER_BUDGET, "tenant:t1")
    assert over.spent_usd == (0.0, 10.0)


async def test_each_month_has_its_own_expiring_counter(
    redis_url: str, redis_prefix: str, make_budgets: MakeBudgets
) -> None:
    january = await make_budgets(clock=lambda: datetime(2025, 1, 31, 23, 59, tzinfo=UTC))
    february = await make_budgets(clock=lambda: datetime(2025, 2, 1, tzinfo=UTC))

    await january.spend("tenant:t1", 10.0)

    assert not (await january.over_budget([("tenant:t1", 10.0)])).allowed
    assert (await february.over_budget([("tenant:t1", 10.0)])).spent_usd == (0.0,)
    with sync_client(redis_url) as client:
        ttl = client.ttl(f"{redis_prefix}tenant:t1:202501")
    assert BUDGET_TTL_SECONDS - 5 < ttl <= BUDGET_TTL_SECONDS


async def test_seed_sets_a_month_only_if_absent(make_budgets: MakeBudgets) -> None:
    first, second = await make_budgets(), await make_budgets()

    assert await first.seed_spend("tenant:t1", 4.0)
    assert not await second.seed_spend("tenant:t1", 100.0)
    await second.spend("tenant:t1", 1.0)
    assert not await first.seed_spend("tenant:t1", 0.0)

    assert (await first.over_budget([("tenant:t1", 10.0)])).spent_usd == (5.0,)


@pytest.fixture(params=["refused", "silent"])
def broken_url(request: pytest.FixtureRequest) -> str:
    """A Redis URL that refuses connections, or one that never answers."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


class Failures:
    """Counts `on_failure` calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def timed(operation: Awaitable[object]) -> float:
    """Seconds `operation` took."""
    started = time.monotonic()
    await operation
    return time.monotonic() - started


async def test_fail_open_admits_and_counts_the_failure(broken_url: str) -> None:
    failures = Failures()
    async with gateway_client(broken_url, timeout=TIMEOUT) as client:
        limiter = RedisRateLimiter(client, timeout=TIMEOUT, on_failure=failures)
        started = time.monotonic()
        decision = await limiter.acquire([Limit("rpm", "key:abc", 1)])
        elapsed = time.monotonic() - started

    assert (decision.allowed, decision.reason) == (True, Reason.DEGRADED)
    assert (limiter.failures_total, failures.count) == (1, 1)
    assert elapsed < TIMEOUT + 0.2


async def test_fail_closed_refuses_as_unavailable_not_limited(broken_url: str) -> None:
    async with gateway_client(broken_url, timeout=TIMEOUT) as client:
        limiter = RedisRateLimiter(client, timeout=TIMEOUT, fail_open=False)
        started = time.monotonic()
        decision = await limiter.acquire([Limit("rpm", "key:abc", 1)])
        elapsed = time.monotonic() - started

    assert (decision.allowed, decision.reason) == (False, Reason.BACKEND_UNAVAILABLE)
    assert decision.limiting is None
    assert elapsed < TIMEOUT + 0.2


async def test_adjust_against_a_broken_server_is_counted_not_raised(broken_url: str) -> None:
    async with gateway_client(broken_url, timeout=TIMEOUT) as client:
        limiter = RedisRateLimiter(client, timeout=TIMEOUT)
        elapsed = await timed(limiter.adjust("tpm", "key:abc", -100))

    assert limiter.failures_total == 1
    assert elapsed < TIMEOUT + 0.2


@pytest.mark.parametrize(
    ("fail_open", "allowed", "reason"),
    [(True, True, Reason.DEGRADED), (False, False, Reason.BACKEND_UNAVAILABLE)],
)
async def test_budgets_against_a_broken_server_follow_the_policy(
    broken_url: str, fail_open: bool, allowed: bool, reason: Reason
) -> None:
    async with gateway_client(broken_url, timeout=TIMEOUT) as client:
        budgets = RedisBudgets(client, timeout=TIMEOUT, fail_open=fail_open)
        spend_took = await timed(budgets.spend("tenant:t1", 1.0))
        started = time.monotonic()
        decision = await budgets.over_budget([("tenant:t1", 10.0)])
        check_took = time.monotonic() - started

    assert (decision.allowed, decision.reason) == (allowed, reason)
    assert budgets.failures_total == 2
    assert max(spend_took, check_took) < TIMEOUT + 0.2


def server_seconds(reply: tuple[int, int]) -> float:
    """A Redis TIME reply as seconds."""
    seconds, micros = reply
    return seconds + micros / 1_000_000
