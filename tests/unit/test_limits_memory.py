"""The in-memory rate limiter and budgets, on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.tenancy.limits import (
    Budgets,
    Limit,
    MemoryBudgets,
    MemoryRateLimiter,
    RateLimiter,
    Reason,
)

WINDOW = 60.0
START = 100 * WINDOW
"""The fake clock starts exactly at the beginning of a window."""


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class FakeMonth:
    """A UTC wall clock set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """A clock at the start of a window."""
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> MemoryRateLimiter:
    """A limiter with one-minute windows on the fake clock."""
    return MemoryRateLimiter(window=WINDOW, clock=clock)


async def admitted(limiter: MemoryRateLimiter, limits: list[Limit], tries: int) -> int:
    """How many of `tries` acquires of `limits` are admitted."""
    count = 0
    for _ in range(tries):
        decision = await limiter.acquire(limits)
        count += decision.allowed
    return count


def test_memory_backends_satisfy_the_protocols(clock: FakeClock) -> None:
    limiter: RateLimiter = MemoryRateLimiter(clock=clock)
    budgets: Budgets = MemoryBudgets()

    assert limiter is not None
    assert budgets is not None


async def test_admits_exactly_the_limit_in_a_window(limiter: MemoryRateLimiter) -> None:
    rpm = Limit("rpm", "key:abc", 60)

    assert await admitted(limiter, [rpm], 60) == 60
    refused = await limiter.acquire([rpm])

    assert not refused.allowed
    assert refused.reason == Reason.LIMITED
    assert refused.limiting == rpm
    assert refused.retry_after > 0


async def test_retry_after_is_when_the_window_has_room_again(
    limiter: MemoryRateLimiter, clock: FakeClock
) -> None:
    rpm = Limit("rpm", "key:abc", 10)
    await admitted(limiter, [rpm], 10)

    refused = await limiter.acquire([rpm])
    # The 10 were counted in the first 5-s sub-window: it leaves the stretch a window after it ends.
    assert refused.retry_after == pytest.approx(65.0)
    clock.advance(refused.retry_after - 0.1)
    assert not (await limiter.acquire([rpm])).allowed
    clock.advance(0.1)
    assert (await limiter.acquire([rpm])).allowed


async def test_retry_after_is_at_least_a_second(
    limiter: MemoryRateLimiter, clock: FakeClock
) -> None:
    rpm = Limit("rpm", "key:abc", 10)
    await admitted(limiter, [rpm], 10)
    clock.advance(WINDOW + 4.99)  # their sub-window leaves the stretch in 0.01 s

    refused = await limiter.acquire([rpm])

    assert not refused.allowed
    assert refused.retry_after == 1.0


async def test_units_count_until_their_sub_window_has_left_the_window(
    limiter: MemoryRateLimiter, clock: FakeClock
) -> None:
    rpm = Limit("rpm", "key:abc", 10)
    await admitted(limiter, [rpm], 10)

    clock.advance(WINDOW)
    assert await admitted(limiter, [rpm], 10) == 0
    clock.advance(WINDOW / 12)

    assert await admitted(limiter, [rpm], 11) == 10


async def test_two_windows_later_the_limit_is_whole_again(
    limiter: MemoryRateLimiter, clock: FakeClock
) -> None:
    rpm = Limit("rpm", "key:abc", 10)
    await admitted(limiter, [rpm], 10)

    clock.advance(2 * WINDOW)

    assert await admitted(limiter, [rpm], 11) == 10


async def test_no_sixty_seconds_admit_more_than_the_limit(
    limiter: MemoryRateLimiter, clock: FakeClock
) -> None:
    rpm = Limit("rpm", "key:abc", 60)
    per_second = []
    for _ in range(180):
        per_second.append(await admitted(limiter, [rpm], 5))
        clock.advance(1.0)

    busiest = max(sum(per_second[i : i + 60]) for i in range(len(per_second) - 59))
    assert busiest <= 60


async def test_a_refusal_by_one_limit_charges_none(limiter: MemoryRateLimiter) -> None:
    key = Limit("rpm", "key:abc", 1)
    tenant = Limit("rpm", "tenant:t1", 10)
    assert (await limiter.acquire([key, tenant])).allowed

    refused = await limiter.acquire([key, tenant])

    assert refused.limiting == key
    assert refused.states[1].remaining == 9
    assert await admitted(limiter, [tenant], 10) == 9


async def test_token_amounts_are_charged_in_full(limiter: MemoryRateLimiter) -> None:
    def tokens(amount: int) -> Limit:
        return Limit("tpm", "key:abc", 1000, amount)

    assert (await limiter.acquire([tokens(400)])).allowed
    assert (await limiter.acquire([tokens(400)])).allowed
    assert not (await limiter.acquire([tokens(300)])).allowed
    assert (await limiter.acquire([tokens(200)])).allowed
    assert not (await limiter.acquire([tokens(1)])).allowed


async def test_negative_adjust_refunds_the_overestimate(limiter: MemoryRateLimiter) -> None:
    await limiter.acquire([Limit("tpm", "key:abc", 1000, 900)])

    await limiter.adjust("tpm", "key:abc", -600)

    assert (await limiter.acquire([Limit("tpm", "key:abc", 1000, 700)])).allowed


