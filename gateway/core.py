"""The gateway's one core: both transports hand it request messages and render what it returns.

A call goes: drain check → authentication → validation → routing → provider, bounded by the
caller's deadline. The core raises only `GatewayError`s (or lets `asyncio.CancelledError` through
when the caller goes away, which aborts the upstream request with it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from gateway.auth import TokenAuthenticator
from gateway.errors import (
    DeadlineExceededError,
    GatewayError,
    ModelNotFoundError,
    RequestCancelledError,
    ServiceUnavailableError,
    StreamInterruptedError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
)
from gateway.params import CompletionMessage, CompletionParams, parse_params
from gateway.pricing import PriceTable
from gateway.v1 import gateway_pb2 as pb
from metrics import IN_FLIGHT, REQUEST_DURATION, REQUESTS, UPSTREAM_ATTEMPTS
from providers.base import ChatChunk, ChatRequest, ChatResponse, Usage
from providers.registry import ADAPTERS, ProviderRegistry, Route

log = logging.getLogger("gateway.core")

UNAVAILABLE_RETRY_AFTER_SECONDS = 1.0


@dataclass(slots=True)
class CallContext:
    """What a transport knows about a call besides its request message."""

    transport: str
    request_id: str
    authorization: str | None = None
    #: The `x-provider` header: pins the call to one deployment unless the body pins one.
    provider_pin: str | None = None
    #: Absolute deadline on the event loop's clock (`loop.time()`), from the transport.
    deadline: float | None = None


@dataclass(slots=True)
class _Call:
    """A call in progress: its validated request, route, deadline and accounting."""

    rpc: str
    context: CallContext
    started: float
    params: CompletionParams | None = None
    route: Route | None = None
    deadline: float = 0.0
    usage: Usage | None = None
    code: str = "OK"

    def chat_request(self) -> ChatRequest:
        assert self.params is not None
        assert self.route is not None
        remaining = max(self.deadline - asyncio.get_running_loop().time(), 0.0)
        headers = (("x-request-id", self.context.request_id),)
        return self.params.to_chat(self.route.model, timeout=remaining, headers=headers)


class GatewayService:
    """Serves Complete, StreamComplete and ProviderStatus for every transport."""

    def __init__(
        self,
        registry: ProviderRegistry,
        authenticator: TokenAuthenticator,
        prices: PriceTable,
        *,
        request_timeout: float,
    ) -> None:
        self._registry = registry
        self._auth = authenticator
        self._prices = prices
        self._request_timeout = request_timeout
        self._state = "starting"

    def open_for_calls(self) -> None:
        """Take calls from now on (new calls are refused while starting)."""
        self._state = "serving"

    def begin_drain(self) -> None:
        """Refuse new calls from now on; calls in flight carry on."""
        self._state = "draining"

    async def complete(self, request: pb.CompleteRequest, ctx: CallContext) -> pb.CompleteResponse:
        """Answer one whole completion."""
        call = self._start("Complete", ctx)
        try:
            self._prepare(call, request)
            assert call.route is not None
            attempt_started = time.perf_counter()
            try:
                async with asyncio.timeout_at(call.deadline):
                    answer = await call.route.provider.complete(call.chat_request())
            except BaseException as exc:
                error = self._attempt_failed(call, exc, attempt_started)
                if error is exc:
                    raise
                raise error from exc
            attempt = self._attempt(call, pb.ATTEMPT_OUTCOME_SUCCESS, attempt_started)
            call.usage = answer.usage
            cost = self._cost(call, answer.model, answer.usage)
            return _complete_response(call, answer, attempt, cost)
        except BaseException as exc:
            call.code = _code_of(exc)
            raise
        finally:
            self._finish(call)

    async def stream_complete(
        self, request: pb.StreamCompleteRequest, ctx: CallContext
    ) -> AsyncGenerator[pb.StreamCompleteResponse, None]:
        """Yield a completion as it is generated; the last message has finish reason and usage."""
        call = self._start("StreamComplete", ctx)
        try:
            self._prepare(call, request)
            assert call.route is not None
            provider = call.route.provider.name
            attempt_started = time.perf_counter()
            final: ChatChunk | None = None
            completion_id = model = ""
            try:
                async with aclosing(call.route.provider.stream(call.chat_request())) as chunks:
                    while final is None:
                        # The deadline wraps each step, never a yield: a timeout scope left
                        # open across a yield would fire inside the consumer's code.
                        async with asyncio.timeout_at(call.deadline):
                            chunk = await anext(chunks, None)
                        if chunk is None:
                            raise StreamInterruptedError(
                                f"provider {provider!r} ended the stream without a finish reason",
                                provider=provider,
                            )
                        completion_id, model = chunk.id or completion_id, chunk.model or model
                        if chunk.finish_reason is not None:
                            final = chunk
                        elif chunk.delta:
                            yield pb.StreamCompleteResponse(
                                id=completion_id, model=model, provider=provider, delta=chunk.delta
                            )
            except BaseException as exc:
                error = self._attempt_failed(call, exc, attempt_started)
                if error is exc:
                    raise
                raise error from exc
            attempt = self._attempt(call, pb.ATTEMPT_OUTCOME_SUCCESS, attempt_started)
            call.usage = final.usage
            yield pb.StreamCompleteResponse(
                id=completion_id,
                model=model,
                provider=provider,
                finish_reason=final.finish_reason or "stop",
                usage=_usage_message(final.usage),
                cost_usd=self._cost(call, model, final.usage),
                attempts=[attempt],
            )
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
            self._auth.check(ctx.authorization)
            providers = _status_entries(self._registry)
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

    def _cost(self, call: _Call, answered_model: str, usage: Usage | None) -> float:
        """USD for `usage`, priced by the model that answered, else the one asked for."""
        assert call.route is not None
        if usage is None:
            return 0.0
        provider = call.route.provider
        models = (answered_model, call.route.model) if answered_model else (call.route.model,)
        return self._prices.cost(provider.name, provider.kind, models, usage)

    def _start(self, rpc: str, ctx: CallContext) -> _Call:
        IN_FLIGHT.labels(ctx.transport).inc()
        return _Call(rpc=rpc, context=ctx, started=time.perf_counter())

    def _prepare(self, call: _Call, request: CompletionMessage) -> None:
        """Admit, authenticate, validate and route; nothing here reaches a provider."""
        if self._state != "serving":
            raise ServiceUnavailableError(
                f"the gateway is {self._state}; retry shortly or on another replica",
                retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS,
            )
        ctx = call.context
        self._auth.check(ctx.authorization)
        call.params = parse_params(request)
        call.route = self._registry.resolve(
            call.params.model, call.params.provider or ctx.provider_pin
        )
        call.deadline = self._deadline(ctx, call.params.timeout)

    def _deadline(self, ctx: CallContext, timeout: float | None) -> float:
        now = asyncio.get_running_loop().time()
        deadline = now + (timeout if timeout is not None else self._request_timeout)
        return min(deadline, ctx.deadline) if ctx.deadline is not None else deadline

    def _attempt(
        self, call: _Call, outcome: pb.AttemptOutcome.ValueType, started: float
    ) -> pb.Attempt:
        assert call.route is not None
        attempt = pb.Attempt(
            provider=call.route.provider.name, model=call.route.model, outcome=outcome
        )
        attempt.latency.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
        UPSTREAM_ATTEMPTS.labels(call.route.provider.name, pb.AttemptOutcome.Name(outcome)).inc()
        return attempt

    def _attempt_failed(self, call: _Call, exc: BaseException, started: float) -> BaseException:
        """Account a failed try and return the error the caller should see."""
        assert call.route is not None
        provider = call.route.provider.name
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            # The caller went away: leaving the `async with` has aborted the upstream request.
            self._attempt(call, pb.ATTEMPT_OUTCOME_CANCELLED, started)
            return exc
        deadline_spent = asyncio.get_running_loop().time() >= call.deadline
        if isinstance(exc, TimeoutError | UpstreamTimeoutError) and deadline_spent:
            self._attempt(call, pb.ATTEMPT_OUTCOME_TIMEOUT, started)
            return DeadlineExceededError(
                f"deadline exceeded while waiting for provider {provider!r}"
            )
        if isinstance(exc, UpstreamTimeoutError):
            self._attempt(call, pb.ATTEMPT_OUTCOME_TIMEOUT, started)
        elif isinstance(exc, UpstreamRateLimitedError):
            self._attempt(call, pb.ATTEMPT_OUTCOME_RATE_LIMITED, started)
        else:
            self._attempt(call, pb.ATTEMPT_OUTCOME_ERROR, started)
        if isinstance(exc, GatewayError):
            log.warning(
                "provider call failed",
                extra={"provider": provider, "error": type(exc).__name__, "code": exc.code_name},
            )
            return exc
        log.exception("provider %r raised an unexpected error", provider)
        return UpstreamError(f"provider {provider!r} failed unexpectedly", provider=provider)

    def _finish(self, call: _Call) -> None:
        ctx = call.context
        elapsed = time.perf_counter() - call.started
        IN_FLIGHT.labels(ctx.transport).dec()
        REQUESTS.labels(call.rpc, ctx.transport, call.code).inc()
        REQUEST_DURATION.labels(call.rpc, ctx.transport).observe(elapsed)
        usage = call.usage or Usage()
        log.info(
            "request finished",
            extra={
                "transport": ctx.transport,
                "rpc": call.rpc,
                "model": call.params.model if call.params else None,
                "provider": call.route.provider.name if call.route else None,
                "status": call.code,
                "latency_ms": round(elapsed * 1000, 3),
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
            },
        )


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


def _complete_response(
    call: _Call, answer: ChatResponse, attempt: pb.Attempt, cost: float
) -> pb.CompleteResponse:
    assert call.route is not None
    return pb.CompleteResponse(
        id=answer.id,
        model=answer.model,
        provider=call.route.provider.name,
        content=answer.content,
        finish_reason=answer.finish_reason,
        usage=_usage_message(answer.usage),
        cost_usd=cost,
        attempts=[attempt],
    )


def _status_entries(registry: ProviderRegistry) -> list[pb.ProviderInfo]:
    """Every deployment, then every adapter kind with none configured (marked so)."""
    entries = []
    for deployment in registry.deployments:
        keys = deployment.keys.status()
        entries.append(
            pb.ProviderInfo(
                name=deployment.settings.name,
                kind=deployment.provider.kind,
                models=deployment.settings.models,
                circuit_state=pb.CIRCUIT_STATE_CLOSED,
                healthy=True,
                configured=True,
                keys_total=keys.total,
                keys_available=keys.available,
            )
        )
    configured_kinds = {d.settings.kind for d in registry.deployments}
    for spec in ADAPTERS.values():
        if spec.kind not in configured_kinds:
            entries.append(
                pb.ProviderInfo(name=spec.kind, kind=spec.kind, models=spec.default_models)
            )
    return entries
