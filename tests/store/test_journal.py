"""The usage journal: a row is on disk as soon as it is recorded, and a dead writer's rows are not
lost — the next writer on the same spill path stores them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.spill import merge_orphan_spills, worker_spill_path
from gateway.store.writer import UsageWriter
from tests.store.rows import eventually, fast_writer, make_record, stored_ids


def journal_of(spill: Path) -> Path:
    return spill.with_name(spill.name + ".journal")


def sealed_of(spill: Path) -> Path:
    return spill.with_name(spill.name + ".journal.sealed")


async def test_a_recorded_row_is_in_the_journal_before_any_batch(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    writer = UsageWriter(engine, spill_path=spill, flush_interval=3600)
    writer.start()
    try:
        writer.record(make_record(1))
        writer.record(make_record(2))
        lines = journal_of(spill).read_bytes().splitlines()
        assert [line for line in lines if line] == [
            make_record(1).to_json().encode(),
            make_record(2).to_json().encode(),
        ]
        assert await stored_ids(engine) == []  # nothing flushed yet: only the journal has them
    finally:
        await writer.aclose(timeout=5)


async def test_rows_a_dead_writer_journaled_are_stored_by_the_next(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    # What a process killed mid-flight leaves: a sealed file, a current one ending in a torn line.
    sealed = "".join(make_record(n).to_json() + "\n" for n in range(0, 30))
    current = "".join(make_record(n).to_json() + "\n" for n in range(25, 60))
    sealed_of(spill).write_text(sealed)
    journal_of(spill).write_text(current + make_record(60).to_json()[:40])
    writer = fast_writer(engine, spill)
    writer.start()
    try:
        await eventually(lambda: writer.written_total >= 60)
        assert await stored_ids(engine) == [make_record(n).id for n in range(60)]
    finally:
        await writer.aclose(timeout=5)
    assert not sealed_of(spill).exists()


async def test_the_journal_is_emptied_once_its_rows_are_stored(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    writer = fast_writer(engine, spill)
    writer.start()
    try:
        for n in range(200):
            writer.record(make_record(n))
        await eventually(lambda: writer.written_total >= 200)
        await eventually(
            lambda: journal_of(spill).stat().st_size == 0 and not sealed_of(spill).exists()
        )
    finally:
        await writer.aclose(timeout=5)


async def test_a_graceful_close_leaves_no_journal(engine: AsyncEngine, tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    writer = UsageWriter(engine, spill_path=spill, flush_interval=3600)
    writer.start()
    for n in range(10):
        writer.record(make_record(n))
    await writer.aclose(timeout=5)
    assert await stored_ids(engine) == [make_record(n).id for n in range(10)]
    assert not journal_of(spill).exists()
    assert not sealed_of(spill).exists()


async def test_the_journal_of_a_worker_that_no_longer_exists_is_stored_by_worker_0(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    base = tmp_path / "usage.spill.jsonl"
    gone = worker_spill_path(base, 3)  # WORKERS went from 4 down to 2
    journal_of(gone).write_text("".join(make_record(n).to_json() + "\n" for n in range(5)))
    merge_orphan_spills(base, 2)
    writer = fast_writer(engine, base)
    writer.start()
    try:
        await eventually(lambda: writer.written_total >= 5)
    finally:
        await writer.aclose(timeout=5)
    assert await stored_ids(engine) == [make_record(n).id for n in range(5)]
    assert not journal_of(gone).exists()
