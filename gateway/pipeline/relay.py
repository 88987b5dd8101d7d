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

from gateway.errors import DeadlineExceededError
from gateway.pipeline.caching import CallCache
from gateway.pipeline.call import Call
from gateway.pipeline.dispatch import OpenStream
from gateway.pipeline.outcomes import Failure, judge
from gateway.pipeline.pricing import PriceTable
from gateway.pipeline.types import AttemptOutcome
from gateway.transports.proto_convert import answer_cost, attempt_messages, usage_message
from gateway.v1 import gateway_pb2 as pb
from metrics import TIME_TO_FIRST_TOKEN, labeled
from providers.errors import StreamInterruptedError, UpstreamError
from providers.types import CompletionBuilder, Finish, TextDelta
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
        self, call: Call, opened: OpenStream
    ) -> AsyncGenerator[pb.StreamCompleteResponse, None]:
        """Pass an opened stream on; each wait for the next event is bounded by the idle timeout."""
        provider = opened.route.provider.name
        built = CompletionBuilder(opened.head.id, opened.head.model)
        event = opened.first
        texts = 0
        watchdog = StreamWatchdog(idle=self._idle_timeout, deadline=call.deadline)
        try:
            async with aclosing(opened.events) as events:
                while True:
                    if type(event) is TextDelta:
                        if not texts:
                            labeled(TIME_TO_FIRST_TOKEN, provider).observe(
                                time.perf_counter() - call.started
                            )
                        texts += 1
                        built.events.append(event)
                        yield pb.StreamCompleteResponse(
                            id=built.id, model=built.model, provider=provider, delta=event.text
                        )
                    else:
                        built.feed(event)
                        if type(event) is Finish:
                            break
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
            error = self._failed(call, opened, exc, watchdog)
            if error is exc:
                raise
            raise error from exc
        finally:
            watchdog.close()
        # Accounted and remembered before the last yield: a consumer may stop right after it
        # and never resume us.
        yield self._finished(call, opened, built)

    def _finished(
        self, call: Call, opened: OpenStream, built: CompletionBuilder
    ) -> pb.StreamCompleteResponse:
        """Account a stream that finished and remember its answer; return its last message."""
        answer = built.build()
        usage = built.usage  # None when the vendor did not report it
        finish_reason = answer.finish_reason or "stop"
        opened.breaker.succeeded(opened.permit)
        call.trace.end(
            opened.attempt,
            AttemptOutcome.SUCCESS,
            model=answer.model,
            usage=usage,
            finish_reason=finish_reason,
        )
        call.usage = usage
        final = pb.StreamCompleteResponse(
            id=answer.id,
            model=answer.model,
            provider=opened.route.provider.name,
            finish_reason=finish_reason,
            usage=usage_message(usage),
            cost_usd=answer_cost(self._prices, opened.route, answer.model, usage),
            attempts=attempt_messages(call.trace.attempts),
        )
        call.cost_usd = final.cost_usd
        deltas = tuple(e.text for e in built.events if isinstance(e, TextDelta))
        self._cache.remember(
            call,
            answer.id,
            answer.model,
            answer.content,
            final.finish_reason,
            usage,
            final.cost_usd,
            deltas,
        )
        return final

    def _failed(
        self, call: Call, opened: OpenStream, exc: BaseException, watchdog: StreamWatchdog
    ) -> BaseException:
        """Judge a stream that broke after its first event; return what the caller sees."""
        provider = opened.route.provider.name
        failure = None
        if not isinstance(exc, asyncio.CancelledError | GeneratorExit):
            now = asyncio.get_running_loop().time()
            expired = watchdog.expired if isinstance(exc, TimeoutError) else None
            if (expired is not None and expired.callers) or spent(call.deadline, now):
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
        call.trace.end(opened.attempt, judged.rule.outcome, judged)
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
