"""A fresh usage store per test: a SQLite file, or a new PostgreSQL database on the real server.

A whole database (not a schema) so that gateway processes started by a test reach it with a
plain `DATABASE_URL`. Under CI a missing PostgreSQL fails the run (see tests/postgres_support).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store.migrate import upgrade
from tests.postgres_support import postgres_url_fixture

# The fixture's body, as a plain coroutine: an async fixture cannot request another one lazily.
reachable_postgres = postgres_url_fixture.__wrapped__  # type: ignore[attr-defined]


@pytest.fixture(name="store_url", params=["sqlite", "postgresql"])
async def store_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A `DATABASE_URL` for an empty store of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'usage.db'}"
        return
    server = await reachable_postgres()
    name = f"aigw_t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield server.rsplit("/", 1)[0] + f"/{name}"
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@pytest.fixture(name="pg_database")
async def pg_database_fixture() -> AsyncIterator[str]:
    """A new PostgreSQL database (migrated), shared by the processes of one test."""
    server = await reachable_postgres()
    name = f"aigw_r_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.rsplit("/", 1)[0] + f"/{name}"
        await upgrade(url)
        yield url
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()
