"""Ids the gateway makes for requests and calls: 32 random hex digits, as `uuid4().hex` gave.

They must be unique, not secret (a caller may choose its own request id), so they come from a
private Mersenne Twister seeded by the OS (and reseeded in a forked child) rather than from the
OS per id: `os.urandom` is a system call that lets go of the GIL, and on the event loop every
such point hands the loop's thread over to the log writer or the database thread for a while.
"""

from __future__ import annotations

import os
import random

_random = random.Random()  # noqa: S311 (uniqueness, not secrecy: see above)
os.register_at_fork(after_in_child=_random.seed)


def new_id() -> str:
    """A new random id: 32 lowercase hex digits (128 bits)."""
    return _random.randbytes(16).hex()
