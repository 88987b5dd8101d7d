"""What every call leaves behind: metrics, its quota charge settled, its ledger row, a log line.

A call counts as in flight from its start to its end. Its quota is charged once it is validated
(a cache hit counts as a request too) and settled off the request path when it ends, with the
tokens and cost it really used (none for a cache hit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.pipeline.call import Call, PreparedCall
from gateway.pipeline.ledger_rows import request_record
from gateway.pipeline.types import CompletionRequest
from gateway.store.records import RequestRecord
from gateway.tenancy.quotas import Charge, Quotas, estimate_tokens
from metrics import COST, IN_FLIGHT, REQUEST_DURATION, REQUESTS, TOKENS, labeled
from providers.embed_types import estimated_tokens
from providers.registry import Route
from providers.types import Usage

# Accounting is the core's bookkeeping: its lines keep the core's logger name.
log = logging.getLogger("gateway.core")

UsageSink = Callable[[RequestRecord], None]


class CallAccounting:
    """Counts calls in and out, charges and settles their quotas, and hands on ledger rows."""

    def __init__(self, quotas: Quotas | None, usage: UsageSink | None) -> None:
        self._quotas = quotas
        self._usage = usage
        self._settling: set[asyncio.Task[None]] = set()

    def started(self, call: Call) -> None:
        """Count a call in flight."""
        labeled(IN_FLIGHT, call.start.context.transport).inc()

    async def charge(self, call: Call, prepared: PreparedCall) -> None:
        """Charge the caller's rate limits (a cache hit counts as a request too)."""
        if self._quotas is None:
            return
        request = prepared.request
        if isinstance(request, CompletionRequest):
            chat = request.chat
            estimate = estimate_tokens(chat.messages, chat.sampling.max_tokens)
        else:
            estimate = estimated_tokens(request.embed)
        call.charge = await self._quotas.admit(prepared.identity, prepared.tenant, estimate)

    def finished(self, call: Call) -> None:
        """Count, settle, record and log a call that has ended, however it ended."""
        start, prepared, served, route = call.start, call.prepared, call.served, call.route
        transport = start.context.transport
        elapsed = time.perf_counter() - start.clock
        labeled(IN_FLIGHT, transport).dec()
        labeled(REQUESTS, start.rpc, transport, call.code).inc()
        labeled(REQUEST_DURATION, start.rpc, transport).observe(elapsed)
        usage = (served.usage if served is not None else None) or Usage()
        cost = served.cost_usd if served is not None else 0.0
        cached = served is not None and served.cached
        if route is not None and served is not None and served.usage is not None and not cached:
            _count_usage(route, served.usage, cost)
        if call.charge is not None:
            self._settle(call.charge, 0 if cached else usage.total_tokens, 0.0 if cached else cost)
        if prepared is not None and self._usage is not None:
            self._usage(request_record(call, prepared, usage, elapsed))
        log.info(
            "request finished",
            extra={
                "transport": transport,
                "rpc": start.rpc,
                "model": prepared.request.model if prepared is not None else None,
                "provider": route.provider.name if route is not None else None,
                "status": call.code,
                "cached": cached,
                "latency_ms": round(elapsed * 1000, 3),
                "attempts": len(prepared.trace.attempts) if prepared is not None else 0,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost_usd": cost,
                "usage_estimated": served is not None and served.usage_estimated,
            },
        )

    async def aclose(self, *, wait: float) -> None:
        """Wait (at most `wait` seconds) for the usage settlements still under way."""
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=wait)

    def _settle(self, charge: Charge, tokens: int, cost_usd: float) -> None:
        """Correct the token charge and spend the cost, off the request path."""
        assert self._quotas is not None
        if not self._quotas.owes(charge, tokens, cost_usd):
            return
        task = asyncio.create_task(self._quotas.settle(charge, tokens, cost_usd))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)


def _count_usage(route: Route, usage: Usage, cost: float) -> None:
    """Add a call's tokens and cost to the counters. Each series is looked up (so it exists from
    the first call) but a zero is not added: in multi-worker mode every add is a locked write to
    the shared file, and most calls use no cached or reasoning tokens (and many have no price)."""
    provider, model = route.provider.name, route.model_label
    _add(labeled(TOKENS, provider, model, "prompt"), usage.prompt_tokens)
    _add(labeled(TOKENS, provider, model, "completion"), usage.completion_tokens)
    _add(labeled(TOKENS, provider, model, "cached"), usage.cached_tokens)
    _add(labeled(TOKENS, provider, model, "reasoning"), usage.reasoning_tokens)
    _add(labeled(COST, provider, model), cost)


def _add(counter: Any, amount: float) -> None:
    if amount:
        counter.inc(amount)
