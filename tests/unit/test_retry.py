"""`Backoff` (exponential, full jitter) and `RetryBudget` (a share of recent requests)."""

from __future__ import annotations

import pytest

from resilience.retry import Backoff, RetryBudget

BACKOFF = Backoff(base=0.2, cap=5.0)
WINDOW = 10.0
MIN_RETRIES = 3


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.now += seconds


def budget(clock: FakeClock) -> RetryBudget:
    """Retries up to 20% of the last `WINDOW` seconds' requests, and `MIN_RETRIES` at least."""
    return RetryBudget(0.2, min_retries=MIN_RETRIES, window=WINDOW, clock=clock)


def record(retry_budget: RetryBudget, requests: int) -> None:
    """Count `requests` requests."""
    for _ in range(requests):
        retry_budget.record_request()


def spendable(retry_budget: RetryBudget) -> int:
    """Spend retries until the budget refuses; how many it allowed."""
    spent = 0
    while retry_budget.try_spend():
        spent += 1
        assert spent <= 1000, "the budget never ran out"
    return spent


# Backoff


@pytest.mark.parametrize(
    ("retry", "ceiling"),
    [(0, 0.2), (1, 0.4), (2, 0.8), (3, 1.6), (4, 3.2), (5, 5.0), (10, 5.0)],
)
def test_top_draw_waits_the_exponential_ceiling_capped(retry: int, ceiling: float) -> None:
    assert BACKOFF.delay(retry, lambda: 1.0) == pytest.approx(ceiling)


@pytest.mark.parametrize("retry", [0, 3, 10])
def test_bottom_draw_does_not_wait(retry: int) -> None:
    assert BACKOFF.delay(retry, lambda: 0.0) == 0.0


def test_delay_is_the_draw_scaled_to_the_ceiling() -> None:
    assert BACKOFF.delay(3, lambda: 0.25) == pytest.approx(0.4)


def test_real_draws_stay_between_zero_and_the_ceiling_and_vary() -> None:
    delays = [BACKOFF.delay(3) for _ in range(200)]

    assert all(0.0 <= delay <= 1.6 for delay in delays)
    assert len(set(delays)) > 1


# Retry budget


def test_quiet_budget_allows_min_retries() -> None:
    assert spendable(budget(FakeClock())) == MIN_RETRIES


def test_budget_allows_its_ratio_of_recent_requests_and_no_more() -> None:
    retry_budget = budget(FakeClock())
    record(retry_budget, 100)

    assert spendable(retry_budget) == 20


def test_budget_never_falls_below_min_retries() -> None:
    retry_budget = budget(FakeClock())
    record(retry_budget, 5)  # 20% of 5 is 1

    assert spendable(retry_budget) == MIN_RETRIES


def test_budget_resets_after_a_window_without_traffic() -> None:
    clock = FakeClock()
    retry_budget = budget(clock)
    record(retry_budget, 100)
    spendable(retry_budget)

    clock.advance(WINDOW)

    assert spendable(retry_budget) == MIN_RETRIES


def test_spent_retries_still_count_half_a_window_later() -> None:
    # Two half-window buckets: counts stay whole until their bucket falls out.
    clock = FakeClock()
    retry_budget = budget(clock)
    record(retry_budget, 100)
    spendable(retry_budget)

    clock.advance(WINDOW / 2 + 1)

    assert not retry_budget.try_spend()


def test_requests_still_count_half_a_window_later() -> None:
    clock = FakeClock()
    retry_budget = budget(clock)
    record(retry_budget, 100)

    clock.advance(WINDOW / 2 + 1)

    assert spendable(retry_budget) == 20


def test_the_older_half_window_drops_out_and_the_newer_stays() -> None:
    clock = FakeClock()
    retry_budget = budget(clock)
    record(retry_budget, 100)
    clock.advance(WINDOW / 2)
    record(retry_budget, 50)

    clock.advance(WINDOW / 2)

    assert spendable(retry_budget) == 10  # 20% of the 50 newer requests only


def test_requests_older_than_the_window_no_longer_raise_the_budget() -> None:
    # The docstring promises the last `window` seconds; here the 100 requests are 12 s old.
    clock = FakeClock()
    retry_budget = budget(clock)
    record(retry_budget, 100)
    clock.advance(9.0)
    record(retry_budget, 1)

    clock.advance(3.0)

    assert spendable(retry_budget) == MIN_RETRIES
