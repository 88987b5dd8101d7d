"""The retry/fallback loop: tries a plan of routes through their circuit breakers.

A plan is the primary route with `primary_retries`, then each fallback with `fallback_retries`.
Each try is bounded by the per-try timeout (time to the whole answer, or to a stream's first
content event) and by the caller's deadline; which of the two cuts it is settled when the try begins
(`resilience.deadlines`), so a try cut by the caller's deadline is never the provider's failure,
even when its timer goes off a hair early. What a failed try leads to (its breaker, its attempt,
another try here or on the next route, the caller's error) is the outcome table's to say
(`gateway.pipeline.outcomes`).

Every try, skipped ones included, is recorded as an `Attempt` for the response: a route whose
circuit is open, and a fallback route that cannot serve what the request uses (its `Step` says
why), are not called.

A step of a model group (`Step.member`) first takes a place in the member's capacity
(`CapacityGate`): a member at capacity is skipped (attempt RATE_LIMITED, not called) and the
plan moves on. The try's end gives the member back its place and tells the routing state how
long the answer took (time to first token for a stream). Only when every step was refused for
capacity does the call fail, with RESOURCE_EXHAUSTED and the soonest time one has room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, NoReturn, TypeVar

from opentelemetry.trace import Span, SpanKind, StatusCode, get_current_span

from gateway.errors import DeadlineExceededError, RateLimitedError
from gateway.pipeline.outcomes import Judged, Retry, judge
from gateway.pipeline.routing.capacity import Admission, CapacityGate
from gateway.pipeline.routing.features import RequestFeatures
from gateway.pipeline.routing.groups import Member
from gateway.pipeline.types import Attempt, AttemptOutcome
from metrics import FALLBACKS, RETRIES, UPSTREAM_ATTEMPTS, UPSTREAM_LATENCY, labeled
from metrics.tracing import GEN_AI_SYSTEMS, inject_headers, tracer
from providers.embed_types import Embedder, Embeddings, EmbedRequest
from providers.errors import UpstreamError, UpstreamTimeoutError, UpstreamUnavailableError
from providers.registry import Route
from providers.types import ChatRequest, Completion, Meta, StreamEvent, ToolCall, Usage
from resilience.breaker import CircuitBreaker, CircuitOpenError, Permit
from resilience.deadlines import Cut, cut
from resilience.retry import Backoff, RetryBudget

log = logging.getLogger("gateway.dispatch")

T = TypeVar("T")
#: The `outcome` label of the attempt metrics (and the span attribute): the API's enum names.
OUTCOME_LABELS: Final[Mapping[AttemptOutcome, str]] = {
    outcome: f"ATTEMPT_OUTCOME_{outcome.name}" for outcome in AttemptOutcome
}
ChatFor = Callable[["Try", float], ChatRequest]
EmbedFor = Callable[["Try", float], EmbedRequest]


@dataclass(frozen=True, slots=True)
class Step:
    """One route of a plan and how many extra tries it gets."""

    route: Route
    retries: int
    #: Why the route cannot serve the request (it is skipped); None when it can.
    unsupported: str | None = None
    #: The group member the route is (its capacity is taken before a try) and its group;
    #: None and "" outside groups.
    member: Member | None = None
    group: str = ""
    #: What routing reads of the request (for the member's capacity); with `member`.
    features: RequestFeatures | None = None
    #: Why the route is in the plan (the routing decision in one line; "" outside routing).
    routed: str = ""
    #: The complexity tier that put the route in the plan ("" when none did).
    tier: str = ""
    #: Whether the step belongs to a fallback model (counted as a fallback when it is tried).
    fallback: bool = False


@dataclass(slots=True)
class Try:
    """One try in progress: its route, when it began, and its client span."""

    route: Route
    started: float
    span: Span
    #: Why the route was tried (`Step.routed`, `Step.tier`).
    routed: str = ""
    tier: str = ""
    #: Seconds to a stream's first content event, once it came.
    ttft: float | None = None
    #: Called when the try ends, with whether it succeeded and its usage (a member's capacity).
    on_end: Callable[[Try, bool, Usage | None], None] | None = None

    def trace_headers(self) -> tuple[tuple[str, str], ...]:
        """W3C trace context for the upstream request: this try's span is the parent."""
        return inject_headers(self.span)


