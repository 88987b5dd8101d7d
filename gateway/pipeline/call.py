"""A call in progress, as the core and the pieces it hands a call to see it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cache.layer import Flight
from gateway.pipeline.dispatch import Step, Trace, Try
from gateway.pipeline.ids import new_id
from gateway.pipeline.types import CompletionRequest
from gateway.tenancy.auth import Identity
from gateway.tenancy.quotas import Charge
from providers.registry import Route
from providers.types import CallIO, ChatRequest, Usage

if TYPE_CHECKING:
    # Only a name for the annotation: the transports' half of a call is part of the core's API.
    from gateway.pipeline.service import CallContext


@dataclass(slots=True)
class Call:
    """A call in progress: its validated request, plan, deadline and accounting."""

    rpc: str
    context: CallContext
    started: float
    request: CompletionRequest | None = None
    plan: list[Step] = field(default_factory=list)
    route: Route | None = None
    deadline: float = 0.0
    usage: Usage | None = None
    code: str = "OK"
    trace: Trace = field(default_factory=Trace)
    #: Set when the answer may come from or go to the cache.
    cache_key: str | None = None
    flight: Flight | None = None
    cached: bool = False
    cost_usd: float = 0.0
    identity: Identity | None = None
    tenant: str = ""
    charge: Charge | None = None
    #: This call's row id in the usage ledger, and when it started (wall clock).
    id: str = field(default_factory=new_id)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def chat_for(self, attempt: Try, deadline: float) -> ChatRequest:
        """The adapter request for one try, bounded by `deadline`, carrying its trace context."""
        assert self.request is not None
        asked = self.request.chat
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
        headers = (("x-request-id", self.context.request_id), *attempt.trace_headers())
        return ChatRequest(
            attempt.route.model, asked.messages, asked.sampling, CallIO(remaining, headers)
        )
