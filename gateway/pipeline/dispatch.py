"""The retry/fallback loop: tries a plan of routes through their circuit breakers.

A plan is the primary route with `primary_retries`, then each fallback with `fallback_retries`.
Each try is bounded by the per-try timeout (time to the whole answer, or to a stream's first
chunk) and by the caller's deadline; which of the two cuts it is settled when the try begins
(`resilience.deadlines`), so a try cut by the caller's deadline is never the provider's failure,
even when its timer goes off a hair early. What a failure leads to:

| failure                                    | breaker | same route again       | next route |
|--------------------------------------------|---------|------------------------|------------|
| 5xx, connection, malformed, per-try timeout | failure | yes (backoff, budget) | yes        |
| provider rejected our key (401/403)        | failure | no                     | yes        |
| provider 429                               | neutral | if retry-after fits    | yes        |
| circuit open                               | -       | no                     | yes        |
| caller's deadline spent                    | neutral | no: DEADLINE_EXCEEDED  | no         |
| caller cancelled                           | neutral | no                     | no         |
| the caller's fault (400, 404, filtered)    | neutral | no                     | no         |

Every try, skipped ones included, is recorded as an `Attempt` for the response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

from opentelemetry.trace import Span, SpanKind, StatusCode, get_current_span

from gateway.errors import (
    DeadlineExceededError,
    GatewayError,
    ServiceUnavailableError,
    UpstreamAuthError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.v1 import gateway_pb2 as pb
from metrics import FALLBACKS, RETRIES, UPSTREAM_ATTEMPTS, UPSTREAM_LATENCY, labeled
from metrics.tracing import GEN_AI_SYSTEMS, inject_headers, tracer
from providers.registry import Route
from providers.types import ChatRequest, Completion, Meta, StreamEvent, Usage
from resilience.breaker import CircuitBreaker, CircuitOpenError, Permit
from resilience.deadlines import Cut, cut
from resilience.retry import Backoff, RetryBudget

log = logging.getLogger("gateway.dispatch")

T = TypeVar("T")
Outcome: TypeAlias = "pb.AttemptOutcome.ValueType"
#: `AttemptOutcome` names by value, looked up once rather than through the enum per try.
OUTCOME_NAMES: Mapping[int, str] = {
    value: pb.AttemptOutcome.Name(value) for value in pb.AttemptOutcome.values()
}
ChatFor = Callable[["Try", float], ChatRequest]


@dataclass(frozen=True, slots=True)
class Step:
    """One route of a plan and how many extra tries it gets."""

    route: Route
    retries: int


@dataclass(slots=True)
class Try:
    """One try in progress: its route, when it began, and its client span."""

    route: Route
    started: float
    span: Span

    def trace_headers(self) -> tuple[tuple[str, str], ...]:
        """W3C trace context for the upstream request: this try's span is the parent."""
        return inject_headers(self.span)


@dataclass(slots=True)
class Trace:
    """The tries of one call, in order, each with a child span of the request's span."""

    attempts: list[pb.Attempt] = field(default_factory=list)

    def begin(self, route: Route) -> Try:
        """Start a try on `route` (and its span, a child of the current one)."""
        kind = route.provider.kind
        span = tracer().start_span(
            f"chat {route.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": GEN_AI_SYSTEMS.get(kind, kind),
                "gen_ai.request.model": route.model,
                "gateway.provider": route.provider.name,
                "gateway.attempt": len(self.attempts) + 1,
            },
        )
        return Try(route, time.perf_counter(), span)

    def end(
        self,
        attempt: Try,
        outcome: Outcome,
        error: BaseException | None = None,
        *,
        model: str = "",
        usage: Usage | None = None,
        finish_reason: str = "",
    ) -> None:
        """Finish a try: add it to `attempts`, close its span, count it."""
        route, span = attempt.route, attempt.span
        elapsed = time.perf_counter() - attempt.started
        record = pb.Attempt(provider=route.provider.name, model=route.model, outcome=outcome)
        record.latency.FromNanoseconds(int(elapsed * 1e9))
        outcome_name = OUTCOME_NAMES[outcome]
        if isinstance(error, GatewayError):
            record.error_code = error.code_name
        if span.is_recording():  # the no-op tracer's spans record nothing: skip the attributes
            _describe_try(span, outcome_name, error, model, usage, finish_reason)
        span.end()
        self.attempts.append(record)
        labeled(UPSTREAM_ATTEMPTS, route.provider.name, outcome_name).inc()
        if outcome != pb.ATTEMPT_OUTCOME_CIRCUIT_OPEN:  # a skipped try took no time upstream
            labeled(UPSTREAM_LATENCY, route.provider.name).observe(elapsed)

    def skip(self, route: Route, outcome: Outcome) -> None:
        """A try not made (its circuit was open)."""
        self.end(self.begin(route), outcome)


