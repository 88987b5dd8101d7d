"""`CircuitBreaker` and `Breakers`: tripping, the one half-open probe, neutral outcomes, status."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

import pytest

from providers.errors import UpstreamUnavailableError
from resilience.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    PROBE_BUSY_RETRY_AFTER,
    Breakers,
    CircuitBreaker,
    CircuitOpenError,
    Permit,
)

FAIL_MAX = 5
#: Short enough to wait out in a test; `WAIT_OUT` sleeps a little longer than it.
SHORT_RESET = 0.05
WAIT_OUT = SHORT_RESET + 0.02
FAKE_SECRET = "sk-live-0123456789abcdef"


class Transitions:
    """A state listener that remembers every (deployment, old, new) it is told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, deployment: str, old: str, new: str) -> None:
        self.seen.append((deployment, old, new))


def breaker(reset_timeout: float = 30.0, listener: Transitions | None = None) -> CircuitBreaker:
    """A breaker for deployment "openai" that trips after `FAIL_MAX` failures."""
    return CircuitBreaker(
        "openai", fail_max=FAIL_MAX, reset_timeout=reset_timeout, on_state_change=listener
    )


def outage() -> UpstreamUnavailableError:
    """A provider-health failure."""
    return UpstreamUnavailableError("provider 'openai' answered 503", provider="openai")


def fail(cb: CircuitBreaker, times: int) -> None:
    """Make `times` tries that the provider fails."""
    for _ in range(times):
        cb.failed(cb.admit(), outage())


def tripped(reset_timeout: float = 30.0, listener: Transitions | None = None) -> CircuitBreaker:
    """A breaker that has just opened."""
    cb = breaker(reset_timeout, listener)
    fail(cb, FAIL_MAX)
    assert cb.state == OPEN
    return cb


def half_open(listener: Transitions | None = None) -> tuple[CircuitBreaker, Permit]:
    """A breaker whose reset timeout has passed, and the probe permit it handed out."""
    cb = tripped(SHORT_RESET, listener)
    time.sleep(WAIT_OUT)
    probe = cb.admit()
    assert cb.state == HALF_OPEN
    return cb, probe


# Closed


def test_closed_breaker_admits_an_ordinary_try() -> None:
    cb = breaker()

    assert cb.admit() == Permit(probe=False)
    assert cb.state == CLOSED


def test_one_failure_short_of_fail_max_keeps_the_circuit_closed() -> None:
    cb = breaker()

    fail(cb, FAIL_MAX - 1)

    assert cb.state == CLOSED
    assert cb.admit() == Permit(probe=False)


def test_fail_max_consecutive_failures_open_the_circuit_once() -> None:
    transitions = Transitions()
    cb = breaker(listener=transitions)

    fail(cb, FAIL_MAX)

    assert cb.state == OPEN
    assert transitions.seen == [("openai", CLOSED, OPEN)]


def test_open_circuit_refuses_at_once_with_the_reset_time_remaining() -> None:
    cb = tripped(reset_timeout=30.0)

    with pytest.raises(CircuitOpenError) as refused:
        cb.admit()

    assert refused.value.deployment == "openai"
    assert 29.0 < refused.value.retry_after <= 30.0


def test_a_success_resets_the_consecutive_failure_count() -> None:
    cb = breaker()
    fail(cb, FAIL_MAX - 1)
    cb.succeeded(cb.admit())

    fail(cb, FAIL_MAX - 1)

    assert cb.state == CLOSED
    assert cb.status().consecutive_failures == FAIL_MAX - 1


def test_released_tries_neither_count_as_failures_nor_reset_the_count() -> None:
    # pybreaker counts an excluded exception as a success; a neutral outcome must not reach it.
    cb = breaker()
    fail(cb, FAIL_MAX - 1)
    for _ in range(10):
        cb.released(cb.admit())
    assert cb.state == CLOSED
    assert cb.status().consecutive_failures == FAIL_MAX - 1

    fail(cb, 1)

    assert cb.state == OPEN


# Half-open: one probe at a time


def test_first_admit_after_the_reset_timeout_is_the_probe() -> None:
    cb = tripped(SHORT_RESET)
    time.sleep(WAIT_OUT)

    permit = cb.admit()

    assert permit == Permit(probe=True)
    assert cb.state == HALF_OPEN


def test_a_second_caller_is_refused_while_the_probe_is_out() -> None:
    cb, _probe = half_open()

    with pytest.raises(CircuitOpenError) as refused:
        cb.admit()

    assert refused.value.retry_after == PROBE_BUSY_RETRY_AFTER
    assert cb.state == HALF_OPEN


