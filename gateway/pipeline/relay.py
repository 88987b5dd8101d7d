"""Relaying an opened stream to the caller, and accounting a stream that breaks mid-way.

The dispatcher has opened the stream and holds its first content event; from here each event
goes to the caller as it comes, each wait for the next bounded by the idle timeout and the call's
deadline. A `CompletionBuilder` folds the events into the answer that is accounted and cached.
A failure now ends the stream with an error (no retry, no fallback): the outcome table
(`gateway.pipeline.outcomes`) settles the deployment's breaker and the try's attempt and says
what the caller sees, as it does before the first event. A stream cut by the caller's deadline
(the watchdog's, or the upstream request's own time limit, which is the same deadline) is the
caller's outcome, DEADLINE_EXCEEDED, and never counts against the provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace

from gateway.errors import DeadlineExceededError
from gateway.pipeline.caching import CallCache
from gateway.pipeline.call import Call, PreparedCall, Served
from gateway.pipeline.dispatch import OpenStream
from gateway.pipeline.outcomes import Failure, judge
from gateway.pipeline.pricing import PriceTable, cost_of
from gateway.pipeline.types import Answer, AttemptOutcome, Done, StreamHead, StreamItem
from metrics import TIME_TO_FIRST_TOKEN, labeled
from providers.errors import StreamInterruptedError, UpstreamError
from providers.types import CompletionBuilder, Finish, Meta, TextDelta
from resilience.deadlines import spent
from resilience.watchdog import StreamWatchdog

# The relay is the core's streaming half: its lines keep the core's logger name.
log = logging.getLogger("gateway.core")


class StreamRelay:
    """Passes opened streams on to the caller, ending each with finish reason, usage and cost."""

    def __init__(self, *, idle_timeout: float, prices: PriceTable, cache: CallCache) -> None:
        self._idle_timeout = idle_timeout
        self._prices = prices
        self._cache = cache

    async def relay(
        self, call: Call, prepared: PreparedCall, opened: OpenStream
    ) -> AsyncGenerator[StreamItem, None]:
        """Pass an opened stream on: its head, its events, then `Done` with the whole answer.

        Each wait for the next event is bounded by the idle timeout and the call's deadline.
        """
        provider = opened.route.provider.name
        built = CompletionBuilder(opened.head.id, opened.head.model)
        event = opened.first
        texts = 0  # content events so far (text, tool-call and reasoning deltas)
        watchdog = StreamWatchdog(idle=self._idle_timeout, deadline=prepared.deadline)
        try:
            async with aclosing(opened.events) as events:
                yield StreamHead(built.id, built.model, provider)
                while True:
                    if type(event) is TextDelta:
                        if not texts:
                            _first_token(provider, prepared.start.clock)
                        texts += 1
                        built.events.append(event)
                        yield event
                    elif isinstance(event, Meta):
                        said = built.id, built.model
                        built.feed(event)
                        if (built.id, built.model) != said:
                            yield StreamHead(built.id, built.model, provider)
                    else:
                        built.feed(event)
                        if type(event) is Finish:
                            break
                        if not texts:  # a first token that is a tool call or reasoning
                            _first_token(provider, prepared.start.clock)
                        texts += 1
                        yield event
                    # The watchdog bounds each wait, never a yield (see resilience.watchdog).
                    with watchdog:
                        next_event = await anext(events, None)
                    if next_event is None:
                        raise StreamInterruptedError(
                            f"provider {provider!r} ended the stream without a finish reason",
                            provider=provider,
                        )
                    event = next_event
        except BaseException as exc:
            error = self._failed(prepared, opened, exc, watchdog)
            if error is exc:
                raise
            raise error from exc
        finally:
            watchdog.close()
        # Accounted and remembered before the last yield: a consumer may stop right after it
        # and never resume us.
        yield Done(self._finished(call, prepared, opened, built))

    def _finished(
        self, call: Call, prepared: PreparedCall, opened: OpenStream, built: CompletionBuilder
    ) -> Answer:
        """Account a stream that finished and remember its answer."""
        completion = built.build()
        if not completion.finish_reason:
            completion = replace(completion, finish_reason="stop")
        usage = built.usage  # None when the vendor did not report it
        opened.breaker.succeeded(opened.permit)
        prepared.trace.end(
            opened.attempt,
            AttemptOutcome.SUCCESS,
            model=completion.model,
            usage=usage,
            finish_reason=completion.finish_reason,
            tool_calls=completion.tool_calls,
        )
        cost = cost_of(self._prices, opened.route, completion.model, usage)
        call.served = Served(usage, cost)
        answer = Answer(
            completion,
            opened.route.provider.name,
            cost,
            attempts=tuple(prepared.trace.attempts),
            usage_reported=usage is not None,
        )
        self._cache.remember(call, prepared, opened.route, answer, tuple(built.events))
        return answer

    def _failed(
        self,
        prepared: PreparedCall,
        opened: OpenStream,
        exc: BaseException,
        watchdog: StreamWatchdog,
    ) -> BaseException:
        """Judge a stream that broke after its first event; return what the caller sees."""
        provider = opened.route.provider.name
        failure = None
        if not isinstance(exc, asyncio.CancelledError | GeneratorExit):
            now = asyncio.get_running_loop().time()
            expired = watchdog.expired if isinstance(exc, TimeoutError) else None
            if (expired is not None and expired.callers) or spent(prepared.deadline, now):
                # The caller's time is up: what broke the stream now (the upstream request's own
                # time limit is that same deadline) is the caller's outcome.
                exc = DeadlineExceededError(
                    f"deadline exceeded while streaming from provider {provider!r}"
                )
            elif isinstance(exc, TimeoutError):
                exc = StreamInterruptedError(
                    f"provider {provider!r} sent nothing for {self._idle_timeout:g}s mid-stream",
                    provider=provider,
                )
                failure = Failure.TIMED_OUT
            elif not isinstance(exc, UpstreamError):
                log.exception("provider %r raised an unexpected error mid-stream", provider)
                exc = StreamInterruptedError(
                    f"provider {provider!r} failed mid-stream", provider=provider
                )
        judged = judge(exc, failure)
        judged.settle(opened.breaker, opened.permit)
        prepared.trace.end(opened.attempt, judged.rule.outcome, judged)
        if isinstance(exc, UpstreamError) and failure is None:
            log.warning(
                "stream broke after it started",
                extra={
                    "provider": provider,
                    "error": type(exc).__name__,
                    "code": judged.rule.code.name,
                },
            )
        return judged.raised


def _first_token(provider: str, started: float) -> None:
    """Observe the time from the call's start (`started`, on `perf_counter`) to its first token."""
    labeled(TIME_TO_FIRST_TOKEN, provider).observe(time.perf_counter() - started)
