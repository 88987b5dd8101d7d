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

from gateway.pipeline.call import Call
from gateway.pipeline.ledger_rows import request_record
from gateway.store.records import RequestRecord
from gateway.tenancy.quotas import Quotas
from metrics import COST, IN_FLIGHT, REQUEST_DURATION, REQUESTS, TOKENS, labeled
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
        labeled(IN_FLIGHT, call.context.transport).inc()

    async def charge(self, call: Call) -> None:
        """Charge the caller's rate limits (a cache hit counts as a request too)."""
        if self._quotas is None or call.identity is None or call.request is None:
            return
        chat = call.request.chat
        call.charge = await self._quotas.admit(
            call.identity, call.tenant, chat.messages, chat.sampling.max_tokens
        )

    def finished(self, call: Call) -> None:
        """Count, settle, record and log a call that has ended, however it ended."""
        ctx = call.context
        elapsed = time.perf_counter() - call.started
        labeled(IN_FLIGHT, ctx.transport).dec()
        labeled(REQUESTS, call.rpc, ctx.transport, call.code).inc()
        labeled(REQUEST_DURATION, call.rpc, ctx.transport).observe(elapsed)
        usage = call.usage or Usage()
        if call.route is not None and call.usage is not None and not call.cached:
            _count_usage(call.route, usage, call.cost_usd)
        self._settle(call, usage)
        self._record(call, usage, elapsed)
        log.info(
            "request finished",
            extra={
                "transport": ctx.transport,
                "rpc": call.rpc,
                "model": call.request.model if call.request else None,
                "provider": call.route.provider.name if call.route else None,
                "status": call.code,
                "cached": call.cached,
                "latency_ms": round(elapsed * 1000, 3),
                "attempts": len(call.trace.attempts),
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost_usd": call.cost_usd,
            },
        )

    async def aclose(self, *, wait: float) -> None:
        """Wait (at most `wait` seconds) for the usage settlements still under way."""
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=wait)

    def _settle(self, call: Call, usage: Usage) -> None:
        """Correct the token charge and spend the cost, off the request path."""
        if self._quotas is None or call.charge is None:
            return
        spent = 0.0 if call.cached else call.cost_usd
        used = 0 if call.cached else usage.total_tokens
        if not self._quotas.owes(call.charge, used, spent):
            return
        task = asyncio.create_task(self._quotas.settle(call.charge, used, spent))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def _record(self, call: Call, usage: Usage, elapsed: float) -> None:
        """One row in the usage ledger for every call that got past validation."""
        if self._usage is None:
            return
        record = request_record(call, usage, elapsed)
        if record is not None:
            self._usage(record)


def _count_usage(route: Route, usage: Usage, cost: float) -> None:
    provider, model = route.provider.name, route.model_label
    labeled(TOKENS, provider, model, "prompt").inc(usage.prompt_tokens)
    labeled(TOKENS, provider, model, "completion").inc(usage.completion_tokens)
    labeled(TOKENS, provider, model, "cached").inc(usage.cached_tokens)
    labeled(COST, provider, model).inc(cost)