@dataclass(slots=True)
class Trace:
    """The tries of one call, in order, each with a child span of the request's span."""

    attempts: list[Attempt] = field(default_factory=list)
    #: The GenAI operation the tries make: "chat" or "embeddings".
    operation: str = "chat"

    def begin(self, route: Route, routed: str = "", tier: str = "") -> Try:
        """Start a try on `route` (and its span, a child of the current one)."""
        kind = route.provider.kind
        span = tracer().start_span(
            f"{self.operation} {route.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": self.operation,
                "gen_ai.system": GEN_AI_SYSTEMS.get(kind, kind),
                "gen_ai.request.model": route.model,
                "gateway.provider": route.provider.name,
                "gateway.attempt": len(self.attempts) + 1,
            },
        )
        return Try(route, time.perf_counter(), span, routed, tier)

    def end(
        self,
        attempt: Try,
        outcome: AttemptOutcome,
        failure: Judged | None = None,
        *,
        model: str = "",
        usage: Usage | None = None,
        finish_reason: str = "",
        tool_calls: tuple[ToolCall, ...] = (),
        called: bool = True,
    ) -> None:
        """Finish a try: add it to `attempts`, close its span, count it."""
        route, span = attempt.route, attempt.span
        elapsed = time.perf_counter() - attempt.started
        error = failure.error if failure is not None else None
        code = error.code_name if error is not None else ""
        self.attempts.append(
            Attempt(
                route.provider.name,
                route.model,
                outcome,
                elapsed,
                code,
                attempt.routed,
                attempt.tier,
            )
        )
        if attempt.on_end is not None:
            attempt.on_end(attempt, outcome is AttemptOutcome.SUCCESS, usage)
        label = OUTCOME_LABELS[outcome]
        if span.is_recording():  # the no-op tracer's spans record nothing: skip the attributes
            cause = failure.cause if error is not None and failure is not None else None
            _describe_try(span, label, cause, code, model, usage, finish_reason)
            if tool_calls:
                _describe_tool_calls(span, tool_calls)
        span.end()
        labeled(UPSTREAM_ATTEMPTS, route.provider.name, label).inc()
        if called and outcome not in _NOT_CALLED:  # a skipped try took no time upstream
            labeled(UPSTREAM_LATENCY, route.provider.name).observe(elapsed)

    def skip(self, step: Step, outcome: AttemptOutcome = AttemptOutcome.CIRCUIT_OPEN) -> None:
        """A try not made: circuit open, the route cannot serve the request, or it is full."""
        self.end(self.begin(step.route, step.routed, step.tier), outcome, called=False)


#: Outcomes of tries that were never sent.
_NOT_CALLED: Final = frozenset({AttemptOutcome.CIRCUIT_OPEN, AttemptOutcome.UNSUPPORTED})


