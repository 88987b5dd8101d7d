"""Gateway-made ids: UUIDv7s in hex, in the order made, never repeated, not even by a fork."""

from __future__ import annotations

import os
import string
import time
import uuid

from gateway.pipeline.ids import new_id


def test_ids_are_uuid7s_as_32_lowercase_hex_digits() -> None:
    made = new_id()
    assert len(made) == 32
    assert set(made) <= set(string.hexdigits.lower())
    assert uuid.UUID(made).version == 7
    assert uuid.UUID(made).variant == uuid.RFC_4122


def test_ids_start_with_the_time_they_were_made_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= int(made[:12], 16) <= after


def test_ids_made_in_later_milliseconds_sort_later() -> None:
    first = new_id()
    time.sleep(0.002)
    assert new_id() > first


def test_ids_do_not_repeat() -> None:
    assert len({new_id() for _ in range(100_000)}) == 100_000


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    try:
        from_child = os.read(read, 64).decode()
    finally:
        os.close(read)
        os.waitpid(child, 0)
    assert len(from_child) == 32
    assert from_child != new_id()
