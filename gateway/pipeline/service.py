"""The gateway's one core: the transports hand it `CompletionRequest`s (and `EmbeddingRequest`s)
and render what it returns.

A call goes: drain check → authentication → validation → routing (the plan: the model's route
and its fallbacks) → admission (bounded, prioritised) → the retry/fallback loop through each
deployment's circuit breaker → provider, all bounded by the caller's deadline. The core raises
only `GatewayError`s (or lets `asyncio.CancelledError` through when the caller goes away, which
aborts the upstream request with it).

The core runs that sequence; beside it are the pieces it hands a call to: `caching` (lookup,
coalescing and storing answers), `relay` (a stream once its first event is in) and
`accounting` (metrics, quota settlement, the ledger row and the log line at the end). It speaks
only the pipeline's values (`gateway.pipeline.types`): no transport's format reaches it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from types import TracebackType

import orjson
from opentelemetry.trace import get_current_span

from cache.answers import CachedAnswer
from cache.layer import ResponseCache
from gateway.errors import (
    Code,
    DeadlineExceededError,
    GatewayError,
    InvalidArgumentError,
    ModelNotFoundError,
    ServiceUnavailableError,
)
from gateway.pipeline.accounting import CallAccounting
from gateway.pipeline.accounting import (
    UsageSink as UsageSink,  # re-exported: the assembly names it here
)
from gateway.pipeline.caching import CallCache
from gateway.pipeline.call import (
    Call,
    CallContext,
    CallStart,
    PreparedCall,
    Served,
    fetches_image_urls,
)
from gateway.pipeline.dispatch import Dispatcher, Step, Trace
from gateway.pipeline.drain import CallsInFlight
from gateway.pipeline.ids import new_id
from gateway.pipeline.image_fetch import ImageFetcher, has_https_images
from gateway.pipeline.planning import RoutedPlans
from gateway.pipeline.pricing import PriceTable, cost_of
from gateway.pipeline.relay import StreamRelay
from gateway.pipeline.routing.groups import RouteContext
from gateway.pipeline.status import status_entries
from gateway.pipeline.types import (
    Answer,
    CompletionRequest,
    DeploymentStatus,
    Done,
    EmbeddingAnswer,
    EmbeddingRequest,
    StreamHead,
    StreamItem,
)
from gateway.pipeline.validation import parse_timeout_header, validate, validate_embedding
from gateway.tenancy.auth import Authenticator, Identity
from gateway.tenancy.quotas import Quotas
from metrics import ADMISSION_REJECTED
from providers.base import check_capabilities
from providers.embed_types import Embedder, EmbedRequest
from providers.errors import UnknownModelError
from providers.registry import ProviderRegistry, Route
from providers.types import ChatRequest, Completion
from resilience.admission import Admission, AdmissionTimeoutError, QueueFullError
from resilience.breaker import Breakers
from resilience.deadlines import spent

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


class CompletionService:
    """Serves Complete, StreamComplete, Embed and ProviderStatus for every transport."""

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
        images: ImageFetcher | None = None,
        routed: RoutedPlans | None = None,
    ) -> None:
        self._registry = registry
        self._images = images
        #: Plans through model groups and routes; None when none is configured (no cost).
        self._routed = routed
        self._auth = authenticator
        self._prices = prices
        self._dispatch = dispatcher
        self._breakers = breakers
        self._admission = admission
        self._policy = policy
        self._cache = CallCache(cache)
        self._relay = StreamRelay(
            idle_timeout=policy.stream_idle_timeout, prices=prices, cache=self._cache
        )
        self._accounting = CallAccounting(quotas, usage)
        self._in_flight = CallsInFlight()
        self._state = "starting"

    def open_for_calls(self) -> None:
        """Take calls from now on (new calls are refused while starting)."""
        self._state = "serving"

    def begin_drain(self) -> None:
        """Refuse new calls from now on; calls in flight carry on."""
        self._state = "draining"

    async def drain(self, grace: float) -> None:
        """Give the calls in flight `grace` seconds; then end each with UNAVAILABLE."""
        await self._in_flight.drain(grace)

    async def aclose(self, *, wait: float) -> None:
        """Wait (at most `wait` seconds) for the usage settlements still under way; close the
        image fetcher's connections."""
        await self._accounting.aclose(wait=wait)
        if self._images is not None:
            await self._images.aclose()

    async def authenticate(self, authorization: str | None) -> Identity:
        """The caller behind `authorization` (`UnauthenticatedError` when it does not hold)."""
        return await self._auth.authenticate(authorization)

    async def complete(self, request: CompletionRequest, ctx: CallContext) -> Answer:
        """Answer one whole completion."""
        call = self._start("Complete", ctx)
        with self._ending(call):
            prepared = call.prepared = await self._prepare(call.start, request)
            await self._accounting.charge(call, prepared)
            hit = await self._cache.lookup(call, prepared)
            if hit is not None:
                return self._served_from_cache(call, prepared, hit)
            if self._images is not None and has_https_images(request.chat):  # (nearly none)
                prepared = call.prepared = await self._with_images(prepared)
            async with self._admitted(prepared):
                route, completion = await self._dispatch.complete(
                    prepared.plan, prepared.chat_for, prepared.deadline, prepared.trace
                )
            call.route = route
            cost = cost_of(self._prices, route, completion.model, completion.usage)
            call.served = Served(completion.usage, cost)
            if self._policy.trace_content:
                _record_content(request.chat, completion)
            attempts = tuple(prepared.trace.attempts)
            answer = Answer(completion, route.provider.name, cost, attempts=attempts)
            self._cache.remember(call, prepared, route, answer)
            return answer

    async def stream_complete(
        self, request: CompletionRequest, ctx: CallContext
    ) -> AsyncGenerator[StreamItem, None]:
        """Yield a completion as it is generated: a head, its events, then `Done`.

        Tries before the first event may be retried or fall back; once an event has gone to the
        caller, a failure ends the stream with an error (no retry, no fallback).
        """
        call = self._start("StreamComplete", ctx)
        with self._ending(call):
            prepared = call.prepared = await self._prepare(call.start, request)
            await self._accounting.charge(call, prepared)
            hit = await self._cache.lookup(call, prepared)
            if hit is not None:
                answer = self._served_from_cache(call, prepared, hit)
                yield StreamHead(answer.completion.id, answer.completion.model, hit.provider, True)
                for event in hit.replay():
                    yield event
                yield Done(answer)
                return
            if self._images is not None and has_https_images(request.chat):  # (nearly none)
                prepared = call.prepared = await self._with_images(prepared)
            async with self._admitted(prepared):
                opened = await self._dispatch.open_stream(
                    prepared.plan, prepared.chat_for, prepared.deadline, prepared.trace
                )
                call.route = opened.route
                async for item in self._relay.relay(call, prepared, opened):
                    yield item

    async def embed(self, request: EmbeddingRequest, ctx: CallContext) -> EmbeddingAnswer:
        """Answer one embedding call: the same stages as `complete`, with an embedder per try."""
        call = self._start("Embed", ctx)
        with self._ending(call):
            prepared = call.prepared = await self._prepare(call.start, request)
            await self._accounting.charge(call, prepared)
            hit = await self._cache.lookup_embeddings(call, prepared)
            if hit is not None:
                call.route = prepared.plan[0].route
                stored = hit.embeddings
                call.served = Served(stored.usage, 0.0, True, stored.usage_estimated)
                return EmbeddingAnswer(stored, hit.provider, 0.0, cached=True)
            async with self._admitted(prepared):
                route, embeddings = await self._dispatch.embed(
                    prepared.plan,
                    self._embedder_of,
                    prepared.embed_for,
                    prepared.deadline,
                    prepared.trace,
                )
            call.route = route
            cost = cost_of(self._prices, route, embeddings.model, embeddings.usage)
            call.served = Served(embeddings.usage, cost, False, embeddings.usage_estimated)
            attempts = tuple(prepared.trace.attempts)
            answer = EmbeddingAnswer(embeddings, route.provider.name, cost, attempts=attempts)
            self._cache.remember_embeddings(call, prepared, route, answer)
            return answer

    async def provider_status(self, provider: str, ctx: CallContext) -> list[DeploymentStatus]:
        """Report every deployment (or only `provider`, when it is not "")."""
        call = self._start("ProviderStatus", ctx)
        try:
            await self._auth.authenticate(ctx.authorization)
            members_of = self._routed.members_of if self._routed is not None else None
            entries = status_entries(self._registry, self._breakers, self._prices, members_of)
            if provider:
                entries = [e for e in entries if e.name == provider]
                if not entries:
                    known = ", ".join(d.settings.name for d in self._registry.deployments)
                    raise ModelNotFoundError(
                        f"unknown provider {provider!r}; known providers: {known}"
                    )
            return entries
        except BaseException as exc:
            call.code = _code_of(exc, call)
            raise
        finally:
            self._finish(call)

    async def _prepare(
        self, start: CallStart, request: CompletionRequest | EmbeddingRequest
    ) -> PreparedCall:
        """Check the gateway takes calls, authenticate, validate and plan; no provider is called."""
        if self._state != "serving":
            raise ServiceUnavailableError(
                f"the gateway is {self._state}; retry shortly or on another replica",
                retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS,
            )
        ctx = start.context
        identity = ctx.identity or await self._auth.authenticate(ctx.authorization)
        if isinstance(request, CompletionRequest):
            request, trace = validate(request), Trace()
        else:
            request, trace = validate_embedding(request), Trace(operation="embeddings")
        tenant = identity.tenant_for(request.metadata.get("tenant", ""))
        plan = self._plan(request, ctx, identity, tenant, stream=start.rpc == "StreamComplete")
        deadline = self._deadline(ctx, request.timeout)
        cache_key = self._cache.key_for(tenant, plan, request)
        return PreparedCall(start, identity, tenant, request, plan, deadline, cache_key, trace)

    async def _with_images(self, prepared: PreparedCall) -> PreparedCall:
        """The call with its https images fetched, when a deployment of its plan needs them
        as bytes. A fetch that fails refuses the call when the primary needs the images, and
        skips (as unsupported) the fallbacks that do when only they need them. Called only
        when the gateway fetches images and the request holds https ones."""
        plan, request = prepared.plan, prepared.request
        assert isinstance(request, CompletionRequest), "only completions carry images"
        assert self._images is not None, "called only with an image fetcher"
        chat = request.chat
        needing = {
            index
            for index, step in enumerate(plan)
            if step.unsupported is None and not fetches_image_urls(step.route)
        }
        if not needing:
            return prepared
        try:
            inlined = await self._images.inline(chat, prepared.deadline)
        except InvalidArgumentError as exc:
            if 0 in needing:
                raise
            plan = tuple(
                replace(step, unsupported=exc.message) if index in needing else step
                for index, step in enumerate(plan)
            )
            return replace(prepared, plan=plan)
        get_current_span().add_event("images.fetched")
        return replace(prepared, inlined=inlined)

    def _served_from_cache(self, call: Call, prepared: PreparedCall, hit: CachedAnswer) -> Answer:
        """A cache hit: the original answer and usage, no tries, nothing to pay."""
        call.route = prepared.plan[0].route
        call.served = Served(hit.completion.usage, 0.0, cached=True)
        return Answer(hit.completion, hit.provider, 0.0, cached=True)

    def _plan(
        self,
        request: CompletionRequest | EmbeddingRequest,
        ctx: CallContext,
        identity: Identity,
        tenant: str,
        *,
        stream: bool = False,
    ) -> tuple[Step, ...]:
        """The model's route with the primary retries, then each fallback with its own.

        The primary route must be able to serve what the request uses (else INVALID_ARGUMENT,
        before any provider is called); a fallback that cannot is skipped when its turn comes.
        An embedding call routes embedding models too, and needs a deployment that can embed.
        With model groups or routes configured, `RoutedPlans` builds the plan (see there).
        """
        policy = self._policy
        resolve: Callable[..., Route]
        problem_of: Callable[[Route], str | None]
        if isinstance(request, CompletionRequest):
            chat = request.chat
            resolve, problem_of = self._registry.resolve, partial(_unsupported, chat)
        else:
            resolve = self._registry.resolve_embedding
            problem_of = partial(self._cannot_embed, request.embed)
        pin = request.routing.provider or ctx.provider_pin
        if self._routed is not None:
            context = RouteContext(
                tenant=tenant,
                use_case=request.metadata.get("use_case", ""),
                api_key=identity.api_key_id or "",
            )
            try:
                return self._routed.plan(
                    request,
                    resolve=resolve,
                    problem_of=problem_of,
                    pin=pin,
                    context=context,
                    stream=stream,
                )
            except UnknownModelError as exc:
                raise ModelNotFoundError(exc.message) from None
        try:
            primary = resolve(request.model, pin)
        except UnknownModelError as exc:
            raise ModelNotFoundError(exc.message) from None
        problem = problem_of(primary)
        if problem is not None:
            raise InvalidArgumentError(problem)
        plan = [Step(primary, policy.primary_retries)]
        fallbacks = request.routing.fallback_models or policy.fallbacks.get(request.model, ())
        for index, model in enumerate(fallbacks):
            try:
                route = resolve(model)
            except UnknownModelError as exc:
                raise InvalidArgumentError(f"fallback_models[{index}]: {exc.message}") from None
            plan.append(Step(route, policy.fallback_retries, problem_of(route)))
        return tuple(plan)

    def _cannot_embed(self, embed: EmbedRequest, route: Route) -> str | None:
        provider = route.provider
        embedder = self._registry.embedder(provider.name)
        if embedder is None:
            return f"model: provider {provider.name!r} ({provider.kind}) cannot embed"
        if embed.tokens and not embedder.takes_tokens:
            return f"inputs: provider {provider.name!r} cannot embed token arrays"
        return None

    def _embedder_of(self, route: Route) -> Embedder:
        embedder = self._registry.embedder(route.provider.name)
        assert embedder is not None, "the plan holds only routes that can embed"
        return embedder

    def _deadline(self, ctx: CallContext, timeout: float | None) -> float:
        """The earliest of the gRPC deadline, the `timeout` field and `x-request-timeout`."""
        now = asyncio.get_running_loop().time()
        bounds = [now + (timeout if timeout is not None else self._policy.request_timeout)]
        if ctx.deadline is not None:
            bounds.append(ctx.deadline)
        if ctx.timeout_header is not None:
            bounds.append(now + parse_timeout_header(ctx.timeout_header))
        return min(bounds)

    def _admitted(self, prepared: PreparedCall) -> _Admitted:
        """Hold one of the gateway's upstream slots (queueing by priority) for the whole call."""
        return _Admitted(self._admission.acquire(prepared.request.priority, prepared.deadline))

    def _start(self, rpc: str, ctx: CallContext) -> Call:
        call = Call(CallStart(rpc, ctx, time.perf_counter(), datetime.now(UTC), new_id()))
        self._in_flight.enter(call)
        self._accounting.started(call)
        return call

    def _ending(self, call: Call) -> _Ending:
        """Around a call's body: record how it failed (a drain's cut replaces the error) and
        finish it however it ends."""
        return _Ending(self, call)

    def _finish(self, call: Call) -> None:
        self._in_flight.leave(call)
        self._cache.release(call)
        self._accounting.finished(call)