async def test_positive_adjust_charges_the_underestimate(limiter: MemoryRateLimiter) -> None:
    await limiter.acquire([Limit("tpm", "key:abc", 1000, 100)])

    await limiter.adjust("tpm", "key:abc", 900)

    assert not (await limiter.acquire([Limit("tpm", "key:abc", 1000, 1)])).allowed


async def test_adjust_never_takes_a_count_below_zero(limiter: MemoryRateLimiter) -> None:
    await limiter.acquire([Limit("tpm", "key:abc", 1000, 100)])

    await limiter.adjust("tpm", "key:abc", -5000)

    assert not (await limiter.acquire([Limit("tpm", "key:abc", 1000, 1001)])).allowed
    assert (await limiter.acquire([Limit("tpm", "key:abc", 1000, 1000)])).allowed


async def test_headers_describe_the_tightest_limit(limiter: MemoryRateLimiter) -> None:
    rpm = Limit("rpm", "key:abc", 10)
    tpm = Limit("tpm", "key:abc", 1000, 500)

    decision = await limiter.acquire([rpm, tpm])

    assert decision.headers == {
        "RateLimit-Limit": "1000",
        "RateLimit-Remaining": "500",
        "RateLimit-Reset": "65",  # the units of this sub-window count a window after it
    }


async def test_headers_of_a_refusal_describe_the_limit_that_refused(
    limiter: MemoryRateLimiter,
) -> None:
    rpm = Limit("rpm", "key:abc", 10)
    await admitted(limiter, [rpm], 10)

    refused = await limiter.acquire([rpm, Limit("tpm", "key:abc", 1000, 1)])

    assert refused.headers == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "65",
    }


async def test_an_amount_above_the_limit_never_fits(limiter: MemoryRateLimiter) -> None:
    refused = await limiter.acquire([Limit("tpm", "key:abc", 1000, 1001)])

    assert not refused.allowed
    assert refused.reason == Reason.LIMITED
    assert refused.retry_after == WINDOW


async def test_no_limits_means_admitted(limiter: MemoryRateLimiter) -> None:
    decision = await limiter.acquire([])

    assert decision.allowed
    assert decision.reason == Reason.OK


async def test_the_same_counter_twice_in_one_call_is_an_error(
    limiter: MemoryRateLimiter,
) -> None:
    with pytest.raises(ValueError, match="once per call"):
        await limiter.acquire([Limit("rpm", "key:abc", 10), Limit("rpm", "key:abc", 20)])


def test_negative_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        Limit("tpm", "key:abc", 1000, -1)


async def test_spend_adds_up_and_over_budget_flips_at_the_budget() -> None:
    budgets = MemoryBudgets()
    await budgets.spend("tenant:t1", 2.5)
    await budgets.spend("tenant:t1", 7.25)

    under = await budgets.over_budget([("tenant:t1", 10.0)])
    await budgets.spend("tenant:t1", 0.25)
    over = await budgets.over_budget([("key:abc", 5.0), ("tenant:t1", 10.0)])

    assert (under.allowed, under.reason, under.spent_usd) == (True, Reason.OK, (9.75,))
    assert (over.allowed, over.reason, over.exceeded) == (False, Reason.OVER_BUDGET, "tenant:t1")
    assert over.spent_usd == (0.0, 10.0)


async def test_a_new_month_starts_at_zero() -> None:
    month = FakeMonth(datetime(2025, 1, 31, 23, 59, tzinfo=UTC))
    budgets = MemoryBudgets(clock=month)
    await budgets.spend("tenant:t1", 10.0)
    assert not (await budgets.over_budget([("tenant:t1", 10.0)])).allowed

    month.now = datetime(2025, 2, 1, 0, 0, tzinfo=UTC)

    decision = await budgets.over_budget([("tenant:t1", 10.0)])
    assert decision.allowed
    assert decision.spent_usd == (0.0,)


async def test_seed_sets_a_month_only_once() -> None:
    budgets = MemoryBudgets()

    assert await budgets.seed_spend("tenant:t1", 4.0)
    assert not await budgets.seed_spend("tenant:t1", 100.0)
    await budgets.spend("tenant:t1", 1.0)

    assert (await budgets.over_budget([("tenant:t1", 10.0)])).spent_usd == (5.0,)


@pytest.mark.parametrize("idle", [0.0, 50.0, 59.0])
async def test_no_sixty_seconds_admit_more_than_the_limit_after_a_cold_start(
    limiter: MemoryRateLimiter, clock: FakeClock, idle: float
) -> None:
    # Nothing counted, then demand from late in a window on: a sliding estimate that spreads
    # the first window's burst over the whole window would admit almost twice the limit.
    tpm = Limit("tpm", "key:abc", 10_000, 100)
    clock.advance(idle)
    admitted_at = []
    for _ in range(2400):
        if (await limiter.acquire([tpm])).allowed:
            admitted_at.append(clock.now)
        clock.advance(0.05)

    busiest = max(sum(1 for t in admitted_at if s <= t < s + WINDOW) for s in admitted_at)
    assert busiest * tpm.amount <= tpm.limit
    assert len(admitted_at) * tpm.amount >= 1.5 * tpm.limit  # and it does not starve either
