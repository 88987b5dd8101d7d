"""Whose time ran out: a wait's own limit, or the caller's deadline (a hair before it counts)."""

from __future__ import annotations

from resilience.deadlines import TIMER_SLACK, cut, spent

DEADLINE = 100.0


def test_a_limit_clearly_before_the_deadline_is_the_waits_own() -> None:
    bound = cut(DEADLINE - 0.5, DEADLINE)
    assert (bound.at, bound.callers) == (DEADLINE - 0.5, False)


def test_a_limit_a_hair_before_the_deadline_is_stretched_to_the_deadline() -> None:
    bound = cut(DEADLINE - TIMER_SLACK / 2, DEADLINE)
    assert (bound.at, bound.callers) == (DEADLINE, True)


def test_a_limit_past_the_deadline_is_cut_at_the_deadline() -> None:
    bound = cut(DEADLINE + 30.0, DEADLINE)
    assert (bound.at, bound.callers) == (DEADLINE, True)


def test_a_timer_for_the_deadline_that_goes_off_a_hair_early_is_the_callers() -> None:
    assert cut(DEADLINE + 30.0, DEADLINE).is_callers(DEADLINE - 0.0004)
    assert spent(DEADLINE, DEADLINE - 0.0004)


def test_a_waits_own_limit_on_time_is_not_the_callers_but_one_that_fired_late_past_it_is() -> None:
    bound = cut(DEADLINE - 0.5, DEADLINE)
    assert not bound.is_callers(DEADLINE - 0.5)
    assert bound.is_callers(DEADLINE + 0.01)  # the loop was busy: the caller's time is up too
