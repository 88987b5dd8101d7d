"""Fixtures for tests that need the real PostgreSQL server.

Import the fixtures into a test module or a `conftest.py`; pytest registers them under the
names `postgres_url` and `postgres_schema_url`::

    from tests.postgres_support import (  # noqa: F401
        postgres_schema_url_fixture,
        postgres_url_fixture,
    )

`postgres_url` is the server to use: `DATABASE_URL`, or the standard local port, normalised to
the asyncpg driver. When no server answers, tests that use it skip with a reason saying how to
start one; when the `CI` environment variable is set they fail instead, so CI can never go green
by skipping.

`postgres_schema_url` is a fresh schema for one test on that server (`t_<uuid>`), dropped with
everything in it afterwards, so tests sharing the `test` database never see each other's tables.
Open engines on it with `create_engine(schema.url, schema=schema.name)`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from gateway.store.engine import database_url

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT_SECONDS = 2.0
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@dataclass(frozen=True)
class PostgresSchema:
    """A schema of its own for one test: the server's URL and the schema's name."""

    url: str
    name: str


def display_url(url: str) -> str:
    """`url` without user name or password, for messages."""
    parsed = make_url(url)
    return f"{parsed.host or ''}:{parsed.port or 5432}/{parsed.database or ''}"


def admin_engine(url: str) -> AsyncEngine:
    """An engine without a pool, for setting up and inspecting the server (dispose it)."""
    return create_async_engine(
        url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT_SECONDS}
    )


async def execute(url: str, statement: str) -> None:
    """Run one statement on the server at `url` in its own transaction."""
    engine = admin_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(name="postgres_url")
async def postgres_url_fixture() -> str:
    """URL of a PostgreSQL server that accepts us; skips (fails under CI) when there is none."""
    url = database_url(os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES_URL)
    try:
        await execute(url, "SELECT 1")
    except (OSError, TimeoutError, SQLAlchemyError) as exc:
        where = display_url(url)
        reason = f"{type(exc).__name__}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI: cannot connect to {where} ({reason})")
        pytest.skip(
            f"PostgreSQL not reachable at {where} ({reason}); start it with: {START_HINT} "
            "(or set DATABASE_URL)"
        )
    return url


@pytest.fixture(name="postgres_schema_url")
async def postgres_schema_url_fixture(postgres_url: str) -> AsyncIterator[PostgresSchema]:
    """A fresh schema for this test, dropped (with everything in it) afterwards."""
    name = f"t_{uuid4().hex}"
    await execute(postgres_url, f'CREATE SCHEMA "{name}"')
    yield PostgresSchema(url=postgres_url, name=name)
    await execute(postgres_url, f'DROP SCHEMA "{name}" CASCADE')
