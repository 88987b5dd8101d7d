"""The values one call is made of, as the pipeline sees it: no protobuf, no wire format.

A transport turns what it received into these and renders what comes back; the adapters'
values (`providers.types`) are shared with it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AttemptOutcome(enum.Enum):
    """How one try against one deployment ended."""

    SUCCESS = enum.auto()
    #: The provider failed or answered with an error.
    ERROR = enum.auto()
    #: The try ran out of time (its own limit, or the caller's deadline).
    TIMEOUT = enum.auto()
    #: The provider refused for its own rate limit.
    RATE_LIMITED = enum.auto()
    #: The deployment's circuit was open, so it was not called.
    CIRCUIT_OPEN = enum.auto()
    #: The caller went away during the try.
    CANCELLED = enum.auto()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try against one deployment: which, how it ended, how long it took."""

    #: The deployment tried, and the model name it was asked for.
    provider: str
    model: str
    outcome: AttemptOutcome
    #: Seconds from the try's start to its end (0 for a try not made).
    latency: float
    #: The code of the error the try ended with ("UNAVAILABLE"...); "" when it did not fail.
    error_code: str = ""