class _Ending:
    """`CompletionService._ending`: a class rather than a `contextmanager`, for the same
    reason as `_Admitted` (every call goes through one)."""

    __slots__ = ("_call", "_service")

    def __init__(self, service: CompletionService, call: Call) -> None:
        self._service, self._call = service, call

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        service, call = self._service, self._call
        try:
            if exc is not None:
                cut = service._in_flight.cut_error(exc)
                call.code = _code_of(cut or exc, call)
                if cut is not None:
                    raise cut from None
        finally:
            service._finish(call)


class _Admitted:
    """An admission slot held for the body of an `async with`, its refusals as our errors.

    A class rather than an `asynccontextmanager`: a generator per call costs more than this.
    """

    __slots__ = ("_slot",)

    def __init__(self, slot: AbstractAsyncContextManager[None]) -> None:
        self._slot = slot

    async def __aenter__(self) -> None:
        try:
            await self._slot.__aenter__()
        except QueueFullError as exc:
            ADMISSION_REJECTED.inc()
            raise ServiceUnavailableError(
                "the gateway is overloaded; retry on another replica", retry_after=exc.retry_after
            ) from None
        except AdmissionTimeoutError:
            raise DeadlineExceededError("deadline exceeded while queued for admission") from None

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._slot.__aexit__(None, None, None)


