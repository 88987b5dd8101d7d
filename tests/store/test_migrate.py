"""Migrations bring an empty database to the models' schema, once, even from two replicas."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from gateway.store.migrate import HEAD, alembic_config, current_revision, upgrade
from gateway.store.models import metadata
from tests.store.rows import Database


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
