"""The usage writer stores every recorded row exactly once, spilling to disk what cannot wait."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.engine import create_engine
from gateway.store.ledger import Ledger, SqliteLedger, write_records
from gateway.store.migrate import upgrade
from gateway.store.models import provider_attempts, requests
from gateway.store.spill import SpillFile
from tests.store.rows import (
    Database,
    attempts_per_request,
    count_rows,
    eventually,
    fast_writer,
    make_record,
    stored_ids,
)


def expected_ids(numbers: range) -> list[str]:
    """The ids `make_record` gives calls `numbers`, in stored order."""
    return [make_record(n).id for n in numbers]


async def test_a_thousand_rows_land_exactly_once(engine: AsyncEngine, tmp_path: Path) -> None:
    writer = fast_writer(engine, tmp_path / "spill.jsonl")
    writer.start()
    for n in range(1000):
        writer.record(make_record(n))
    await writer.aclose(timeout=10)

    assert await stored_ids(engine) == expected_ids(range(1000))
    assert set((await attempts_per_request(engine)).values()) == {2}
    assert await count_rows(engine, provider_attempts) == 2000
    assert (writer.pending, writer.written_total, writer.spilled_total) == (0, 1000, 0)


async def test_rows_are_stored_in_the_background(engine: AsyncEngine, tmp_path: Path) -> None:
    writer = fast_writer(engine, tmp_path / "spill.jsonl")
    writer.start()
    try:
        for n in range(10):
            writer.record(make_record(n))
        await eventually(lambda: writer.written_total >= 10)
        assert await count_rows(engine, requests) == 10
    finally:
        await writer.aclose(timeout=5)


async def test_a_batch_sent_twice_is_stored_once(engine: AsyncEngine) -> None:
    batch = [make_record(n) for n in range(20)]
    await write_records(engine, batch)
    await write_records(engine, batch)

    assert await stored_ids(engine) == expected_ids(range(20))
    assert await count_rows(engine, provider_attempts) == 40


async def test_a_row_recorded_twice_is_stored_once(engine: AsyncEngine, tmp_path: Path) -> None:
    writer = fast_writer(engine, tmp_path / "spill.jsonl")
    writer.start()
    for n in [1, 2, 1, 3, 2]:
        writer.record(make_record(n))
    await writer.aclose(timeout=5)

    assert await stored_ids(engine) == expected_ids(range(1, 4))
    assert await count_rows(engine, provider_attempts) == 6


async def test_rows_past_max_pending_are_spilled_not_dropped(tmp_path: Path) -> None:
    # Nothing is started: rows only queue, as they do while the database is down.
    database = Database(kind="sqlite", url=f"sqlite:///{tmp_path / 'unused.db'}", schema=None)
    engine = database.engine()
    writer = fast_writer(engine, tmp_path / "spill.jsonl", max_pending=10, batch_size=4)
    try:
        for n in range(25):
            writer.record(make_record(n))
        assert writer.pending <= 10
        assert writer.spilled_total + writer.pending == 25
        lines = (tmp_path / "spill.jsonl").read_text().splitlines()
        assert len(lines) == writer.spilled_total > 0
    finally:
        await engine.dispose()


async def test_aclose_spills_what_it_has_no_time_to_store(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    spill_path = tmp_path / "spill.jsonl"
    writer = fast_writer(engine, spill_path)
    for n in range(30):
        writer.record(make_record(n))
    await writer.aclose(timeout=0)

    assert writer.pending == 0
    assert writer.spilled_total == 30
    # A write already under way when time ran out may still have committed (a SQLite file's
    # batch runs on a thread that cannot be stopped mid-way): then those rows are both stored
    # and spilled, and the replay must store each row once all the same.
    assert set(await stored_ids(engine)) <= set(expected_ids(range(30)))
    second = fast_writer(engine, spill_path)
    second.start()
    await second.aclose(timeout=10)
    assert await stored_ids(engine) == expected_ids(range(30))
    assert await count_rows(engine, provider_attempts) == 60
    assert not SpillFile(spill_path).has_rows()


async def test_spilled_rows_are_replayed_by_the_next_writer_exactly_once(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    spill_path = tmp_path / "spill.jsonl"
    first = fast_writer(engine, spill_path, max_pending=10, batch_size=4)
    for n in range(25):
        first.record(make_record(n))
    await first.aclose(timeout=0)
    # Some rows made it before the crash: replaying them must not duplicate them.
    await write_records(engine, [make_record(n) for n in range(5)])

    second = fast_writer(engine, spill_path, batch_size=4)
    second.start()
    second.record(make_record(25))
    await second.aclose(timeout=10)

    assert await stored_ids(engine) == expected_ids(range(26))
    assert await count_rows(engine, provider_attempts) == 52
    assert not SpillFile(spill_path).has_rows()


async def test_overflow_while_running_is_stored_exactly_once(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    spill_path = tmp_path / "spill.jsonl"
    writer = fast_writer(engine, spill_path, max_pending=20, batch_size=10)
    writer.start()
    for n in range(200):  # all at once: the flusher gets no turn in between
        writer.record(make_record(n))
    assert writer.spilled_total > 0
    await eventually(lambda: writer.written_total >= 200)
    await writer.aclose(timeout=10)

    assert await stored_ids(engine) == expected_ids(range(200))
    assert not SpillFile(spill_path).has_rows()


async def test_torn_spill_lines_are_skipped(engine: AsyncEngine, tmp_path: Path) -> None:
    spill_path = tmp_path / "spill.jsonl"
    good = [make_record(n).to_json() for n in range(3)]
    # A crash mid-write tore the last line; the next writer appended after it.
    spill_path.write_text(f"{good[0]}\n{good[1][:30]}")
    SpillFile(spill_path).append([make_record(2)])

    writer = fast_writer(engine, spill_path)
    writer.start()
    await writer.aclose(timeout=10)

    assert await stored_ids(engine) == [make_record(0).id, make_record(2).id]


async def test_rows_the_database_refuses_are_set_aside(
    postgres_engine: AsyncEngine, tmp_path: Path
) -> None:
    # PostgreSQL only: SQLite does not enforce VARCHAR lengths, so it refuses nothing here.
    engine = postgres_engine
    spill_path = tmp_path / "spill.jsonl"
    writer = fast_writer(engine, spill_path)
    writer.start()
    writer.record(make_record(1))
    writer.record(make_record(2, tenant_id="t" * 65))  # longer than the column allows
    writer.record(make_record(3))
    await writer.aclose(timeout=10)

    assert await stored_ids(engine) == [make_record(1).id, make_record(3).id]
    assert writer.rejected_total == 1
    rejected = (tmp_path / "spill.jsonl.rejected").read_text().splitlines()
    assert [line for line in rejected if line] == [make_record(2, tenant_id="t" * 65).to_json()]


async def test_the_sqlite_ledger_stores_what_sqlalchemy_would(tmp_path: Path) -> None:
    # The SQLite file ledger writes on its own thread and sync engine: every column it stores
    # must read back exactly as a row stored through the async engine does (times, money,
    # flags, NULLs), and a large batch must land whole.
    records = [
        make_record(
            n,
            api_key_id=None if n % 2 else f"key-{n}",
            provider=None if n % 7 == 0 else "openai",
            cost_usd=n / 3,
            started_at=datetime(2026, 3, 1, 12, 0, 0, n, tzinfo=UTC),
            attempts=1 + n % 3,
        )
        for n in range(207)
    ]
    stored: dict[str, list[tuple[object, ...]]] = {}
    for way in ("sqlalchemy", "ledger"):
        url = f"sqlite:///{tmp_path / way}.db"
        await upgrade(url)
        engine = create_engine(url)
        try:
            if way == "sqlalchemy":
                await write_records(engine, records)
            else:
                ledger = Ledger.for_engine(engine)
                assert isinstance(ledger, SqliteLedger)
                await ledger.write(records)
                await ledger.write(records[:10])  # again: ignored, not duplicated
                await ledger.aclose()
            async with engine.connect() as connection:
                rows = []
                for table in (requests, provider_attempts):
                    result = await connection.execute(table.select().order_by(table.c.id))
                    rows += [tuple(row) for row in result]
                stored[way] = rows
        finally:
            await engine.dispose()
    assert len(stored["ledger"]) == len(records) + sum(len(r.attempts) for r in records)
    assert stored["ledger"] == stored["sqlalchemy"]