def test_probe_success_closes_the_circuit_and_clears_the_count() -> None:
    cb, probe = half_open()

    cb.succeeded(probe)

    assert cb.state == CLOSED
    assert cb.status().consecutive_failures == 0
    assert cb.admit() == Permit(probe=False)
    fail(cb, FAIL_MAX - 1)
    assert cb.state == CLOSED


def test_probe_failure_reopens_the_circuit_for_a_fresh_reset_timeout() -> None:
    cb, probe = half_open()
    first_opened_at = cb.status().opened_at
    assert first_opened_at is not None

    cb.failed(probe, outage())

    assert cb.state == OPEN
    reopened_at = cb.status().opened_at
    assert reopened_at is not None
    assert reopened_at > first_opened_at
    with pytest.raises(CircuitOpenError) as refused:
        cb.admit()
    assert SHORT_RESET - 0.02 < refused.value.retry_after <= SHORT_RESET


def test_released_probe_lets_the_next_caller_probe() -> None:
    cb, probe = half_open()

    cb.released(probe)  # e.g. the probing caller cancelled

    assert cb.state == HALF_OPEN
    assert cb.admit() == Permit(probe=True)


# Outcomes of tries admitted before the circuit opened


def test_success_of_a_try_admitted_before_the_circuit_opened_does_not_close_it() -> None:
    cb = breaker()
    earlier = cb.admit()
    fail(cb, FAIL_MAX)

    cb.succeeded(earlier)

    assert cb.state == OPEN


def test_success_of_an_earlier_try_after_the_reset_timeout_does_not_skip_the_probe() -> None:
    # A long stream admitted while closed may end after the reset timeout: only a probe decides.
    cb = breaker(SHORT_RESET)
    earlier = cb.admit()
    fail(cb, FAIL_MAX)
    time.sleep(WAIT_OUT)

    cb.succeeded(earlier)

    assert cb.state != CLOSED
    assert cb.admit() == Permit(probe=True)


def test_success_of_an_earlier_try_does_not_close_a_half_open_circuit() -> None:
    cb = breaker(SHORT_RESET)
    earlier = cb.admit()
    fail(cb, FAIL_MAX)
    time.sleep(WAIT_OUT)
    cb.admit()  # the probe, still out

    cb.succeeded(earlier)

    assert cb.state == HALF_OPEN


# Status


def test_status_of_a_closed_breaker_has_no_open_times() -> None:
    cb = breaker()
    fail(cb, 2)

    status = cb.status()

    assert status.state == CLOSED
    assert status.consecutive_failures == 2
    assert status.opened_at is None
    assert status.next_probe_at is None


def test_status_of_an_open_breaker_shows_when_it_opened_and_will_probe() -> None:
    before = datetime.now(UTC)
    cb = tripped(reset_timeout=30.0)
    after = datetime.now(UTC)

    status = cb.status()

    assert status.state == OPEN
    assert status.consecutive_failures == FAIL_MAX
    assert status.opened_at is not None
    assert status.next_probe_at is not None
    assert before <= status.opened_at <= after
    assert (status.next_probe_at - status.opened_at).total_seconds() == pytest.approx(30.0)


def test_status_names_the_last_error_class_and_never_its_message() -> None:
    cb = breaker()
    leaky = UpstreamUnavailableError(f"upstream said: bad key {FAKE_SECRET}", provider="openai")

    cb.failed(cb.admit(), leaky)

    status = cb.status()
    assert status.last_error == "UpstreamUnavailableError"
    assert all(FAKE_SECRET not in str(field) for field in dataclasses.astuple(status))


# The board and the listener


def test_breakers_give_the_same_breaker_for_a_deployment() -> None:
    board = Breakers(fail_max=FAIL_MAX, reset_timeout=30.0)

    assert board("openai") is board("openai")


def test_breakers_keep_deployments_apart() -> None:
    board = Breakers(fail_max=FAIL_MAX, reset_timeout=30.0)

    fail(board("openai"), FAIL_MAX)

    assert board("openai").state == OPEN
    assert board("anthropic").state == CLOSED
    assert board("anthropic").deployment == "anthropic"


def test_breakers_tell_the_listener_which_deployment_changed() -> None:
    transitions = Transitions()
    board = Breakers(fail_max=FAIL_MAX, reset_timeout=30.0, on_state_change=transitions)

    fail(board("anthropic"), FAIL_MAX)

    assert transitions.seen == [("anthropic", CLOSED, OPEN)]


def test_listener_sees_each_transition_of_a_trip_probe_and_recovery() -> None:
    transitions = Transitions()
    cb, probe = half_open(transitions)

    cb.succeeded(probe)

    assert transitions.seen == [
        ("openai", CLOSED, OPEN),
        ("openai", OPEN, HALF_OPEN),
        ("openai", HALF_OPEN, CLOSED),
    ]
