"""Gateway-made ids: 32 lowercase hex digits, never repeated, not even by a forked child."""

from __future__ import annotations

import os
import string

from gateway.ids import new_id


def test_ids_are_32_lowercase_hex_digits() -> None:
    made = new_id()
    assert len(made) == 32
    assert set(made) <= set(string.hexdigits.lower())


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
