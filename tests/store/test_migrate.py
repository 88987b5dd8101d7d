"""Migrations bring an empty database to the models' schema, once, even from two replicas."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, column, insert, select, table

from gateway.store.ledger import request_row, write_records
from gateway.store.migrate import HEAD, alembic_config, current_revision, upgrade
from gateway.store.models import metadata, requests
from tests.store.rows import Database, make_record


def test_head_names_the_newest_script() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


async def test_a_new_database_has_no_revision(database: Database) -> None:
    assert await current_revision(database.url, schema=database.schema) is None


async def test_upgrade_reaches_head_and_reports_it(database: Database) -> None:
    assert await upgrade(database.url, schema=database.schema) == HEAD
    assert await current_revision(database.url, schema=database.schema) == HEAD


async def test_upgrading_twice_changes_nothing(database: Database) -> None:
    await upgrade(database.url, schema=database.schema)
    assert await upgrade(database.url, schema=database.schema) == HEAD
    assert await current_revision(database.url, schema=database.schema) == HEAD


async def test_replicas_upgrading_at_once_both_succeed(database: Database) -> None:
    revisions = await asyncio.gather(
        *(upgrade(database.url, schema=database.schema) for _ in range(6))
    )
    assert revisions == [HEAD] * 6


async def test_migrated_schema_matches_the_models(database: Database) -> None:
    await upgrade(database.url, schema=database.schema)
    engine = database.engine()
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_rows_written_before_reasoning_tokens_count_none_after_the_upgrade(
    database: Database,
) -> None:
    engine = database.engine()
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_upgrade_to, "0001")
            old = _old_row()
            before = table("requests", *(column(name, requests.c[name].type) for name in old))
            await connection.execute(insert(before).values(old))
            await connection.commit()
        await upgrade(database.url, schema=database.schema)
        async with engine.connect() as connection:
            stored = (await connection.execute(select(requests.c.reasoning_tokens))).scalar_one()
    finally:
        await engine.dispose()
    assert stored == 0


async def test_reasoning_tokens_land_in_the_ledger(database: Database) -> None:
    await upgrade(database.url, schema=database.schema)
    engine = database.engine()
    try:
        await write_records(engine, [replace(make_record(1), reasoning_tokens=7)])
        async with engine.connect() as connection:
            stored = (await connection.execute(select(requests.c.reasoning_tokens))).scalar_one()
    finally:
        await engine.dispose()
    assert stored == 7


def _upgrade_to(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


def _old_row() -> dict[str, object]:
    row = request_row(make_record(1))
    del row["reasoning_tokens"]
    return row
