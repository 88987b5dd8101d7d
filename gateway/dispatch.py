"""The retry/fallback loop: tries a plan of routes through their circuit breakers.

A plan is the primary route with `primary_retries`, then each fallback with `fallback_retries`.
Each try is bounded by the per-try timeout (time to the whole answer, or to a stream's first
chunk) and by the caller's deadline. What a failure leads to:

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
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

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
from metrics import FALLBACKS, RETRIES, UPSTREAM_ATTEMPTS
from providers.base import ChatChunk, ChatRequest, ChatResponse
from providers.registry import Route
from resilience.breaker import CircuitBreaker, CircuitOpenError, Permit
from resilience.retry import Backoff, RetryBudget

log = logging.getLogger("gateway.dispatch")

T = TypeVar("T")
Outcome: TypeAlias = "pb.AttemptOutcome.ValueType"
ChatFor = Callable[[Route, float], ChatRequest]


@dataclass(frozen=True, slots=True)
class Step:
    """One route of a plan and how many extra tries it gets."""

    route: Route
    retries: int


@dataclass(slots=True)
class Trace:
    """The tries of one call, in order."""

    attempts: list[pb.Attempt] = field(default_factory=list)

    def record(
        self, route: Route, outcome: Outcome, started: float, error: BaseException | None = None
    ) -> None:
        """Add a try that took from `started` (perf_counter) until now."""
        attempt = pb.Attempt(provider=route.provider.name, model=route.model, outcome=outcome)
        attempt.latency.FromNanoseconds(int((time.perf_counter() - started) * 1e9))
        if isinstance(error, GatewayError):
            attempt.error_code = error.code_name
        self.attempts.append(attempt)
        UPSTREAM_ATTEMPTS.labels(route.provider.name, pb.AttemptOutcome.Name(outcome)).inc()


@dataclass(slots=True)
class OpenStream:
    """A stream whose first chunk has arrived: the caller relays it, then the rest."""

    route: Route
    first: ChatChunk
    chunks: AsyncGenerator[ChatChunk, None]
    breaker: CircuitBreaker
    permit: Permit
    started: float


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
    ) -> tuple[Route, ChatResponse]:
        """The first whole answer the plan gets, or the error that ended it."""

        async def attempt(route: Route, try_deadline: float) -> ChatResponse:
            async with asyncio.timeout_at(try_deadline):
                return await route.provider.complete(chat_for(route, try_deadline))

        route, answer, permit = await self._run(plan, attempt, deadline, trace, record_success=True)
        self._breakers(route.provider.name).succeeded(permit)
        return route, answer

    async def open_stream(
        self, plan: list[Step], chat_for: ChatFor, deadline: float, trace: Trace
    ) -> OpenStream:
        """A stream that has produced its first chunk; tries before that may be retried."""

        async def attempt(route: Route, try_deadline: float) -> OpenStream:
            started = time.perf_counter()
            chunks = route.provider.stream(chat_for(route, deadline))
            try:
                async with asyncio.timeout_at(try_deadline):
                    first = await anext(chunks)
            except BaseException:
                await chunks.aclose()
                raise
            breaker = self._breakers(route.provider.name)
            return OpenStream(route, first, chunks, breaker, Permit(False), started)

        # The stream's try is recorded when it ends: it may still break after this chunk.
        _, opened, permit = await self._run(plan, attempt, deadline, trace, record_success=False)
        opened.permit = permit
        return opened

    async def _run(
        self,
        plan: list[Step],
        attempt: Callable[[Route, float], Awaitable[T]],
        deadline: float,
        trace: Trace,
        *,
        record_success: bool,
    ) -> tuple[Route, T, Permit]:
        self._budget.record_request()
        last: GatewayError | None = None
        for index, step in enumerate(plan):
            if index:
                FALLBACKS.labels(step.route.provider.name).inc()
            for retry in range(step.retries + 1):
                breaker = self._breakers(step.route.provider.name)
                try:
                    permit = breaker.admit()
                except CircuitOpenError as exc:
                    trace.record(step.route, pb.ATTEMPT_OUTCOME_CIRCUIT_OPEN, time.perf_counter())
                    last = ServiceUnavailableError(
                        f"provider {exc.deployment!r} is failing; its circuit is open",
                        retry_after=exc.retry_after,
                    )
                    break
                started = time.perf_counter()
                try_deadline = min(deadline, _now() + self._per_try_timeout)
                try:
                    result = await attempt(step.route, try_deadline)
                except BaseException as exc:
                    last = self._failed(step.route, breaker, permit, exc, started, deadline, trace)
                else:
                    if record_success:
                        trace.record(step.route, pb.ATTEMPT_OUTCOME_SUCCESS, started)
                    return step.route, result, permit
                if not _falls_back(last):
                    raise last
                if retry == step.retries or not await self._wait_to_retry(last, retry, deadline):
                    break
        assert last is not None, "a plan has at least one step"
        raise last

    def _failed(
        self,
        route: Route,
        breaker: CircuitBreaker,
        permit: Permit,
        exc: BaseException,
        started: float,
        deadline: float,
        trace: Trace,
    ) -> GatewayError:
        """Account a failed try; return the error it stands for (re-raise a cancellation)."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            breaker.released(permit)
            trace.record(route, pb.ATTEMPT_OUTCOME_CANCELLED, started)
            raise exc
        name = route.provider.name
        if isinstance(exc, TimeoutError | UpstreamTimeoutError):
            if _now() >= deadline:
                breaker.released(permit)  # the caller's deadline, not the provider's health
                error: GatewayError = DeadlineExceededError(
                    f"deadline exceeded while waiting for provider {name!r}"
                )
                trace.record(route, pb.ATTEMPT_OUTCOME_TIMEOUT, started, error)
                raise error from exc
            error = UpstreamTimeoutError(f"provider {name!r} timed out", provider=name)
            breaker.failed(permit, error)
            trace.record(route, pb.ATTEMPT_OUTCOME_TIMEOUT, started, error)
            return error
        if not isinstance(exc, GatewayError):
            log.exception("provider %r raised an unexpected error", name)
            exc = UpstreamUnavailableError(f"provider {name!r} failed unexpectedly", provider=name)
        if isinstance(exc, UpstreamRateLimitedError):
            breaker.released(permit)
            trace.record(route, pb.ATTEMPT_OUTCOME_RATE_LIMITED, started, exc)
        elif isinstance(exc, UpstreamUnavailableError | UpstreamAuthError):
            breaker.failed(permit, exc)
            trace.record(route, pb.ATTEMPT_OUTCOME_ERROR, started, exc)
        else:
            breaker.released(permit)
            trace.record(route, pb.ATTEMPT_OUTCOME_ERROR, started, exc)
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
        RETRIES.labels(type(error).__name__).inc()
        await asyncio.sleep(delay)
        return True


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
