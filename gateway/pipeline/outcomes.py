"""What a failed try leads to: one table, for unary calls and streams alike.

Every try that fails (before a stream's first event or after it) is judged here, and nowhere
else: what it does to the deployment's circuit breaker, how its attempt is recorded, whether the
same route may be tried again or the next one, and what the caller is told. This is the one
place a provider's `UpstreamError` becomes a caller's `GatewayError` (a `ProviderError` with
the table's code, the provider's message, its retry-after).

| failure                    | breaker | attempt      | again here  | next | caller is told     |
|----------------------------|---------|--------------|-------------|------|--------------------|
| the caller cancelled       | -       | CANCELLED    | no          | no   | (cancelled)        |
| the caller's deadline came | -       | TIMEOUT      | no          | no   | DEADLINE_EXCEEDED  |
| the try's own time limit   | counts  | TIMEOUT      | backoff     | yes  | UNAVAILABLE        |
| provider 429               | -       | RATE_LIMITED | retry-after | yes  | RESOURCE_EXHAUSTED |
| our key rejected (401/403) | counts  | ERROR        | no          | yes  | INTERNAL           |
| 5xx, unreachable, garbled  | counts  | ERROR        | backoff     | yes  | UNAVAILABLE        |
| 400, content filtered      | -       | ERROR        | no          | no   | INVALID_ARGUMENT   |
| provider: unknown model    | -       | ERROR        | no          | no   | NOT_FOUND          |
| circuit open (not tried)   | -       | CIRCUIT_OPEN | no          | yes  | UNAVAILABLE        |

"again here" is the same route: after the backoff (within the retry budget and the deadline),
or after the provider's retry-after when it said one that fits the deadline. "next" is the next
route of the plan (a fallback). "-" leaves the breaker untouched (neutral).

Whose time ran out is for the caller to say (`resilience.deadlines`): the dispatcher and the
relay each know their clocks. Once a stream's first event has gone to the caller there is no
other try; the table still settles the breaker and the attempt and says what the caller is told.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gateway.errors import (
    Code,
    DeadlineExceededError,
    GatewayError,
    ProviderError,
    ServiceUnavailableError,
)
from gateway.pipeline.types import AttemptOutcome
from providers.errors import (
    ContentFilteredError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from resilience.breaker import CircuitBreaker, CircuitOpenError, Permit


class Failure(enum.Enum):
    """What kind of failure a try met: the rows of the table."""

    CANCELLED = enum.auto()
    CALLERS_DEADLINE = enum.auto()
    TIMED_OUT = enum.auto()
    RATE_LIMITED = enum.auto()
    KEY_REJECTED = enum.auto()
    UNAVAILABLE = enum.auto()
    CALLERS_FAULT = enum.auto()
    UNKNOWN_MODEL = enum.auto()
    CIRCUIT_OPEN = enum.auto()


class Retry(enum.Enum):
    """Whether the same route may be tried again."""

    NO = enum.auto()
    #: After the backoff, within the retry budget and the deadline.
    BACKOFF = enum.auto()
    #: After the provider's retry-after, if it said one that fits the deadline.
    RETRY_AFTER = enum.auto()


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table."""

    #: Whether the try counts as the deployment's failure (else the breaker learns nothing).
    counts: bool
    outcome: AttemptOutcome
    retry: Retry
    fall_back: bool
    code: Code


