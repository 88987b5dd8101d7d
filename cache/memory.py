"""In-process cache backend: a least-recently-used map bounded by bytes, with per-entry TTLs.

This is the embedded default when no Redis is configured. It lives in one process, so it is
not shared between replicas; it never does I/O and never raises `CacheError`.

Expired entries are dropped lazily, when a `get` finds them or when eviction reaches them:
there is no background task to start or stop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

ENTRY_OVERHEAD_BYTES = 64
"""Bytes charged per entry on top of its key and value, for the bookkeeping around them."""


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires_at: float
    size: int


class MemoryCache:
    """An LRU cache holding at most `max_bytes` of keys, values and per-entry overhead.

    The size of an entry is `len(key) + len(value) + ENTRY_OVERHEAD_BYTES`. Storing an entry
    evicts the least recently used ones until it fits; a `get` hit makes an entry the most
    recently used. A value that could never fit is not stored. Every operation is O(1) apart
    from the evictions it causes.
    """

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._size_bytes = 0

    @property
    def name(self) -> str:
        """Always "memory"."""
        return "memory"

    @property
    def size_bytes(self) -> int:
        """Bytes currently charged against `max_bytes` (expired entries count until dropped)."""
        return self._size_bytes

    @property
    def entries(self) -> int:
        """Number of entries currently held (expired entries count until dropped)."""
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        """The live value under `key`, marking it most recently used; None on a miss."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds, evicting LRU entries to make room.

        Any previous value under `key` is replaced. When the new value cannot be stored
        (`ttl <= 0`, or it is larger than the whole cache) the previous value is dropped too,
        so a later `get` never returns data the caller meant to overwrite.
        """
        if key in self._entries:
            self._drop(key)
        size = len(key) + len(value) + ENTRY_OVERHEAD_BYTES
        if ttl <= 0 or size > self._max_bytes:
            return
        while self._size_bytes + size > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._size_bytes -= evicted.size
        self._entries[key] = _Entry(value=value, expires_at=self._clock() + ttl, size=size)
        self._size_bytes += size

    async def aclose(self) -> None:
        """Drop every entry; the cache stays usable."""
        self._entries.clear()
        self._size_bytes = 0

    def _drop(self, key: str) -> None:
        self._size_bytes -= self._entries.pop(key).size
