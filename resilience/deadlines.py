"""Whose time ran out: a wait's own limit (the provider was slow) or the caller's deadline.

A try, or a stream's wait for its next chunk, is cut at the earlier of its own limit (the
per-try or idle timeout) and the caller's deadline. When the cut is the caller's deadline the
outcome is the caller's (DEADLINE_EXCEEDED, the provider's circuit untouched), never the
provider's. Reading the clock when a timer fires cannot tell the two apart: timers go off a
little early (uvloop keeps its clock in whole milliseconds and rounds each delay to one), so a
timer set for the deadline may fire just before it. So the cut is decided when the wait is
bounded, and a limit that falls within `TIMER_SLACK` of the deadline counts as the deadline
(a few milliseconds before the caller's deadline leave no time for another try anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Timers go off up to this early (well within it); a limit this close to the deadline is the
#: deadline.
TIMER_SLACK: Final = 0.005


@dataclass(frozen=True, slots=True)
class Cut:
    """When a wait is cut, and the caller's deadline; both on the event loop's clock."""

    at: float
    deadline: float

    @property
    def callers(self) -> bool:
        """Whether the cut is the caller's deadline (the wait's own limit was not earlier)."""
        return self.at >= self.deadline

    def is_callers(self, now: float) -> bool:
        """Whether a wait that ran out of time at `now` was cut by the caller's deadline.

        It was when its cut is the deadline, or when the deadline has come anyway (a timer
        for the wait's own limit that went off late).
        """
        return self.callers or spent(self.deadline, now)


def cut(limit: float, deadline: float) -> Cut:
    """The cut of a wait with its own `limit` and the caller's `deadline` (see `cut_at`)."""
    return Cut(cut_at(limit, deadline), deadline)


def cut_at(limit: float, deadline: float) -> float:
    """When a wait with its own `limit` and the caller's `deadline` is cut.

    At its own limit only when that falls clearly before the deadline; otherwise at the
    deadline itself (a limit a hair before it is stretched to it).
    """
    return limit if limit < deadline - TIMER_SLACK else deadline


def spent(deadline: float, now: float) -> bool:
    """Whether the caller's `deadline` has come at `now` (a hair early counts)."""
    return now >= deadline - TIMER_SLACK
