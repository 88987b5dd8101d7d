"""The gateway's one core: both transports hand it request messages and render what it returns.

A call goes: drain check → authentication → validation → routing (the plan: the model's route
and its fallbacks) → admission (bounded, prioritised) → the retry/fallback loop through each
deployment's circuit breaker → provider, all bounded by the caller's deadline. The core raises
only `GatewayError`s (or lets `asyncio.CancelledError` through when the caller goes away, which
aborts the upstream request with it).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from opentelemetry.trace import get_current_span

from cache.answers import CachedAnswer
from cache.keys import cache_key
from cache.layer import Flight, ResponseCache
from gateway.auth import Authenticator, Identity
from gateway.dispatch import Dispatcher, OpenStream, Step, Trace, Try
from gateway.errors import (
    DeadlineExceededError,
    GatewayError,
    InvalidArgumentError,
    ModelNotFoundError,
    RequestCancelledError,
    ServiceUnavailableError,
    StreamInterruptedError,
    UpstreamAuthError,
    UpstreamUnavailableError,
)
from gateway.params import (
    CompletionMessage,
    CompletionParams,
    parse_params,
    parse_timeout_header,
)
from gateway.pricing import PriceTable
from gateway.quotas import Charge, Quotas
from gateway.status import status_entries
from gateway.store.records import AttemptRecord, RequestRecord
from gateway.v1 import gateway_pb2 as pb
from metrics import (
    ADMISSION_REJECTED,
    CACHE_LOOKUPS,
    CACHE_SAVED_USD,
    COST,
    IN_FLIGHT,
    REQUEST_DURATION,
    REQUESTS,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
    labeled,
)
from providers.base import ChatChunk, ChatRequest, ChatResponse, Usage
from providers.registry import ProviderRegistry, Route
from resilience.admission import Admission, AdmissionTimeoutError, QueueFullError
from resilience.breaker import Breakers

log = logging.getLogger("gateway.core")

UsageSink = Callable[[RequestRecord], None]

UNAVAILABLE_RETRY_AFTER_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """How calls are bounded, retried and failed over."""

    request_timeout: float
    stream_idle_timeout: float
    primary_retries: int
    fallback_retries: int
    #: Requested model -> models to fall back to, in order (a request's own list wins).
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Record prompts and completions on the request's span (off by default: they are data).
    trace_content: bool = False


@dataclass(slots=True)
class CallContext:
    """What a transport knows about a call besides its request message."""

    transport: str
    request_id: str
    authorization: str | None = None
    #: The `x-provider` header: pins the call to one deployment unless the body pins one.
    provider_pin: str | None = None
    #: Absolute deadline on the event loop's clock (`loop.time()`): the gRPC deadline.
    deadline: float | None = None
    #: The `x-request-timeout` header or metadata, as sent ("1.5", "1.5s", "1500ms").
    timeout_header: str | None = None


@dataclass(slots=True)
class _Call:
    """A call in progress: its validated request, plan, deadline and accounting."""

    rpc: str
    context: CallContext
    started: float
    params: CompletionParams | None = None
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
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def chat_for(self, attempt: Try, deadline: float) -> ChatRequest:
        """The adapter request for one try, bounded by `deadline`, carrying its trace context."""
        assert self.params is not None
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
        headers = (("x-request-id", self.context.request_id), *attempt.trace_headers())
        return self.params.to_chat(attempt.route.model, timeout=remaining, headers=headers)


class GatewayService:
    """Serves Complete, StreamComplete and ProviderStatus for every transport."""

    def __init__(
        self,
        registry: ProviderRegistry,
        authenticator: Authenticator,
        prices: PriceTable,
        *,
        dispatcher: Dispatcher,
        breakers: Breakers,
        admission: Admission,
        policy: CallPolicy,
        cache: ResponseCache | None = None,
        quotas: Quotas | None = None,
        usage: UsageSink | None = None,
    ) -> None:
        self._registry = registry
        self._auth = authenticator
        self._prices = prices
        self._dispatch = dispatcher
        self._breakers = breakers
        self._admission = admission
        self._policy = policy
        self._cache = cache
        self._quotas = quotas
        self._usage = usage
        self._settling: set[asyncio.Task[None]] = set()
        self._state = "starting"

    def open_for_calls(self) -> None:
        """Take calls from now on (new calls are refused while starting)."""
        self._state = "serving"

    def begin_drain(self) -> None:
        """Refuse new calls from now on; calls in flight carry on."""
        self._state = "draining"

    async def aclose(self, *, wait: float) -> None:
        """Wait (at most `wait` seconds) for the usage settlements still under way."""
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=wait)

    async def complete(self, request: pb.CompleteRequest, ctx: CallContext) -> pb.CompleteResponse:
        """Answer one whole completion."""
        call = self._start("Complete", ctx)
        try:
            await self._prepare(call, request)
            await self._admit_quota(call)
            hit = await self._from_cache(call)
            if hit is not None:
                return _cached_response(hit)
            async with self._admitted(call):
                route, answer = await self._dispatch.complete(
                    call.plan, call.chat_for, call.deadline, call.trace
                )
            call.route, call.usage = route, answer.usage
            response = self._complete_response(call, answer)
            call.cost_usd = response.cost_usd
            if self._policy.trace_content:
                _record_content(call, answer.content)
            self._remember(call, answer.id, answer.model, answer.content, answer.finish_reason,
                           answer.usage, response.cost_usd, None)  # fmt: skip
            return response
        except BaseException as exc:
            call.code = _code_of(exc)
            raise
        finally:
            self._finish(call)

    async def stream_complete(
        self, request: pb.StreamCompleteRequest, ctx: CallContext
    ) -> AsyncGenerator[pb.StreamCompleteResponse, None]:
        """Yield a completion as it is generated; the last message has finish reason and usage.

        Tries before the first chunk may be retried or fall back; once a chunk has gone to the
        caller, a failure ends the stream with an error (no retry, no fallback).
        """
        call = self._start("StreamComplete", ctx)
        try:
            await self._prepare(call, request)
            await self._admit_quota(call)
            hit = await self._from_cache(call)
            if hit is not None:
                for message in _replay(hit):
                    yield message
                return
            async with self._admitted(call):
                opened = await self._dispatch.open_stream(
                    call.plan, call.chat_for, call.deadline, call.trace
                )
                call.route = opened.route
                async for message in self._relay(call, opened):
                    yield message
        except BaseException as exc:
            call.code = _code_of(exc)
            raise
        finally:
            self._finish(call)

    async def provider_status(
        self, request: pb.ProviderStatusRequest, ctx: CallContext
    ) -> pb.ProviderStatusResponse:
        """Report every deployment (or the one asked for)."""
        call = self._start("ProviderStatus", ctx)
        try:
            await self._auth.authenticate(ctx.authorization)
            providers = status_entries(self._registry, self._breakers)
            if request.provider:
                providers = [p for p in providers if p.name == request.provider]
                if not providers:
                    known = ", ".join(d.settings.name for d in self._registry.deployments)
                    raise ModelNotFoundError(
                        f"unknown provider {request.provider!r}; known providers: {known}"
                    )
            return pb.ProviderStatusResponse(providers=providers)
        except BaseException as exc:
            call.code = _code_of(exc)
            raise
        finally:
            self._finish(call)

    async def _relay(
        self, call: _Call, opened: OpenStream
    ) -> AsyncGenerator[pb.StreamCompleteResponse, None]:
        """Pass an opened stream on; each wait for the next chunk is bounded by the idle timeout."""
        provider = opened.route.provider.name
        chunk: ChatChunk | None = opened.first
        completion_id = model = ""
        deltas: list[str] = []
        try:
            async with aclosing(opened.chunks) as chunks:
                while True:
                    if chunk is None:
                        raise StreamInterruptedError(
                            f"provider {provider!r} ended the stream without a finish reason",
                            provider=provider,
                        )
                    completion_id, model = chunk.id or completion_id, chunk.model or model
                    if chunk.finish_reason is not None:
                        break
                    if chunk.delta:
                        if not deltas:
                            labeled(TIME_TO_FIRST_TOKEN, provider).observe(
                                time.perf_counter() - call.started
                            )
                        deltas.append(chunk.delta)
                        yield pb.StreamCompleteResponse(
                            id=completion_id, model=model, provider=provider, delta=chunk.delta
                        )
                    # The timeout wraps each wait, never a yield: a timeout scope left open
                    # across a yield would fire inside the consumer's code.
                    idle = asyncio.get_running_loop().time() + self._policy.stream_idle_timeout
                    async with asyncio.timeout_at(min(call.deadline, idle)):
                        chunk = await anext(chunks, None)
        except BaseException as exc:
            error = self._stream_failed(call, opened, exc)
            if error is exc:
                raise
            raise error from exc
        opened.breaker.succeeded(opened.permit)
        call.trace.end(
            opened.attempt,
            pb.ATTEMPT_OUTCOME_SUCCESS,
            model=model,
            usage=chunk.usage,
            finish_reason=chunk.finish_reason or "stop",
        )
        call.usage = chunk.usage
        final = pb.StreamCompleteResponse(
            id=completion_id,
            model=model,
            provider=provider,
            finish_reason=chunk.finish_reason or "stop",
            usage=_usage_message(chunk.usage),
            cost_usd=self._cost(opened.route, model, chunk.usage),
            attempts=call.trace.attempts,
        )
        call.cost_usd = final.cost_usd
        # Before the last yield: a consumer may stop right after it and never resume us.
        self._remember(call, completion_id, model, "".join(deltas), final.finish_reason,
                       chunk.usage, final.cost_usd, tuple(deltas))  # fmt: skip
        yield final

    def _stream_failed(self, call: _Call, opened: OpenStream, exc: BaseException) -> BaseException:
        """Account a stream that broke after its first chunk; return what the caller sees."""
        route, breaker, permit, attempt = (
            opened.route,
            opened.breaker,
            opened.permit,
            opened.attempt,
        )
        provider = route.provider.name
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            breaker.released(permit)
            call.trace.end(attempt, pb.ATTEMPT_OUTCOME_CANCELLED)
            return exc
        if isinstance(exc, TimeoutError):
            if asyncio.get_running_loop().time() >= call.deadline:
                breaker.released(permit)
                error: GatewayError = DeadlineExceededError(
                    f"deadline exceeded while streaming from provider {provider!r}"
                )
            else:
                error = StreamInterruptedError(
                    f"provider {provider!r} sent nothing for "
                    f"{self._policy.stream_idle_timeout:g}s mid-stream",
                    provider=provider,
                )
                breaker.failed(permit, error)
            call.trace.end(attempt, pb.ATTEMPT_OUTCOME_TIMEOUT, error)
            return error
        if not isinstance(exc, GatewayError):
            log.exception("provider %r raised an unexpected error mid-stream", provider)
            exc = StreamInterruptedError(
                f"provider {provider!r} failed mid-stream", provider=provider
            )
        if isinstance(exc, UpstreamUnavailableError | UpstreamAuthError):
            breaker.failed(permit, exc)
        else:
            breaker.released(permit)
        call.trace.end(attempt, pb.ATTEMPT_OUTCOME_ERROR, exc)
        log.warning(
            "stream broke after it started",
            extra={"provider": provider, "error": type(exc).__name__, "code": exc.code_name},
        )
        return exc

    async def _prepare(self, call: _Call, request: CompletionMessage) -> None:
        """Check the gateway takes calls, authenticate, validate and plan; no provider is called."""
        if self._state != "serving":
            raise ServiceUnavailableError(
                f"the gateway is {self._state}; retry shortly or on another replica",
                retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS,
            )
        ctx = call.context
        call.identity = await self._auth.authenticate(ctx.authorization)
        call.params = params = parse_params(request)
        call.tenant = call.identity.tenant_for(params.metadata.get("tenant", ""))
        call.plan = self._plan(params, ctx)
        call.deadline = self._deadline(ctx, params.timeout)
        if self._cache is not None and params.deterministic:
            primary = call.plan[0].route
            chat = params.to_chat(primary.model, timeout=None, headers=())
            call.cache_key = cache_key(call.tenant, primary.provider.name, chat)

    async def _from_cache(self, call: _Call) -> CachedAnswer | None:
        """A stored or in-flight answer for this call; else lead the flight for its key."""
        key, params = call.cache_key, call.params
        if self._cache is None or key is None or params is None:
            return None
        backend = self._cache.backend.name
        span = get_current_span()
        if not params.cache_lookup:
            labeled(CACHE_LOOKUPS, backend, "bypass").inc()
            span.add_event("cache.bypass")
            return None
        answer = await self._cache.get(key)
        if answer is None:
            waiting = self._cache.waiting_on(key)
            if waiting is not None:
                # shield: a waiter that leaves must not cancel the answer for the others.
                answer = await asyncio.shield(waiting)
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

    def _remember(
        self,
        call: _Call,
        completion_id: str,
        model: str,
        content: str,
        finish_reason: str,
        usage: Usage | None,
        cost: float,
        deltas: tuple[str, ...] | None,
    ) -> None:
        """Store a normal, complete answer of the requested route and share it with waiters."""
        key, params, route = call.cache_key, call.params, call.route
        if self._cache is None or key is None or params is None or route is None:
            return
        if finish_reason != "stop" or usage is None or route != call.plan[0].route:
            if call.flight is not None:
                call.flight.land(None)
            return
        answer = CachedAnswer(
            completion_id, model, route.provider.name, content, finish_reason, usage, cost, deltas
        )
        if params.cache_store:
            self._cache.put(key, answer, params.cache_ttl)
        if call.flight is not None:
            call.flight.land(answer)

    def _plan(self, params: CompletionParams, ctx: CallContext) -> list[Step]:
        """The model's route with the primary retries, then each fallback with its own."""
        policy = self._policy
        primary = self._registry.resolve(params.model, params.provider or ctx.provider_pin)
        plan = [Step(primary, policy.primary_retries)]
        fallbacks = params.fallback_models or policy.fallbacks.get(params.model, ())
        for index, model in enumerate(fallbacks):
            try:
                route = self._registry.resolve(model)
            except ModelNotFoundError as exc:
                raise InvalidArgumentError(f"fallback_models[{index}]: {exc.message}") from None
            plan.append(Step(route, policy.fallback_retries))
        return plan

    def _deadline(self, ctx: CallContext, timeout: float | None) -> float:
        """The earliest of the gRPC deadline, the `timeout` field and `x-request-timeout`."""
        now = asyncio.get_running_loop().time()
        bounds = [now + (timeout if timeout is not None else self._policy.request_timeout)]
        if ctx.deadline is not None:
            bounds.append(ctx.deadline)
        if ctx.timeout_header is not None:
            bounds.append(now + parse_timeout_header(ctx.timeout_header))
        return min(bounds)

    @asynccontextmanager
    async def _admitted(self, call: _Call) -> AsyncIterator[None]:
        """Hold one of the gateway's upstream slots (queueing by priority) for the whole call."""
        priority = int(call.params.priority) if call.params is not None else 0
        try:
            slot = self._admission.acquire(priority, call.deadline)
            await slot.__aenter__()
        except QueueFullError as exc:
            ADMISSION_REJECTED.inc()
            raise ServiceUnavailableError(
                "the gateway is overloaded; retry on another replica", retry_after=exc.retry_after
            ) from None
        except AdmissionTimeoutError:
            raise DeadlineExceededError("deadline exceeded while queued for admission") from None
        try:
            yield
        finally:
            await slot.__aexit__(None, None, None)

    def _complete_response(self, call: _Call, answer: ChatResponse) -> pb.CompleteResponse:
        assert call.route is not None
        return pb.CompleteResponse(
            id=answer.id,
            model=answer.model,
            provider=call.route.provider.name,
            content=answer.content,
            finish_reason=answer.finish_reason,
            usage=_usage_message(answer.usage),
            cost_usd=self._cost(call.route, answer.model, answer.usage),
            attempts=call.trace.attempts,
        )

    def _cost(self, route: Route, answered_model: str, usage: Usage | None) -> float:
        """USD for `usage`, priced by the model that answered, else the one asked for."""
        if usage is None:
            return 0.0
        models = (answered_model, route.model) if answered_model else (route.model,)
        return self._prices.cost(route.provider.name, route.provider.kind, models, usage)

    def _start(self, rpc: str, ctx: CallContext) -> _Call:
        labeled(IN_FLIGHT, ctx.transport).inc()
        return _Call(rpc=rpc, context=ctx, started=time.perf_counter())

    async def _admit_quota(self, call: _Call) -> None:
        """Charge the caller's rate limits (a cache hit counts as a request too)."""
        if self._quotas is None or call.identity is None or call.params is None:
            return
        params = call.params
        call.charge = await self._quotas.admit(
            call.identity, call.tenant, params.messages, params.max_tokens
        )

    def _settle(self, call: _Call, usage: Usage) -> None:
        """Correct the token charge and spend the cost, off the request path."""
        if self._quotas is None or call.charge is None:
            return
        spent = 0.0 if call.cached else call.cost_usd
        used = 0 if call.cached else usage.total_tokens
        task = asyncio.create_task(self._quotas.settle(call.charge, used, spent))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def _record(self, call: _Call, usage: Usage, elapsed: float) -> None:
        """One row in the usage ledger for every call that got past validation."""
        if self._usage is None or call.params is None or call.identity is None:
            return
        route = call.route
        self._usage(
            RequestRecord(
                id=call.id,
                request_id=call.context.request_id,
                tenant_id=call.tenant,
                api_key_id=call.identity.api_key_id,
                transport=call.context.transport,
                rpc=call.rpc,
                model=call.params.model,
                provider=route.provider.name if route else None,
                provider_model=route.model if route else None,
                status=call.code,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
                cached_tokens=usage.cached_tokens,
                cost_usd=0.0 if call.cached else call.cost_usd,
                cached=call.cached,
                latency_ms=round(elapsed * 1000),
                started_at=call.started_at,
                finished_at=datetime.now(UTC),
                attempts=tuple(
                    AttemptRecord(
                        attempt=number,
                        provider=a.provider,
                        model=a.model,
                        outcome=pb.AttemptOutcome.Name(a.outcome).removeprefix("ATTEMPT_OUTCOME_"),
                        error_code=a.error_code,
                        latency_ms=round(a.latency.ToNanoseconds() / 1e6),
                    )
                    for number, a in enumerate(call.trace.attempts, start=1)
                ),
            )
        )

    def _finish(self, call: _Call) -> None:
        if call.flight is not None:
            call.flight.land(None)  # no-op when the answer has landed; frees waiters otherwise
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
                "model": call.params.model if call.params else None,
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


