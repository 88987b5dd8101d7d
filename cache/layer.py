"""The response cache as the core sees it: never fails a request, and coalesces identical misses.

Lookups that fail (backend down, too slow, a garbled entry) are misses, counted as errors.
Stores happen off the request path, in background tasks that `aclose()` waits for. Identical
misses at the same moment share one provider call: the first caller leads, the others wait for
its answer (`single flight`, within this process), a chat answer or embeddings alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from cache.answers import CachedAnswer, CachedEmbeddings
from cache.backend import CacheBackend, CacheError
from metrics import CACHE_ERRORS, CACHE_LOOKUPS, CACHE_STORED_BYTES, labeled

log = logging.getLogger("cache")

T = TypeVar("T")

#: How long `aclose()` waits for stores still under way.
CLOSE_WAIT_SECONDS = 2.0

#: What a flight shares: a chat answer, or embeddings (their keys never meet).
Shared = CachedAnswer | CachedEmbeddings


class Flight:
    """A leader's promise to the callers waiting on the same key."""

    def __init__(self, cache: ResponseCache, key: str) -> None:
        self._cache = cache
        self._key = key
        self.future: asyncio.Future[Shared | None] = asyncio.get_running_loop().create_future()

    def land(self, answer: Shared | None) -> None:
        """Hand the answer (None: there is none to share) to the waiters; idempotent."""
        if not self.future.done():
            self.future.set_result(answer)
        self._cache._flights.pop(self._key, None)


class ResponseCache:
    """Finds, stores and shares cached answers over one backend."""

    def __init__(self, backend: CacheBackend, *, default_ttl: float) -> None:
        self.backend = backend
        self.default_ttl = default_ttl
        self._flights: dict[str, Flight] = {}
        self._writes: set[asyncio.Task[None]] = set()

    async def get(self, key: str, decode: Callable[[bytes], T]) -> T | None:
        """What is stored under `key`, read by `decode` (which raises ValueError, KeyError or
        TypeError for a garbled entry), or None (a miss, a backend failure, a garbled entry)."""
        backend = self.backend.name
        try:
            raw = await self.backend.get(key)
        except CacheError as exc:
            labeled(CACHE_ERRORS, backend, "get").inc()
            log.warning("cache lookup failed", extra={"backend": backend, "error": str(exc)})
            return None
        if raw is None:
            labeled(CACHE_LOOKUPS, backend, "miss").inc()
            return None
        try:
            answer = decode(raw)
        except (ValueError, KeyError, TypeError):
            labeled(CACHE_ERRORS, backend, "decode").inc()
            return None
        labeled(CACHE_LOOKUPS, backend, "hit").inc()
        return answer

    def put(self, key: str, answer: Shared, ttl: float | None) -> None:
        """Store `answer` in the background (failures are counted, never raised)."""
        task = asyncio.create_task(self._write(key, answer.encode(), ttl or self.default_ttl))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def waiting_on(self, key: str) -> asyncio.Future[Shared | None] | None:
        """The answer a leader is already fetching for `key`, if one is."""
        flight = self._flights.get(key)
        return flight.future if flight is not None else None

    def lead(self, key: str) -> Flight:
        """Become the one caller fetching `key`; call `land()` on the flight when done."""
        flight = self._flights[key] = Flight(self, key)
        return flight

    async def aclose(self) -> None:
        """Let background stores finish (briefly), then close the backend."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=CLOSE_WAIT_SECONDS)
        await self.backend.aclose()

    async def _write(self, key: str, value: bytes, ttl: float) -> None:
        backend = self.backend.name
        try:
            await self.backend.set(key, value, ttl)
        except CacheError as exc:
            labeled(CACHE_ERRORS, backend, "set").inc()
            log.warning("cache store failed", extra={"backend": backend, "error": str(exc)})
            return
        labeled(CACHE_STORED_BYTES, backend).inc(len(value))
