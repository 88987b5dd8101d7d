"""Key pools: several API keys for one deployment, used round-robin, with rest for bad ones.

A key the vendor answers with 401/403 (revoked, wrong) or 429 (its own rate limit or quota) is
rested for a cooldown while the other keys carry on. Keys are never logged or shown: status
reports only counts.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyPoolStatus:
    """How many keys a pool holds and how many are not resting now."""

    total: int
    available: int


#: How long a key answered 429 without a `retry-after` rests.
RATE_LIMIT_REST_SECONDS = 10.0


class RestReason(enum.Enum):
    """Why a key is resting."""

    REJECTED = "rejected"  # 401/403: revoked or wrong
    RATE_LIMITED = "rate_limited"  # 429: its own rate limit or quota


class AllKeysRestingError(Exception):
    """Every key of the pool is resting; the first back returns in `retry_after` seconds.

    `reason` is why that key rests, so the caller's error can say what really went wrong.
    """

    def __init__(self, retry_after: float, reason: RestReason) -> None:
        super().__init__(f"all keys are resting ({reason.value}) for another {retry_after:.1f}s")
        self.retry_after = retry_after
        self.reason = reason


class KeyPool:
    """Round-robin over keys, skipping those resting after a 401/403/429."""

    def __init__(
        self,
        keys: Sequence[str],
        *,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = tuple(keys)
        self._cooldown = cooldown
        self._clock = clock
        self._next = 0
        self._resting_until = [0.0] * len(self._keys)
        self._reasons = [RestReason.REJECTED] * len(self._keys)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key (for redaction from messages; never for display)."""
        return self._keys

    def acquire(self) -> str:
        """The next key that is not resting; "" for a pool without keys.

        Raises `AllKeysRestingError` when every key is resting.
        """
        if not self._keys:
            return ""
        now = self._clock()
        count = len(self._keys)
        for step in range(count):
            index = (self._next + step) % count
            if self._resting_until[index] <= now:
                self._next = index + 1
                return self._keys[index]
        first = min(range(count), key=self._resting_until.__getitem__)
        raise AllKeysRestingError(self._resting_until[first] - now, self._reasons[first])

    def rest(self, key: str, reason: RestReason, seconds: float | None = None) -> None:
        """Take `key` out of rotation for `seconds`.

        Without `seconds`, a rejected key rests for the pool's cooldown and a rate-limited one
        for `RATE_LIMIT_REST_SECONDS` (rate limits clear in seconds; revoked keys do not).
        """
        if key not in self._keys:
            return
        if seconds is None:
            seconds = self._cooldown if reason is RestReason.REJECTED else RATE_LIMIT_REST_SECONDS
        until = self._clock() + max(seconds, 0.0)
        index = self._keys.index(key)
        if until > self._resting_until[index]:
            self._resting_until[index] = until
            self._reasons[index] = reason

    def status(self) -> KeyPoolStatus:
        """Counts only: how many keys, how many usable now."""
        now = self._clock()
        available = sum(1 for until in self._resting_until if until <= now)
        return KeyPoolStatus(total=len(self._keys), available=available)
