"""A log budget lets a few lines a second through and says how many it left out."""

from __future__ import annotations

import logging

import pytest

from gateway.transports.log_budget import LogBudget


def test_lines_past_the_budget_are_skipped_and_the_next_line_counts_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    budget = LogBudget(logging.getLogger("test.budget"), per_second=3, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.budget"):
        for number in range(50):
            budget.warning("bad frame", number=number)
        now[0] += 1.0
        budget.warning("bad frame", number=50)
    assert [r.number for r in caplog.records] == [0, 1, 2, 50]  # type: ignore[attr-defined]
    assert caplog.records[-1].skipped_before == 47  # type: ignore[attr-defined]
    assert all(r.exc_info is None for r in caplog.records)
