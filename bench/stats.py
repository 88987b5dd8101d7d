"""Latency statistics for benchmark reports."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    """Requests per second and latency percentiles (milliseconds) of one run."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1) of `values`; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))])


def median(values: Sequence[float]) -> float:
    """The median of `values` (mean of the middle two for an even count); 0 when empty."""
    return float(statistics.median(values)) if values else 0.0


def summarize(latencies: list[float], errors: int, seconds: float) -> Summary:
    """Summarize per-request latencies given in seconds."""
    ordered = sorted(latencies)

    def pct(share: float) -> float:
        if not ordered:
            return 0.0
        index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
        return ordered[index] * 1000

    return Summary(
        requests=len(ordered),
        errors=errors,
        seconds=seconds,
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        max_ms=ordered[-1] * 1000 if ordered else 0.0,
    )
