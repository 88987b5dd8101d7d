"""Each store test runs on SQLite (a temporary file) and on PostgreSQL (a schema of its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.engine import create_engine
from gateway.store.migrate import upgrade
from tests.postgres_support import (  # noqa: F401 - fixtures are found by name
    PostgresSchema,
    postgres_schema_url_fixture,
    postgres_url_fixture,
)
from tests.store.rows import Database


@pytest.fixture(name="database", params=["sqlite", "postgresql"])
def database_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """An empty database: a fresh SQLite file, or a fresh schema on PostgreSQL."""
    if request.param == "sqlite":
        return Database(kind="sqlite", url=f"sqlite:///{tmp_path / 'usage.db'}", schema=None)
    schema: PostgresSchema = request.getfixturevalue("postgres_schema_url")
    return Database(kind="postgresql", url=schema.url, schema=schema.name)


@pytest.fixture(name="engine")
async def engine_fixture(database: Database) -> AsyncIterator[AsyncEngine]:
    """An engine on `database`, migrated to the newest revision; disposed after the test."""
    await upgrade(database.url, schema=database.schema)
    engine = database.engine()
    yield engine
    await engine.dispose()


@pytest.fixture(name="postgres_engine")
async def postgres_engine_fixture(
    postgres_schema_url: PostgresSchema,
) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated schema of its own on PostgreSQL, for PostgreSQL-only behaviour."""
    await upgrade(postgres_schema_url.url, schema=postgres_schema_url.name)
    engine = create_engine(postgres_schema_url.url, schema=postgres_schema_url.name)
    yield engine
    await engine.dispose()