_ERROR, _TIMEOUT = AttemptOutcome.ERROR, AttemptOutcome.TIMEOUT
RULES: Final[Mapping[Failure, Rule]] = {
    Failure.CANCELLED: Rule(False, AttemptOutcome.CANCELLED, Retry.NO, False, Code.CANCELLED),
    Failure.CALLERS_DEADLINE: Rule(False, _TIMEOUT, Retry.NO, False, Code.DEADLINE_EXCEEDED),
    Failure.TIMED_OUT: Rule(True, _TIMEOUT, Retry.BACKOFF, True, Code.UNAVAILABLE),
    Failure.RATE_LIMITED: Rule(
        False, AttemptOutcome.RATE_LIMITED, Retry.RETRY_AFTER, True, Code.RESOURCE_EXHAUSTED
    ),
    Failure.KEY_REJECTED: Rule(True, _ERROR, Retry.NO, True, Code.INTERNAL),
    Failure.UNAVAILABLE: Rule(True, _ERROR, Retry.BACKOFF, True, Code.UNAVAILABLE),
    Failure.CALLERS_FAULT: Rule(False, _ERROR, Retry.NO, False, Code.INVALID_ARGUMENT),
    Failure.UNKNOWN_MODEL: Rule(False, _ERROR, Retry.NO, False, Code.NOT_FOUND),
    Failure.CIRCUIT_OPEN: Rule(
        False, AttemptOutcome.CIRCUIT_OPEN, Retry.NO, True, Code.UNAVAILABLE
    ),
}

#: The kind of each upstream error (the most specific class that is listed wins).
_BY_CLASS: Final[tuple[tuple[type[UpstreamError], Failure], ...]] = (
    (UpstreamRateLimitedError, Failure.RATE_LIMITED),
    (UpstreamAuthError, Failure.KEY_REJECTED),
    (UpstreamTimeoutError, Failure.TIMED_OUT),
    (UpstreamUnavailableError, Failure.UNAVAILABLE),
    (UpstreamBadRequestError, Failure.CALLERS_FAULT),
    (ContentFilteredError, Failure.CALLERS_FAULT),
    (UpstreamNotFoundError, Failure.UNKNOWN_MODEL),
)


@dataclass(frozen=True, slots=True)
class Judged:
    """A failed try, judged by the table."""

    failure: Failure
    rule: Rule
    #: What went wrong, as the provider, the clock or the caller said it.
    cause: BaseException
    #: What the caller is told if this try has the last word (None: a cancellation, re-raised).
    error: GatewayError | None

    @property
    def raised(self) -> BaseException:
        """What to raise when this try ends the call: the caller's error, or the cancellation."""
        return self.error if self.error is not None else self.cause

    @property
    def retry_after(self) -> float | None:
        """Seconds the provider asked us to wait (429s), when it said."""
        return self.cause.retry_after if isinstance(self.cause, UpstreamError) else None

    def settle(self, breaker: CircuitBreaker, permit: Permit) -> None:
        """Tell the deployment's breaker how the try it admitted ended."""
        if self.rule.counts:
            breaker.failed(permit, self.cause)
        else:
            breaker.released(permit)


def judge(cause: BaseException, failure: Failure | None = None) -> Judged:
    """`cause` judged as `failure`, or by what it is when not given.

    A cancellation, an `UpstreamError`, a `CircuitOpenError` or a `DeadlineExceededError` (the
    caller's deadline, as its message says) each know their kind; anything else needs `failure`.
    """
    if failure is None:
        failure = _kind_of(cause)
    rule = RULES[failure]
    return Judged(failure, rule, cause, _caller_error(cause, rule))


def _kind_of(cause: BaseException) -> Failure:
    if isinstance(cause, asyncio.CancelledError | GeneratorExit):
        return Failure.CANCELLED
    if isinstance(cause, DeadlineExceededError):
        return Failure.CALLERS_DEADLINE
    if isinstance(cause, CircuitOpenError):
        return Failure.CIRCUIT_OPEN
    for kind, failure in _BY_CLASS:
        if isinstance(cause, kind):
            return failure
    raise TypeError(f"no row of the outcome table for {type(cause).__name__}")


def _caller_error(cause: BaseException, rule: Rule) -> GatewayError | None:
    """The one place an upstream failure becomes what the caller is told."""
    if isinstance(cause, UpstreamError):
        return ProviderError(
            cause.message, code=rule.code, provider=cause.provider, retry_after=cause.retry_after
        )
    if isinstance(cause, CircuitOpenError):
        return ServiceUnavailableError(
            f"provider {cause.deployment!r} is failing; its circuit is open",
            retry_after=cause.retry_after,
        )
    if isinstance(cause, GatewayError):
        return cause
    return None
