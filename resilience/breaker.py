"""Per-deployment circuit breakers: pybreaker's state machine, driven from asyncio.

pybreaker's `call_async` needs Tornado, so the breaker is used as a state machine: `admit()`
before a try (fails fast while open, reserves the single half-open probe), then exactly one of
`succeeded()`, `failed()` (a provider-health failure: 5xx, connection error, timeout, malformed
reply, rejected credentials) or `released()` (a neutral outcome — caller error, caller cancel,
429 — which must not touch pybreaker at all: pybreaker counts an excluded exception as a
success and would reset the failure count). pybreaker's own storage is in memory, so nothing
here blocks the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pybreaker

log = logging.getLogger("resilience.breaker")

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
#: Retry pushback while another caller's probe is deciding a half-open circuit.
PROBE_BUSY_RETRY_AFTER = 1.0

StateListener = Callable[[str, str, str], None]


class CircuitOpenError(Exception):
    """The deployment's circuit is open (or its one probe is out); retry after `retry_after`."""

    def __init__(self, deployment: str, retry_after: float) -> None:
        super().__init__(f"circuit for {deployment!r} is open; next probe in {retry_after:.1f}s")
        self.deployment = deployment
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one try; `probe` when it is the half-open circuit's single probe."""

    probe: bool


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """What ProviderStatus shows about a breaker."""

    state: str
    consecutive_failures: int
    opened_at: datetime | None
    next_probe_at: datetime | None
    last_error: str


class _ProviderHealthError(Exception):
    """Stands for the provider failure recorded through pybreaker's `calling()`."""


class _Notify(pybreaker.CircuitBreakerListener):
    def __init__(self, listener: StateListener) -> None:
        self._listener = listener

    def state_change(self, cb: pybreaker.CircuitBreaker, old: object, new: object) -> None:
        old_name = getattr(old, "name", str(old)) if old is not None else CLOSED
        self._listener(cb.name or "", old_name, getattr(new, "name", str(new)))


class CircuitBreaker:
    """One deployment's breaker: trips after `fail_max` consecutive failures, probes once."""

    def __init__(
        self,
        deployment: str,
        *,
        fail_max: int,
        reset_timeout: float,
        on_state_change: StateListener | None = None,
    ) -> None:
        self.deployment = deployment
        listeners = [_Notify(on_state_change)] if on_state_change else []
        self._cb = pybreaker.CircuitBreaker(
            fail_max=fail_max, reset_timeout=reset_timeout, name=deployment, listeners=listeners
        )
        self._probe_out = False
        self._last_error = ""

    @property
    def state(self) -> str:
        """ "closed", "open" or "half-open"."""
        return str(self._cb.current_state)

    def admit(self) -> Permit:
        """Leave for one try, or `CircuitOpenError` at once while the circuit is open."""
        state = self.state
        if state == OPEN:
            wait = self._seconds_to_probe()
            if wait > 0:
                raise CircuitOpenError(self.deployment, wait)
            self._cb.half_open()  # the reset timeout has passed: this caller probes
            state = HALF_OPEN
        if state == HALF_OPEN:
            if self._probe_out:
                raise CircuitOpenError(self.deployment, PROBE_BUSY_RETRY_AFTER)
            self._probe_out = True
            return Permit(probe=True)
        return Permit(probe=False)

    def succeeded(self, permit: Permit) -> None:
        """The try got an answer: reset the count, and close a half-open circuit."""
        self._end(permit)
        if not self._cb.fail_counter and self.state == CLOSED:
            return  # no failures to forget, nothing to close: pybreaker would change nothing
        if self._stale(permit):
            return
        try:
            with self._cb.calling():
                pass
        except pybreaker.CircuitBreakerError:
            pass  # opened meanwhile by other calls: their failures stand

    def failed(self, permit: Permit, error: BaseException) -> None:
        """The provider failed the try: count it (and trip or re-open the circuit)."""
        self._end(permit)
        self._last_error = type(error).__name__
        if self._stale(permit):
            return
        try:
            with self._cb.calling():
                raise _ProviderHealthError
        except (_ProviderHealthError, pybreaker.CircuitBreakerError):
            pass

    def released(self, permit: Permit) -> None:
        """The try ended neutrally (caller error, cancel, 429): the breaker learns nothing."""
        self._end(permit)

    def status(self) -> BreakerStatus:
        """State, failures since the last success, and when it opened and will probe."""
        opened_at = self._cb._state_storage.opened_at if self.state != CLOSED else None
        next_probe = None
        if self.state == OPEN and opened_at is not None:
            next_probe = datetime.fromtimestamp(opened_at.timestamp() + self._cb.reset_timeout, UTC)
        return BreakerStatus(
            state=self.state,
            consecutive_failures=int(self._cb.fail_counter),
            opened_at=opened_at,
            next_probe_at=next_probe,
            last_error=self._last_error,
        )

    def _end(self, permit: Permit) -> None:
        if permit.probe:
            self._probe_out = False

    def _stale(self, permit: Permit) -> bool:
        """Whether the outcome is of a try admitted before the circuit opened.

        Only the probe decides an open or half-open circuit: a long stream admitted while it was
        closed must not close it (or re-open it with a fresh timeout) when it ends much later.
        """
        state = self.state
        return state == OPEN or (state == HALF_OPEN and not permit.probe)

    def _seconds_to_probe(self) -> float:
        opened_at = self._cb._state_storage.opened_at
        if opened_at is None:
            return 0.0
        return float(opened_at.timestamp() + self._cb.reset_timeout - time.time())


def log_state_change(deployment: str, old: str, new: str) -> None:
    """Log a circuit's state change (a warning when it opens)."""
    level = logging.WARNING if new == OPEN else logging.INFO
    log.log(
        level,
        "circuit state changed",
        extra={"provider": deployment, "from_state": old, "to_state": new},
    )


class Breakers:
    """One `CircuitBreaker` per deployment, made on first use with the same settings."""

    def __init__(
        self,
        *,
        fail_max: int,
        reset_timeout: float,
        on_state_change: StateListener | None = None,
    ) -> None:
        self._fail_max = fail_max
        self._reset_timeout = reset_timeout
        self._on_state_change = on_state_change
        self._breakers: dict[str, CircuitBreaker] = {}

    def __call__(self, deployment: str) -> CircuitBreaker:
        """The breaker of `deployment`."""
        breaker = self._breakers.get(deployment)
        if breaker is None:
            breaker = self._breakers[deployment] = CircuitBreaker(
                deployment,
                fail_max=self._fail_max,
                reset_timeout=self._reset_timeout,
                on_state_change=self._on_state_change,
            )
        return breaker
