"""API keys as the store knows them: looked up by hash, cached briefly, stale-if-error.

`KeyGrants.grant()` answers "what may this key do?" for `gateway.auth.Authenticator`: the key's
tenant and limits (`KeyGrant`), or None for a key that is unknown or revoked. The store is asked
through a `KeyLookup` (the assembly wraps `gateway.store.repository.find_api_key`); this module
bounds each lookup in time and keeps the gateway serving known keys while the store fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.errors import ServiceUnavailableError

log = logging.getLogger("gateway.auth")

KEY_CACHE_SECONDS = 2.0
DEFAULT_KEY_LOOKUP_TIMEOUT_SECONDS = 1.5
DEFAULT_KEY_MAX_STALE_SECONDS = 600.0
#: After a failed lookup the store is left alone this long: calls meanwhile do not wait on it.
STORE_RETRY_SECONDS = 1.0
MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What the store says about a valid API key: its tenant and limits."""

    key_id: str
    tenant: str
    key_rpm: int | None = None
    key_tpm: int | None = None
    key_budget_usd: float | None = None
    tenant_rpm: int | None = None
    tenant_tpm: int | None = None
    tenant_budget_usd: float | None = None


KeyLookup = Callable[[str], Awaitable[KeyGrant | None]]


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the store said about one key, and when (on the clock `KeyGrants` runs on)."""

    grant: KeyGrant | None
    at: float


class KeyGrants:
    """API keys looked up in the store: cached briefly, bounded in time, stale-if-error.

    An answer is reused for `KEY_CACHE_SECONDS`, then the store is asked again, so a revocation
    is seen within seconds. Each lookup is bounded by `lookup_timeout`, and concurrent lookups
    of one key share one query. Once a lookup fails (or takes too long) the store counts as
    failing until one succeeds: meanwhile the last answer it gave about a key (a grant, or "no
    such key") is served at once for up to `max_stale` seconds after it was given, while the
    store is asked again in the background (no sooner than `STORE_RETRY_SECONDS` after the last
    failure). A key with no answer that recent waits for a lookup, or gets UNAVAILABLE with
    Retry-After at once within `STORE_RETRY_SECONDS` of a failure. The first answer once the
    store is back replaces the stale one, so a key revoked meanwhile is refused from then on.
    """

    def __init__(
        self,
        lookup: KeyLookup,
        *,
        lookup_timeout: float = DEFAULT_KEY_LOOKUP_TIMEOUT_SECONDS,
        max_stale: float = DEFAULT_KEY_MAX_STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._timeout = lookup_timeout
        self._max_stale = max_stale
        self._clock = clock
        self._answers: dict[bytes, _Answer] = {}
        #: The lookup under way for a key, and when it began.
        self._flights: dict[bytes, tuple[float, asyncio.Task[KeyGrant | None]]] = {}
        #: Lookups given up on that have not ended yet (kept referenced until they do).
        self._stragglers: set[asyncio.Task[KeyGrant | None]] = set()
        self._failing_since: float | None = None
        self._left_alone_until = 0.0

    async def grant(self, secret: str, digest: bytes) -> KeyGrant | None:
        """The grant of key `secret` (None: unknown or revoked); UNAVAILABLE if unknowable."""
        known = self._answers.get(digest)
        now = self._clock()
        if known is not None and now - known.at < KEY_CACHE_SECONDS:
            return known.grant
        if self._failing_since is not None and self._fresh_enough(known, now):
            assert known is not None
            if now >= self._left_alone_until:
                self._flight(secret, digest, now)  # the answer comes in for the next call
            return known.grant
        if now < self._left_alone_until:
            return self._stale(known, now)
        flight = self._flight(secret, digest, now)
        await asyncio.wait({flight}, timeout=self._timeout)
        if flight.done() and not flight.cancelled() and flight.exception() is None:
            return flight.result()
        self._store_failed(flight.exception() if flight.done() and not flight.cancelled() else None)
        return self._stale(known, self._clock())

    def _flight(self, secret: str, digest: bytes, now: float) -> asyncio.Task[KeyGrant | None]:
        """The lookup of `digest` under way, or a new one."""
        under_way = self._flights.get(digest)
        if under_way is not None:
            began, flight = under_way
            if now - began <= self._timeout:
                return flight
            # Past its bound and not over (its connection may take long to give up): asked
            # afresh rather than waited on again.
            self._stragglers.add(flight)
        flight = asyncio.create_task(self._ask(secret, digest))
        self._flights[digest] = (now, flight)
        flight.add_done_callback(lambda done: self._landed(digest, done))
        return flight

    async def _ask(self, secret: str, digest: bytes) -> KeyGrant | None:
        try:
            async with asyncio.timeout(self._timeout):
                grant = await self._lookup(secret)
        except Exception as exc:
            self._store_failed(exc)
            raise
        self._remember(digest, grant)
        if self._failing_since is not None:
            log.info(
                "the store answers again: API keys are checked afresh",
                extra={"failing_seconds": round(self._clock() - self._failing_since, 3)},
            )
            self._failing_since = None
        self._left_alone_until = 0.0
        return grant

    def _landed(self, digest: bytes, flight: asyncio.Task[KeyGrant | None]) -> None:
        under_way = self._flights.get(digest)
        if under_way is not None and under_way[1] is flight:
            del self._flights[digest]
        self._stragglers.discard(flight)
        if not flight.cancelled():
            flight.exception()  # retrieved: a failure was handled in `_ask`

    def _remember(self, digest: bytes, grant: KeyGrant | None) -> None:
        self._answers.pop(digest, None)  # re-inserted last: the dict stays oldest-first
        self._answers[digest] = _Answer(grant, self._clock())
        if len(self._answers) > MAX_CACHED_KEYS:  # bounded: forget the oldest half
            for oldest in list(self._answers)[: MAX_CACHED_KEYS // 2]:
                del self._answers[oldest]

    def _store_failed(self, error: BaseException | None) -> None:
        now = self._clock()
        self._left_alone_until = now + STORE_RETRY_SECONDS
        if self._failing_since is not None:
            return
        self._failing_since = now
        cause = getattr(error, "__cause__", None) or error
        log.warning(
            "API keys cannot be checked in the store; known keys are served from memory",
            extra={
                "error": type(cause).__name__ if cause is not None else "TimeoutError",
                "lookup_timeout_seconds": self._timeout,
                "max_stale_seconds": self._max_stale,
            },
        )

    def _fresh_enough(self, known: _Answer | None, now: float) -> bool:
        return known is not None and now - known.at <= self._max_stale

    def _stale(self, known: _Answer | None, now: float) -> KeyGrant | None:
        if known is not None and self._fresh_enough(known, now):
            return known.grant
        raise ServiceUnavailableError(
            "API keys cannot be checked right now; retry shortly", retry_after=STORE_RETRY_SECONDS
        )