def _record_content(call: _Call, completion: str) -> None:
    """Prompt and completion as span events (only with GATEWAY_TRACE_CONTENT on)."""
    assert call.params is not None
    prompt = orjson.dumps([[m.role, m.content] for m in call.params.messages]).decode()
    span = get_current_span()
    span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": prompt})
    span.add_event("gen_ai.content.completion", {"gen_ai.completion": completion})


def _count_usage(route: Route, usage: Usage, cost: float) -> None:
    provider, model = route.provider.name, route.model_label
    labeled(TOKENS, provider, model, "prompt").inc(usage.prompt_tokens)
    labeled(TOKENS, provider, model, "completion").inc(usage.completion_tokens)
    labeled(TOKENS, provider, model, "cached").inc(usage.cached_tokens)
    labeled(COST, provider, model).inc(cost)


def _code_of(exc: BaseException) -> str:
    if isinstance(exc, GatewayError):
        return exc.code_name
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return str(RequestCancelledError.grpc_code.name)
    return "INTERNAL"


def _usage_message(usage: Usage | None) -> pb.Usage | None:
    if usage is None:
        return None
    return pb.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        cached_tokens=usage.cached_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
    )


def _cached_response(answer: CachedAnswer) -> pb.CompleteResponse:
    """A cache hit: the original answer and usage, no tries, nothing to pay."""
    return pb.CompleteResponse(
        id=answer.id,
        model=answer.model,
        provider=answer.provider,
        content=answer.content,
        finish_reason=answer.finish_reason,
        usage=_usage_message(answer.usage),
        cost_usd=0.0,
        cached=True,
    )


def _replay(answer: CachedAnswer) -> Iterator[pb.StreamCompleteResponse]:
    """A cache hit as a stream: the same pieces as the original, then finish and usage."""
    for piece in answer.pieces():
        yield pb.StreamCompleteResponse(
            id=answer.id, model=answer.model, provider=answer.provider, delta=piece, cached=True
        )
    yield pb.StreamCompleteResponse(
        id=answer.id,
        model=answer.model,
        provider=answer.provider,
        finish_reason=answer.finish_reason,
        usage=_usage_message(answer.usage),
        cost_usd=0.0,
        cached=True,
    )
