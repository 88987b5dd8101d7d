"""A call's state, stage by stage: each stage's value is complete once the stage is reached.

    CallStart ──prepare──> PreparedCall ──(charge, cache, dispatch)──> Served

A transport's `CallContext` starts a call; preparing it (authentication, validation, the plan,
the deadline, the cache key) makes a `PreparedCall`, whose fields are all there; an answer,
fresh or cached, is `Served`. The `Call` holds the stages a call has reached, so however it
ended the accounting finds what it got to.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime

from cache.layer import Flight
from gateway.pipeline.dispatch import Step, Trace, Try
from gateway.pipeline.types import CompletionRequest, EmbeddingRequest
from gateway.tenancy.auth import Identity
from gateway.tenancy.quotas import Charge
from providers.embed_types import EmbedRequest
from providers.registry import Route
from providers.types import CallIO, ChatRequest, Usage


@dataclass(slots=True)
class CallContext:
    """What a transport knows about a call besides its request."""

    transport: str
    request_id: str
    authorization: str | None = None
    #: The `x-provider` header: pins the call to one deployment unless the body pins one.
    provider_pin: str | None = None
    #: Absolute deadline on the event loop's clock (`loop.time()`): the gRPC deadline.
    deadline: float | None = None
    #: The `x-request-timeout` header or metadata, as sent ("1.5", "1.5s", "1500ms").
    timeout_header: str | None = None
    #: The caller, when the transport has authenticated it already (before reading the body).
    identity: Identity | None = None


@dataclass(frozen=True, slots=True)
class CallStart:
    """A call as it starts: which RPC, by which transport, and when."""

    rpc: str
    context: CallContext
    #: `time.perf_counter()` at the start, for durations.
    clock: float
    #: The wall clock at the start, for the ledger.
    at: datetime
    #: This call's row id in the usage ledger.
    id: str


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A call authenticated, validated and planned: everything needed to answer it."""

    start: CallStart
    identity: Identity
    #: The tenant the call is accounted to.
    tenant: str
    #: The validated request: a completion's, or an embedding call's.
    request: CompletionRequest | EmbeddingRequest
    #: The model's route with its retries, then each fallback's.
    plan: tuple[Step, ...]
    #: When the caller's time is up, on the event loop's clock.
    deadline: float
    #: Where its answer is cached; None when it must not be (not deterministic, no cache).
    cache_key: str | None
    #: Its tries, as they are made.
    trace: Trace
    #: The request with its https images fetched, for deployments that do not fetch them
    #: themselves (None: no deployment of the plan needs that).
    inlined: ChatRequest | None = None

    def chat_for(self, attempt: Try, deadline: float) -> ChatRequest:
        """The adapter request for one try, bounded by `deadline`, carrying its trace context."""
        request = self.request
        assert isinstance(request, CompletionRequest), "chat_for serves completion calls"
        asked = request.chat
        if self.inlined is not None and not fetches_image_urls(attempt.route):
            asked = self.inlined
        return for_try(asked, attempt.route.model, self._io(attempt, deadline))

    def embed_for(self, attempt: Try, deadline: float) -> EmbedRequest:
        """The embedding request for one try, as `chat_for` makes a completion's."""
        request = self.request
        assert isinstance(request, EmbeddingRequest), "embed_for serves embedding calls"
        return replace(request.embed, model=attempt.route.model, io=self._io(attempt, deadline))

    def _io(self, attempt: Try, deadline: float) -> CallIO:
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
        request_id = ("x-request-id", self.start.context.request_id)
        trace = attempt.trace_headers()
        return CallIO(remaining, (request_id, *trace) if trace else (request_id,))


def for_try(chat: ChatRequest, model: str, io: CallIO) -> ChatRequest:
    """`replace(chat, model=model, io=io)`, without `replace`'s walk over the fields (a try
    is made per call); every other field is carried as it is."""
    return ChatRequest(
        model,
        chat.messages,
        chat.sampling,
        io,
        chat.tools,
        chat.tool_choice,
        chat.parallel_tool_calls,
        chat.response_format,
        chat.reasoning_effort,
    )


def fetches_image_urls(route: Route) -> bool:
    """Whether the route's vendor fetches https images itself (else the gateway sends bytes)."""
    return route.provider.capabilities(route.model).image_urls


@dataclass(frozen=True, slots=True)
class Served:
    """How a call was answered: what it used and cost, and whether from the cache."""

    #: The tokens the provider reported; None when its stream reported none.
    usage: Usage | None
    #: What the answer cost (a cached answer costs nothing).
    cost_usd: float
    cached: bool = False
    #: Whether `usage` is the gateway's estimate (the provider reported none).
    usage_estimated: bool = False


@dataclass(slots=True)
class Call:
    """The stages one call has reached (each set once, when reached), and how it ended."""

    start: CallStart
    prepared: PreparedCall | None = None
    #: What admitting it charged the caller's limits (None: there are no limits to charge).
    charge: Charge | None = None
    #: The cache flight this call leads (None: it leads none).
    flight: Flight | None = None
    #: The route that answered, or whose stream was relaying when the call ended.
    route: Route | None = None
    served: Served | None = None
    #: "OK", or the code of the error the caller got.
    code: str = "OK"
