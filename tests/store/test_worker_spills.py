"""Each worker's spill file, and those of workers that no longer exist merged into worker 0's."""

from __future__ import annotations

from pathlib import Path

from gateway.store.spill import merge_orphan_spills, worker_spill_path


def test_worker_zero_keeps_the_configured_spill_file() -> None:
    base = Path("/var/lib/aigw/usage.spill.jsonl")
    assert worker_spill_path(base, 0) == base
    assert worker_spill_path(base, 2) == Path("/var/lib/aigw/usage.spill.w2.jsonl")


def test_spill_files_of_removed_workers_are_merged_into_worker_zeros(tmp_path: Path) -> None:
    base = tmp_path / "usage.spill.jsonl"
    base.write_bytes(b'{"a":1}')  # a torn last line must not swallow the next row
    worker_spill_path(base, 1).write_bytes(b'{"keep":1}\n')
    worker_spill_path(base, 2).write_bytes(b'{"b":2}\n')
    claimed = tmp_path / "usage.spill.w3.jsonl.replaying"
    claimed.write_bytes(b'{"c":3}\n')
    rejected = tmp_path / "usage.spill.w3.jsonl.rejected"
    rejected.write_bytes(b'{"bad":1}\n')

    merged = merge_orphan_spills(base, workers=2)

    assert base.read_bytes().splitlines() == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    assert worker_spill_path(base, 1).read_bytes() == b'{"keep":1}\n'  # worker 1 still exists
    assert not worker_spill_path(base, 2).exists()
    assert not claimed.exists()
    assert rejected.exists()
    assert merged == ["usage.spill.w2.jsonl", "usage.spill.w3.jsonl.replaying"]
