"""The core's side of the response cache: a call's key, its lookup, and its answer stored.

Only deterministic calls have a key (tenant, primary deployment, the whole request). Calls for
one key coalesce: while one call leads the flight for it, the others wait for its answer, each
only as long as its own deadline allows, and each leaving on its own: a follower that leaves
(cancelled, or out of time) disturbs neither the leader nor the other followers, and a leader
that leaves (or fails) lands no answer, so its followers call the provider themselves. Only a
normal, complete answer of the requested route (one that stopped, or called tools) is stored
and shared. Embedding calls use the same keys over their `EmbedRequest`, the same store and
the same flights.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from opentelemetry.trace import get_current_span

from cache.answers import CachedAnswer, CachedEmbeddings
from cache.keys import cache_key
from cache.layer import ResponseCache, Shared
from gateway.errors import DeadlineExceededError
from gateway.pipeline.call import Call, PreparedCall, for_try
from gateway.pipeline.dispatch import Step
from gateway.pipeline.types import Answer, CompletionRequest, EmbeddingAnswer, EmbeddingRequest
from metrics import CACHE_LOOKUPS, CACHE_SAVED_USD, labeled
from providers.embed_types import EmbedRequest
from providers.registry import Route
from providers.types import ChatRequest, StreamEvent

#: What a cache entry or a flight holds for a call: a chat answer, or embeddings.
S = TypeVar("S", CachedAnswer, CachedEmbeddings)

#: The finish reasons of a complete answer: the model stopped, or it called tools.
_NORMAL_ENDS = frozenset({"stop", "tool_calls"})


class CallCache:
    """Looks calls up in the response cache and stores their answers; no-ops without a cache."""

    def __init__(self, cache: ResponseCache | None) -> None:
        self._cache = cache

    def key_for(
        self, tenant: str, plan: tuple[Step, ...], request: CompletionRequest | EmbeddingRequest
    ) -> str | None:
        """The cache key of a planned call, or None when its answer must not be cached."""
        if self._cache is None or not request.deterministic:
            return None
        first = plan[0]
        if first.group:  # a group's answer is the group's, whichever member gave it
            where, model = f"group:{first.group}", first.group
        else:
            where, model = first.route.provider.name, first.route.model
        if isinstance(request, CompletionRequest):
            chat = request.chat
            asked: ChatRequest | EmbedRequest = for_try(chat, model, chat.io)
        else:
            asked = replace(request.embed, model=model)
        return cache_key(tenant, where, asked)

    def lookup_embeddings(
        self, call: Call, prepared: PreparedCall
    ) -> Coroutine[Any, Any, CachedEmbeddings | None]:
        """Stored or in-flight embeddings for this call; else lead the flight for its key
        (`_find`'s coroutine, as `lookup` hands it out)."""
        return self._find(call, prepared, CachedEmbeddings)

    def remember_embeddings(
        self, call: Call, prepared: PreparedCall, route: Route, answer: EmbeddingAnswer
    ) -> None:
        """Store embeddings the requested route gave (a fallback's are not this call's key's)
        and share them with waiters."""
        key = prepared.cache_key
        if self._cache is None or key is None:
            return
        if not _requested(prepared.plan, route):
            self.release(call)
            return
        stored = CachedEmbeddings(answer.embeddings, answer.provider, answer.cost_usd)
        self._keep(call, prepared, key, stored)

    def lookup(
        self, call: Call, prepared: PreparedCall
    ) -> Coroutine[Any, Any, CachedAnswer | None]:
        """A stored or in-flight answer for this call; else lead the flight for its key.

        Not a coroutine itself: it hands out `_find`'s, so a call awaits one coroutine, not two.
        """
        return self._find(call, prepared, CachedAnswer)

    async def _find(self, call: Call, prepared: PreparedCall, kind: type[S]) -> S | None:
        """What is stored, or in flight, for the call's key; on a miss the call leads the flight
        for its key (unless another call already does)."""
        key = prepared.cache_key
        if self._cache is None or key is None:
            return None
        backend = self._cache.backend.name
        span = get_current_span()
        if not prepared.request.cache.lookup:
            labeled(CACHE_LOOKUPS, backend, "bypass").inc()
            span.add_event("cache.bypass")
            return None
        found = await self._cache.get(key, kind.decode)
        if found is None:
            waiting = self._cache.waiting_on(key)
            if waiting is not None:
                shared = await _follow(waiting, prepared.deadline)
                if isinstance(shared, kind):
                    found = shared
                    labeled(CACHE_LOOKUPS, backend, "coalesced").inc()
        if found is not None:
            CACHE_SAVED_USD.inc(found.cost_usd)
            span.add_event("cache.hit")
            return found
        span.add_event("cache.miss")
        if self._cache.waiting_on(key) is None:
            call.flight = self._cache.lead(key)
        return None

    def remember(
        self,
        call: Call,
        prepared: PreparedCall,
        route: Route,
        answer: Answer,
        events: tuple[StreamEvent, ...] | None = None,
    ) -> None:
        """Store a normal, complete answer of the requested route and share it with waiters.

        `events` are a stream's content events (None for a unary answer). An answer whose
        usage was not reported is not stored.
        """
        key = prepared.cache_key
        if self._cache is None or key is None:
            return
        completion = answer.completion
        normal = completion.finish_reason in _NORMAL_ENDS and answer.usage_reported
        if not normal or not _requested(prepared.plan, route):
            self.release(call)
            return
        cached = CachedAnswer(completion, answer.provider, answer.cost_usd, events)
        self._keep(call, prepared, key, cached)

    def _keep(self, call: Call, prepared: PreparedCall, key: str, stored: Shared) -> None:
        """Store what the call got (unless its policy says not to) and hand it to its waiters."""
        assert self._cache is not None
        policy = prepared.request.cache
        if policy.store:
            self._cache.put(key, stored, policy.ttl)
        if call.flight is not None:
            call.flight.land(stored)

    def release(self, call: Call) -> None:
        """Free whoever waits on the call's flight (a no-op once its answer has landed)."""
        if call.flight is not None:
            call.flight.land(None)


async def _follow(flight: asyncio.Future[Shared | None], deadline: float) -> Shared | None:
    """The leader's answer, waited for until the follower's own `deadline` at the latest."""
    try:
        async with asyncio.timeout_at(deadline):
            # shield: a follower that leaves must not cancel the answer for the others.
            return await asyncio.shield(flight)
    except TimeoutError:
        raise DeadlineExceededError(
            "deadline exceeded while waiting for an identical call in flight"
        ) from None


def _requested(plan: tuple[Step, ...], route: Route) -> bool:
    """Whether `route` serves the requested model: its own route, or a member of its group."""
    first = plan[0]
    if not first.group:
        return route == first.route
    return any(s.route == route for s in plan if s.group == first.group and not s.fallback)
