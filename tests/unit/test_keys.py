"""Key pools rotate round-robin and rest keys the vendor refused."""

from __future__ import annotations

import pytest

from providers.keys import AllKeysRestingError, KeyPool, RestReason


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(*keys: str, clock: Clock | None = None) -> KeyPool:
    return KeyPool(keys, cooldown=30.0, clock=clock or Clock())


def test_keys_are_used_round_robin() -> None:
    keys = pool("a", "b", "c")
    assert [keys.acquire() for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_an_empty_pool_hands_out_no_key() -> None:
    assert pool().acquire() == ""


def test_a_rested_key_is_skipped_until_its_cooldown_ends() -> None:
    clock = Clock()
    keys = pool("a", "b", "c", clock=clock)
    keys.rest("b", RestReason.RATE_LIMITED, 10.0)
    assert [keys.acquire() for _ in range(4)] == ["a", "c", "a", "c"]
    clock.now += 10.0
    assert sorted(keys.acquire() for _ in range(3)) == ["a", "b", "c"]


def test_rest_without_seconds_uses_the_pool_cooldown() -> None:
    clock = Clock()
    keys = pool("a", "b", clock=clock)
    keys.rest("a", RestReason.REJECTED)
    clock.now += 29.9
    assert keys.status().available == 1
    clock.now += 0.1
    assert keys.status().available == 2


def test_all_keys_resting_says_when_and_why() -> None:
    clock = Clock()
    keys = pool("a", "b", clock=clock)
    keys.rest("a", RestReason.REJECTED, 20.0)
    keys.rest("b", RestReason.RATE_LIMITED, 5.0)
    with pytest.raises(AllKeysRestingError) as caught:
        keys.acquire()
    assert caught.value.retry_after == pytest.approx(5.0)
    assert caught.value.reason is RestReason.RATE_LIMITED


def test_status_counts_and_never_shows_keys() -> None:
    keys = pool("secret-1", "secret-2")
    keys.rest("secret-1", RestReason.REJECTED)
    status = keys.status()
    assert (status.total, status.available) == (2, 1)
    assert "secret" not in repr(status)
    assert "secret" not in str(AllKeysRestingError(1.0, RestReason.REJECTED))