def _describe_try(
    span: Span,
    outcome_label: str,
    cause: BaseException | None,
    code: str,
    model: str,
    usage: Usage | None,
    finish_reason: str,
) -> None:
    """A finished try's outcome, error, model, finish reason and usage on its span."""
    span.set_attribute("gateway.outcome", outcome_label)
    if cause is not None:
        span.set_status(StatusCode.ERROR, code)
        span.set_attribute("error.type", type(cause).__name__)
    if model:
        span.set_attribute("gen_ai.response.model", model)
    if finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", (finish_reason,))
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if usage.reasoning_tokens:
            span.set_attribute("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens)


def _describe_tool_calls(span: Span, calls: tuple[ToolCall, ...]) -> None:
    """How many tools the answer called, and which (names only: arguments are content)."""
    span.set_attribute("gateway.tool_calls.count", len(calls))
    span.set_attribute("gateway.tool_calls.names", tuple(call.name for call in calls))


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
        gate: CapacityGate | None = None,
    ) -> None:
        self._breakers = breakers
        self._gate = gate
        #: Token settlements under way (kept so they are not collected before they ran).
        self._settling: set[asyncio.Task[None]] = set()
        self._backoff = backoff
        self._budget = budget
        self._per_try_timeout = per_try_timeout

    async def complete(
        self, plan: Sequence[Step], chat_for: ChatFor, deadline: float, trace: Trace
    ) -> tuple[Route, Completion]:
        """The first whole answer the plan gets, or the error that ended it."""

        async def attempt(current: Try, try_deadline: float) -> Completion:
            async with asyncio.timeout_at(try_deadline):
                return await current.route.provider.complete(chat_for(current, try_deadline))

        current, answer, permit = await self._run(plan, attempt, deadline, trace)
        self._breakers(current.route.provider.name).succeeded(permit)
        trace.end(
            current,
            AttemptOutcome.SUCCESS,
            model=answer.model,
            usage=answer.usage,
            finish_reason=answer.finish_reason,
            tool_calls=answer.tool_calls,
        )
        return current.route, answer

    async def embed(
        self,
        plan: Sequence[Step],
        embedder_of: Callable[[Route], Embedder],
        embed_for: EmbedFor,
        deadline: float,
        trace: Trace,
    ) -> tuple[Route, Embeddings]:
        """The first embeddings the plan gets, or the error that ended it (as `complete`)."""

        async def attempt(current: Try, try_deadline: float) -> Embeddings:
            embedder = embedder_of(current.route)
            async with asyncio.timeout_at(try_deadline):
                return await embedder.embed(embed_for(current, try_deadline))

        current, answer, permit = await self._run(plan, attempt, deadline, trace)
        self._breakers(current.route.provider.name).succeeded(permit)
        trace.end(current, AttemptOutcome.SUCCESS, model=answer.model, usage=answer.usage)
        return current.route, answer

    async def open_stream(
        self, plan: Sequence[Step], chat_for: ChatFor, deadline: float, trace: Trace
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
                current.ttft = time.perf_counter() - current.started
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
        plan: Sequence[Step],
        attempt: Callable[[Try, float], Awaitable[T]],
        deadline: float,
        trace: Trace,
    ) -> tuple[Try, T, Permit]:
        self._budget.record_request()
        last: Judged | None = None
        full: list[float] = []  # the retry times of the members refused for capacity
        tried = False
        #: Each group member that failed in this call: its last failure, and the number of
        #: its next retry (0 for the first), as `_wait_to_retry` counts them.
        failed: dict[str, tuple[Judged, int]] = {}
        for index, step in enumerate(plan):
            if step.unsupported is not None:
                trace.skip(step, AttemptOutcome.UNSUPPORTED)
                continue
            member = step.member
            if failed and member is not None:
                # A member coming round again is a retry of it: its backoff, budget and rules.
                again = failed.get(member.key)
                if again is not None and not await self._wait_to_retry(*again, deadline):
                    continue
            if step.fallback or (index and member is None):
                labeled(FALLBACKS, step.route.provider.name).inc()
                get_current_span().add_event(
                    "fallback", {"provider": step.route.provider.name, "model": step.route.model}
                )
            for retry in range(step.retries + 1):
                breaker = self._breakers(step.route.provider.name)
                try:
                    permit = breaker.admit()
                except CircuitOpenError as exc:
                    trace.skip(step)
                    last = judge(exc)
                    break
                admitted = None
                features = step.features
                if self._gate is not None and member is not None and features is not None:
                    admitted = await self._gate.acquire(member, features)
                if admitted is not None and not admitted.allowed:
                    breaker.released(permit)
                    trace.skip(step, AttemptOutcome.RATE_LIMITED)
                    full.append(admitted.retry_after)
                    break
                tried = True
                current = trace.begin(step.route, step.routed, step.tier)
                if admitted is not None and member is not None:
                    current.on_end = self._capacity_returned(member, admitted)
                bound = cut(_now() + self._per_try_timeout, deadline)
                try:
                    result = await attempt(current, bound.at)
                except BaseException as exc:
                    last = self._failed(current, breaker, permit, exc, bound, trace)
                    if member is not None:
                        earlier = failed.get(member.key)
                        failed[member.key] = (last, earlier[1] + 1 if earlier else 0)
                else:
                    return current, result, permit
                if not last.rule.fall_back:
                    _raise(last)
                if retry == step.retries or not await self._wait_to_retry(last, retry, deadline):
                    break
        if full and not tried:
            raise RateLimitedError(
                "every deployment that could serve the call is at capacity; retry later",
                retry_after=min(full),
            )
        assert last is not None, "a plan has at least one step"
        _raise(last)

    def _capacity_returned(
        self, member: Member, admission: Admission
    ) -> Callable[[Try, bool, Usage | None], None]:
        """What ends a member's try: its place back, its latency and tokens to the routing."""
        gate = self._gate
        assert gate is not None

        def ended(current: Try, succeeded: bool, usage: Usage | None) -> None:
            stream = current.ttft is not None
            latency = None
            if succeeded:
                latency = current.ttft if stream else time.perf_counter() - current.started
            gate.release(member, latency=latency, stream=stream)
            if succeeded and usage is not None and admission.tokens:
                used = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
                task = asyncio.get_running_loop().create_task(gate.settle(member, admission, used))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)

        return ended

    def _failed(
        self,
        current: Try,
        breaker: CircuitBreaker,
        permit: Permit,
        exc: BaseException,
        bound: Cut,
        trace: Trace,
    ) -> Judged:
        """Judge a failed try cut at `bound`, settle its breaker and record it."""
        name = current.route.provider.name
        if isinstance(exc, TimeoutError | UpstreamTimeoutError):
            # Every timeout of a try is one of its bounds running out (the adapter's own time
            # limit is the same bound); a vendor's 504 is an `UpstreamUnavailableError`.
            if bound.is_callers(_now()):
                exc = DeadlineExceededError(
                    f"deadline exceeded while waiting for provider {name!r}"
                )
            else:
                exc = UpstreamTimeoutError(f"provider {name!r} timed out", provider=name)
        elif not isinstance(exc, UpstreamError | asyncio.CancelledError | GeneratorExit):
            log.exception("provider %r raised an unexpected error", name)
            exc = UpstreamUnavailableError(f"provider {name!r} failed unexpectedly", provider=name)
        judged = judge(exc)
        judged.settle(breaker, permit)
        trace.end(current, judged.rule.outcome, judged)
        if isinstance(exc, UpstreamError) and not isinstance(exc, UpstreamTimeoutError):
            log.warning(
                "provider call failed",
                extra={
                    "provider": name,
                    "error": type(exc).__name__,
                    "code": judged.rule.code.name,
                },
            )
        return judged

    async def _wait_to_retry(self, failed: Judged, retry: int, deadline: float) -> bool:
        """Sleep before retrying the same route; False when it should not be retried."""
        how = failed.rule.retry
        if how is Retry.NO:
            return False
        if how is Retry.RETRY_AFTER:
            if failed.retry_after is None:
                return False
            delay = failed.retry_after
        else:
            delay = self._backoff.delay(retry)
        if _now() + delay >= deadline or not self._budget.try_spend():
            return False
        labeled(RETRIES, type(failed.cause).__name__).inc()
        get_current_span().add_event(
            "retry", {"after_error": failed.rule.code.name, "delay_seconds": round(delay, 3)}
        )
        await asyncio.sleep(delay)
        return True


def _raise(failed: Judged) -> NoReturn:
    """End the call with what the caller is told of `failed` (a cancellation as it is)."""
    raised = failed.raised
    if raised is failed.cause:
        raise raised
    raise raised from failed.cause


_NO_META = Meta()


def _merged(head: Meta, later: Meta) -> Meta:
    """What two `Meta`s say together: the later one's values where it has them."""
    return Meta(later.id or head.id, later.model or head.model)


def _now() -> float:
    return asyncio.get_running_loop().time()
