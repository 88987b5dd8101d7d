"""A budget of log lines for what a stranger can cause (broken frames, slow bodies, ...).

Anyone who reaches a port can send garbage as fast as the network allows; one warning line per
bad request would let them write the logs (and the log bill) for us. A `LogBudget` lets a few
lines a second through and counts the rest; the next line that gets through says how many were
left out. Metrics count every such event; the log shows what they look like.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

LINES_PER_SECOND: Final = 10


class LogBudget:
    """At most `per_second` warnings a second through `logger`; the others are counted."""

    __slots__ = ("_clock", "_left", "_logger", "_per_second", "_refill_at", "_skipped")

    def __init__(
        self,
        logger: logging.Logger,
        per_second: int = LINES_PER_SECOND,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._clock = clock
        self._per_second = per_second
        self._left = per_second
        self._refill_at = 0.0
        self._skipped = 0

    def take(self) -> int | None:
        """Spend one line: None when none is left (it is counted), else how many were skipped."""
        now = self._clock()
        if now >= self._refill_at:
            self._refill_at, self._left = now + 1.0, self._per_second
        if self._left <= 0:
            self._skipped += 1
            return None
        self._left -= 1
        skipped, self._skipped = self._skipped, 0
        return skipped

    def warning(self, message: str, **fields: object) -> None:
        """Log one line (no traceback) if the budget allows; else count it as skipped."""
        skipped = self.take()
        if skipped is None:
            return
        if skipped:
            fields["skipped_before"] = skipped
        self._logger.warning(message, extra=fields)
