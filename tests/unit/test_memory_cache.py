"""MemoryCache: hits, misses, TTL expiry and least-recently-used eviction by bytes."""

from __future__ import annotations

import pytest

from cache.backend import CacheBackend
from cache.memory import ENTRY_OVERHEAD_BYTES, MemoryCache


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry_size(key: str, value: bytes) -> int:
    """What the cache charges for one entry."""
    return len(key) + len(value) + ENTRY_OVERHEAD_BYTES


@pytest.fixture
def clock() -> Clock:
    """A hand-driven clock."""
    return Clock()


def test_is_a_cache_backend_named_memory() -> None:
    backend: CacheBackend = MemoryCache(1024)

    assert backend.name == "memory"


async def test_get_after_set_returns_the_value() -> None:
    cache = MemoryCache(1024)

    await cache.set("k", b"value", ttl=60)

    assert await cache.get("k") == b"value"


async def test_get_of_unknown_key_is_a_miss() -> None:
    cache = MemoryCache(1024)

    assert await cache.get("missing") is None


async def test_entry_is_served_until_its_ttl_then_dropped(clock: Clock) -> None:
    cache = MemoryCache(1024, clock=clock)
    await cache.set("k", b"value", ttl=10)

    clock.now += 9.999
    assert await cache.get("k") == b"value"

    clock.now += 0.001
    assert await cache.get("k") is None
    assert cache.entries == 0
    assert cache.size_bytes == 0


async def test_size_counts_key_value_and_overhead() -> None:
    cache = MemoryCache(1024)

    await cache.set("ab", b"12345", ttl=60)
    await cache.set("c", b"", ttl=60)

    assert cache.entries == 2
    assert cache.size_bytes == entry_size("ab", b"12345") + entry_size("c", b"")


async def test_storing_past_capacity_evicts_the_oldest_entry() -> None:
    value = b"x" * 100
    cache = MemoryCache(3 * entry_size("a", value))
    for key in ("a", "b", "c"):
        await cache.set(key, value, ttl=60)

    await cache.set("d", value, ttl=60)

    assert await cache.get("a") is None
    assert [await cache.get(key) for key in ("b", "c", "d")] == [value, value, value]
    assert cache.size_bytes == 3 * entry_size("a", value)


async def test_recently_read_entry_survives_eviction() -> None:
    value = b"x" * 100
    cache = MemoryCache(3 * entry_size("a", value))
    for key in ("a", "b", "c"):
        await cache.set(key, value, ttl=60)

    await cache.get("a")
    await cache.set("d", value, ttl=60)

    assert await cache.get("a") == value
    assert await cache.get("b") is None


async def test_large_entry_evicts_as_many_entries_as_it_needs() -> None:
    small = b"x" * 100
    cache = MemoryCache(4 * entry_size("a", small))
    for key in ("a", "b", "c", "d"):
        await cache.set(key, small, ttl=60)

    big = b"y" * (2 * entry_size("a", small) - entry_size("e", b""))  # as big as two entries
    await cache.set("e", big, ttl=60)

    assert [await cache.get(key) for key in ("a", "b")] == [None, None]
    assert [await cache.get(key) for key in ("c", "d", "e")] == [small, small, big]


async def test_value_larger_than_the_cache_is_not_stored() -> None:
    cache = MemoryCache(1024)
    await cache.set("keep", b"small", ttl=60)

    await cache.set("huge", b"x" * 1024, ttl=60)

    assert await cache.get("huge") is None
    assert await cache.get("keep") == b"small"
    assert cache.size_bytes == entry_size("keep", b"small")


async def test_overwriting_a_key_replaces_its_byte_count() -> None:
    cache = MemoryCache(1024)
    await cache.set("k", b"x" * 300, ttl=60)

    await cache.set("k", b"y" * 10, ttl=60)

    assert await cache.get("k") == b"y" * 10
    assert cache.entries == 1
    assert cache.size_bytes == entry_size("k", b"y" * 10)


@pytest.mark.parametrize("ttl", [0, -1.5])
async def test_non_positive_ttl_is_not_stored(ttl: float) -> None:
    cache = MemoryCache(1024)

    await cache.set("k", b"value", ttl=ttl)

    assert await cache.get("k") is None
    assert cache.size_bytes == 0


async def test_unstorable_overwrite_drops_the_old_value() -> None:
    cache = MemoryCache(1024)
    await cache.set("k", b"old", ttl=60)

    await cache.set("k", b"new", ttl=0)

    assert await cache.get("k") is None
    assert cache.entries == 0


async def test_aclose_empties_the_cache() -> None:
    cache = MemoryCache(1024)
    await cache.set("k", b"value", ttl=60)

    await cache.aclose()

    assert await cache.get("k") is None
    assert cache.size_bytes == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryCache(0)