def _record_content(chat: ChatRequest, completion: Completion) -> None:
    """Prompt and completion as span events, tool calls with their arguments (only with
    GATEWAY_TRACE_CONTENT on)."""
    prompt = orjson.dumps([[m.role, m.text] for m in chat.messages]).decode()
    span = get_current_span()
    span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": prompt})
    said: dict[str, str] = {"gen_ai.completion": completion.content}
    if completion.tool_calls:
        calls = [[c.id, c.name, c.arguments] for c in completion.tool_calls]
        said["gateway.tool_calls"] = orjson.dumps(calls).decode()
    span.add_event("gen_ai.content.completion", said)


def _unsupported(chat: ChatRequest, route: Route) -> str | None:
    """Why `route` cannot serve `chat` (naming the field and the deployment), or None."""
    provider = route.provider
    return check_capabilities(chat, provider.capabilities(route.model), provider.name)


def _code_of(exc: BaseException, call: Call) -> str:
    if isinstance(exc, GatewayError):
        return exc.code_name
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        # gRPC ends a call at its deadline itself (from when the request arrived, a hair before
        # the core's own timer): a call cancelled once its deadline has come ran out of time.
        prepared = call.prepared
        if prepared is not None and spent(prepared.deadline, asyncio.get_running_loop().time()):
            return Code.DEADLINE_EXCEEDED.name
        return Code.CANCELLED.name
    return "INTERNAL"
