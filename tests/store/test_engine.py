"""URLs are made async, and each backend's connections are set up as the store needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.store.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine, database_url
from tests.postgres_support import PostgresSchema


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgres://u:p@db/app", "postgresql+asyncpg://u:p@db/app"),
        ("sqlite:///var/usage.db", "sqlite+aiosqlite:///var/usage.db"),
        ("sqlite:////abs/usage.db", "sqlite+aiosqlite:////abs/usage.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ],
)
def test_plain_urls_get_the_async_driver(raw: str, expected: str) -> None:
    assert database_url(raw) == expected


@pytest.mark.parametrize(
    "url",
    ["postgresql+asyncpg://u:p@db/app?ssl=require", "sqlite+aiosqlite:///usage.db"],
)
def test_async_urls_are_unchanged(url: str) -> None:
    assert database_url(url) == url


def test_libpq_sslmode_becomes_asyncpgs_ssl() -> None:
    assert database_url("postgresql://db/app?sslmode=require") == (
        "postgresql+asyncpg://db/app?ssl=require"
    )


def test_other_databases_are_refused_without_echoing_the_url() -> None:
    with pytest.raises(ValueError, match="PostgreSQL or SQLite") as caught:
        database_url("mysql://admin:hunter2@db/app")
    assert "hunter2" not in str(caught.value)


async def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'usage.db'}")
    try:
        async with engine.connect() as connection:
            pragmas = [
                (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            ]
    finally:
        await engine.dispose()
    assert pragmas == ["wal", SQLITE_BUSY_TIMEOUT_MS, 1]


def test_sqlite_has_no_schemas(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no schemas"):
        create_engine(f"sqlite:///{tmp_path / 'usage.db'}", schema="elsewhere")


async def test_postgres_connections_search_the_given_schema(
    postgres_schema_url: PostgresSchema,
) -> None:
    engine = create_engine(postgres_schema_url.url, schema=postgres_schema_url.name)
    try:
        async with engine.connect() as connection:
            schema = (await connection.execute(text("SELECT current_schema()"))).scalar_one()
    finally:
        await engine.dispose()
    assert schema == postgres_schema_url.name


def test_postgres_schema_must_be_an_identifier() -> None:
    with pytest.raises(ValueError, match="identifier"):
        create_engine("postgresql://db/app", schema="x; DROP TABLE requests")
