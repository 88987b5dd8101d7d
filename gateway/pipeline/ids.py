"""Ids the gateway makes for requests and calls: UUIDv7s (RFC 9562) as 32 lowercase hex digits.

A UUIDv7 starts with the Unix time in milliseconds, so ids made later sort later: the ledger's
indexes on them (the call id is its primary key) grow at their right edge instead of taking each
new row at a random page, which on SQLite cost ~6 page reads and writes per row once the table
outgrew the page cache. The rest is 74 random bits: ids must be unique, not secret (a caller may
choose its own request id), so they come from a private Mersenne Twister seeded by the OS (and
reseeded in a forked child), not from the OS per id: `os.urandom` is a system call that lets go
of the GIL, and on the event loop each such point hands the thread to the log writer or the
database thread for a while.
"""

from __future__ import annotations

import contextvars
import os
import random
import time

_random = random.Random()  # noqa: S311 (uniqueness, not secrecy: see above)
os.register_at_fork(after_in_child=_random.seed)

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_B_BITS = 62


def new_id() -> str:
    """A new UUIDv7 in hex: 48 bits of Unix milliseconds, version, 74 random bits, variant."""
    bits = _random.getrandbits(74)
    rand_a, rand_b = bits >> _RAND_B_BITS, bits & ((1 << _RAND_B_BITS) - 1)
    value = (time.time_ns() // 1_000_000) << 80 | _VERSION | rand_a << 64 | _VARIANT | rand_b
    return value.to_bytes(16).hex()


MAX_REQUEST_ID_CHARS = 128
#: The request id of the call this task serves (logs stamp it on every line).
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


def request_id_from(candidate: str | None) -> str:
    """The caller's `x-request-id` when it is sane (short, printable ASCII), else a new id."""
    if (
        candidate
        and len(candidate) <= MAX_REQUEST_ID_CHARS
        and candidate.isascii()
        and candidate.isprintable()
    ):
        return candidate
    return new_id()