def _describe_try(
    span: Span,
    outcome_name: str,
    error: BaseException | None,
    model: str,
    usage: Usage | None,
    finish_reason: str,
) -> None:
    """A finished try's outcome, error, model, finish reason and usage on its span."""
    span.set_attribute("gateway.outcome", outcome_name)
    if isinstance(error, GatewayError):
        span.set_status(StatusCode.ERROR, error.code_name)
        span.set_attribute("error.type", type(error).__name__)
    if model:
        span.set_attribute("gen_ai.response.model", model)
    if finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", (finish_reason,))
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)


@dataclass(slots=True)
class OpenStream:
    """A stream whose first content event has arrived: the caller relays it, then the rest.

    `head` is what the `Meta`s before it said (the vendor's id and model, so far).
    """

    route: Route
    head: Meta
    first: StreamEvent
    events: AsyncGenerator[StreamEvent, None]
    breaker: CircuitBreaker
    permit: Permit
    attempt: Try


class Dispatcher:
    """Runs plans: retries with backoff and budget, fallbacks, breakers, per-try timeouts."""

    def __init__(
        self,
        breakers: Callable[[str], CircuitBreaker],
        *,
        backoff: Backoff,
        budget: RetryBudget,
        per_try_timeout: float,
    ) -> None:
        self._breakers = breakers
        self._backoff = backoff
        self._budget = budget
        self._per_try_timeout = per_try_timeout

    async def complete(
        self, plan: list[Step], chat_for: ChatFor, deadline: float, trace: Trace
    ) -> tuple[Route, Completion]:
        """The first whole answer the plan gets, or the error that ended it."""

        async def attempt(current: Try, try_deadline: float) -> Completion:
            async with asyncio.timeout_at(try_deadline):
                return await current.route.provider.complete(chat_for(current, try_deadline))

        current, answer, permit = await self._run(plan, attempt, deadline, trace)
        self._breakers(current.route.provider.name).succeeded(permit)
        trace.end(
            current,
            pb.ATTEMPT_OUTCOME_SUCCESS,
            model=answer.model,
            usage=answer.usage,
            finish_reason=answer.finish_reason,
        )
        return current.route, answer

    async def open_stream(
        self, plan: list[Step], chat_for: ChatFor, deadline: float, trace: Trace
    ) -> OpenStream:
        """A stream that has produced its first content event; tries before it may be retried.

        `Meta`s before that event are gathered into the stream's head: a stream that said who
        it is and then failed is retried like one that said nothing.
        """

        async def attempt(current: Try, try_deadline: float) -> OpenStream:
            route = current.route
            events = route.provider.stream(chat_for(current, deadline))
            head = _NO_META
            try:
                async with asyncio.timeout_at(try_deadline):
                    first = await anext(events)
                    while isinstance(first, Meta):
                        head = first if head is _NO_META else _merged(head, first)
                        first = await anext(events)
            except BaseException:
                await events.aclose()
                raise
            breaker = self._breakers(route.provider.name)
            return OpenStream(route, head, first, events, breaker, Permit(False), current)

        # The stream's try ends with the stream (the caller records it): it may still break.
        _, opened, permit = await self._run(plan, attempt, deadline, trace)
        opened.permit = permit
        return opened

    async def _run(
        self,
        plan: list[Step],
        attempt: Callable[[Try, float], Awaitable[T]],
        deadline: float,
        trace: Trace,
    ) -> tuple[Try, T, Permit]:
        self._budget.record_request()
        last: GatewayError | None = None
        for index, step in enumerate(plan):
            if index:
                labeled(FALLBACKS, step.route.provider.name).inc()
                get_current_span().add_event(
                    "fallback", {"provider": step.route.provider.name, "model": step.route.model}
                )
            for retry in range(step.retries + 1):
                breaker = self._breakers(step.route.provider.name)
                try:
                    permit = breaker.admit()
                except CircuitOpenError as exc:
                    trace.skip(step.route, pb.ATTEMPT_OUTCOME_CIRCUIT_OPEN)
                    last = ServiceUnavailableError(
                        f"provider {exc.deployment!r} is failing; its circuit is open",
                        retry_after=exc.retry_after,
                    )
                    break
                current = trace.begin(step.route)
                bound = cut(_now() + self._per_try_timeout, deadline)
                try:
                    result = await attempt(current, bound.at)
                except BaseException as exc:
                    last = self._failed(current, breaker, permit, exc, bound, trace)
                else:
                    return current, result, permit
                if not _falls_back(last):
                    raise last
                if retry == step.retries or not await self._wait_to_retry(last, retry, deadline):
                    break
        assert last is not None, "a plan has at least one step"
        raise last

    def _failed(
        self,
        current: Try,
        breaker: CircuitBreaker,
        permit: Permit,
        exc: BaseException,
        bound: Cut,
        trace: Trace,
    ) -> GatewayError:
        """Account a failed try cut at `bound`; return the error it stands for.

        A cancellation is re-raised; so is the caller's deadline, as `DeadlineExceededError`.
        """
        route = current.route
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            breaker.released(permit)
            trace.end(current, pb.ATTEMPT_OUTCOME_CANCELLED)
            raise exc
        name = route.provider.name
        if isinstance(exc, TimeoutError | UpstreamTimeoutError):
            # Every timeout of a try is one of its bounds running out (the adapter's own time
            # limit is the same bound); a vendor's 504 is an `UpstreamUnavailableError`.
            if bound.is_callers(_now()):
                breaker.released(permit)  # the caller's deadline, not the provider's health
                error: GatewayError = DeadlineExceededError(
                    f"deadline exceeded while waiting for provider {name!r}"
                )
                trace.end(current, pb.ATTEMPT_OUTCOME_TIMEOUT, error)
                raise error from exc
            error = UpstreamTimeoutError(f"provider {name!r} timed out", provider=name)
            breaker.failed(permit, error)
            trace.end(current, pb.ATTEMPT_OUTCOME_TIMEOUT, error)
            return error
        if not isinstance(exc, GatewayError):
            log.exception("provider %r raised an unexpected error", name)
            exc = UpstreamUnavailableError(f"provider {name!r} failed unexpectedly", provider=name)
        if isinstance(exc, UpstreamRateLimitedError):
            breaker.released(permit)
            trace.end(current, pb.ATTEMPT_OUTCOME_RATE_LIMITED, exc)
        elif isinstance(exc, UpstreamUnavailableError | UpstreamAuthError):
            breaker.failed(permit, exc)
            trace.end(current, pb.ATTEMPT_OUTCOME_ERROR, exc)
        else:
            breaker.released(permit)
            trace.end(current, pb.ATTEMPT_OUTCOME_ERROR, exc)
        log.warning(
            "provider call failed",
            extra={"provider": name, "error": type(exc).__name__, "code": exc.code_name},
        )
        return exc

    async def _wait_to_retry(self, error: GatewayError, retry: int, deadline: float) -> bool:
        """Sleep before retrying the same route; False when it should not be retried."""
        if isinstance(error, UpstreamAuthError | ServiceUnavailableError):
            return False
        if isinstance(error, UpstreamRateLimitedError):
            if error.retry_after is None:
                return False
            delay = error.retry_after
        else:
            delay = self._backoff.delay(retry)
        if _now() + delay >= deadline or not self._budget.try_spend():
            return False
        labeled(RETRIES, type(error).__name__).inc()
        get_current_span().add_event(
            "retry", {"after_error": error.code_name, "delay_seconds": round(delay, 3)}
        )
        await asyncio.sleep(delay)
        return True


_NO_META = Meta()


def _merged(head: Meta, later: Meta) -> Meta:
    """What two `Meta`s say together: the later one's values where it has them."""
    return Meta(later.id or head.id, later.model or head.model)


def _falls_back(error: GatewayError) -> bool:
    """Whether another try (here or on the next route) may answer where this one failed."""
    return isinstance(
        error,
        UpstreamUnavailableError
        | UpstreamAuthError
        | UpstreamRateLimitedError
        | ServiceUnavailableError,
    )


def _now() -> float:
    return asyncio.get_running_loop().time()
