"""What a cache backend is: bytes in, bytes out, by key, with a time to live.

Backends raise `CacheError` for anything that goes wrong (connection refused, timeout, a bad
reply); the cache layer turns that into a miss and counts it, so a cache failure never fails a
request.
"""

from __future__ import annotations

from typing import Protocol


class CacheError(Exception):
    """The backend could not answer (unreachable, too slow, or confused)."""


class CacheBackend(Protocol):
    """Stores opaque values by key for a while."""

    @property
    def name(self) -> str:
        """ "memory" or "redis", for metrics and logs."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value stored under `key`, or None when there is none (or it expired)."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
