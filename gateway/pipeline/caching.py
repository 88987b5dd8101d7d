"""The core's side of the response cache: a call's key, its lookup, and its answer stored.

Only deterministic calls have a key (tenant, primary deployment, request). Calls for one key
coalesce: while one call leads the flight for it, the others wait for its answer, each only as
long as its own deadline allows, and each leaving on its own: a follower that leaves (cancelled,
or out of time) disturbs neither the leader nor the other followers, and a leader that leaves
(or fails) lands no answer, so its followers call the provider themselves. Only a normal,
complete answer of the requested route is stored and shared.
"""

from __future__ import annotations

import asyncio

from opentelemetry.trace import get_current_span

from cache.answers import CachedAnswer
from cache.keys import cache_key
from cache.layer import ResponseCache
from gateway.errors import DeadlineExceededError
from gateway.pipeline.call import Call
from metrics import CACHE_LOOKUPS, CACHE_SAVED_USD, labeled
from providers.types import ChatRequest, Usage


class CallCache:
    """Looks calls up in the response cache and stores their answers; no-ops without a cache."""

    def __init__(self, cache: ResponseCache | None) -> None:
        self._cache = cache

    def key_for(self, call: Call) -> str | None:
        """The cache key of a planned call, or None when its answer must not be cached."""
        request = call.request
        if self._cache is None or request is None or not request.deterministic:
            return None
        primary = call.plan[0].route
        asked = request.chat
        chat = ChatRequest(primary.model, asked.messages, asked.sampling)
        return cache_key(call.tenant, primary.provider.name, chat)

    async def lookup(self, call: Call) -> CachedAnswer | None:
        """A stored or in-flight answer for this call; else lead the flight for its key."""
        key, request = call.cache_key, call.request
        if self._cache is None or key is None or request is None:
            return None
        backend = self._cache.backend.name
        span = get_current_span()
        if not request.cache.lookup:
            labeled(CACHE_LOOKUPS, backend, "bypass").inc()
            span.add_event("cache.bypass")
            return None
        answer = await self._cache.get(key)
        if answer is None:
            waiting = self._cache.waiting_on(key)
            if waiting is not None:
                answer = await _follow(waiting, call.deadline)
                if answer is not None:
                    labeled(CACHE_LOOKUPS, backend, "coalesced").inc()
        if answer is not None:
            call.cached, call.usage, call.route = True, answer.usage, call.plan[0].route
            CACHE_SAVED_USD.inc(answer.cost_usd)
            span.add_event("cache.hit")
            return answer
        span.add_event("cache.miss")
        if self._cache.waiting_on(key) is None:
            call.flight = self._cache.lead(key)
        return None

    def remember(
        self,
        call: Call,
        completion_id: str,
        model: str,
        content: str,
        finish_reason: str,
        usage: Usage | None,
        cost: float,
        deltas: tuple[str, ...] | None,
    ) -> None:
        """Store a normal, complete answer of the requested route and share it with waiters."""
        key, request, route = call.cache_key, call.request, call.route
        if self._cache is None or key is None or request is None or route is None:
            return
        if finish_reason != "stop" or usage is None or route != call.plan[0].route:
            if call.flight is not None:
                call.flight.land(None)
            return
        answer = CachedAnswer(
            completion_id, model, route.provider.name, content, finish_reason, usage, cost, deltas
        )
        if request.cache.store:
            self._cache.put(key, answer, request.cache.ttl)
        if call.flight is not None:
            call.flight.land(answer)

    def release(self, call: Call) -> None:
        """Free whoever waits on the call's flight (a no-op once its answer has landed)."""
        if call.flight is not None:
            call.flight.land(None)


async def _follow(
    flight: asyncio.Future[CachedAnswer | None], deadline: float
) -> CachedAnswer | None:
    """The leader's answer, waited for until the follower's own `deadline` at the latest."""
    try:
        async with asyncio.timeout_at(deadline):
            # shield: a follower that leaves must not cancel the answer for the others.
            return await asyncio.shield(flight)
    except TimeoutError:
        raise DeadlineExceededError(
            "deadline exceeded while waiting for an identical call in flight"
        ) from None
