"""Retry policy: exponential backoff with full jitter, and a per-process retry budget.

Full jitter (a uniformly random wait between 0 and `min(cap, base * 2**n)`) spreads retries of
many callers apart instead of sending them back in waves. The budget caps retries at a share of
recent requests (plus a small floor so a quiet process can still retry), so an outage does not
multiply the load on a struggling provider.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter."""

    base: float
    cap: float

    def delay(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(retry, 64))  # 2**1024 overflows
        return ceiling * rng()


class RetryBudget:
    """Allows retries while they stay under `ratio` of the requests of the last `window` seconds.

    Counts live in two half-window buckets, so the window slides without keeping a timestamp per
    request. `min_retries` per window are always allowed.
    """

    def __init__(
        self,
        ratio: float,
        *,
        min_retries: int = 10,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ratio = ratio
        self._min_retries = min_retries
        self._half = window / 2
        self._clock = clock
        self._bucket_started = clock()
        self._requests = [0, 0]  # [previous half-window, current half-window]
        self._retries = [0, 0]

    def record_request(self) -> None:
        """Count one request (each call, not each try)."""
        self._roll()
        self._requests[1] += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when the budget is spent."""
        self._roll()
        allowed = max(self._min_retries, self._ratio * sum(self._requests))
        if sum(self._retries) >= allowed:
            return False
        self._retries[1] += 1
        return True

    def _roll(self) -> None:
        now = self._clock()
        elapsed = now - self._bucket_started
        if elapsed < self._half:
            return
        steps = int(elapsed // self._half)
        if steps == 1:
            self._requests = [self._requests[1], 0]
            self._retries = [self._retries[1], 0]
        else:
            self._requests = [0, 0]
            self._retries = [0, 0]
        # Buckets stay on the half-window grid, so nothing counts for longer than the window.
        self._bucket_started += steps * self._half
