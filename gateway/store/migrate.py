"""Schema migrations, run from code: `await upgrade(url)` at start-up brings the store to `HEAD`.

The Alembic scripts live in the `migrations` package next to this module; Alembic is driven
through its API with a connection we open, so no `alembic.ini` is needed, Alembic never touches
the logging configuration, and the URL (which may hold a password) never reaches its config.

Several replicas may start at once. On PostgreSQL the upgrade holds a transaction-scoped advisory
lock, and on SQLite it opens the transaction with `BEGIN IMMEDIATE` (the write lock), so one
replica migrates while the others wait and then find nothing left to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.engine import create_engine

#: The newest revision in `migrations/versions` (a test checks it against the scripts).
HEAD = "0002"

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: Any constant shared by every replica: the key of the PostgreSQL advisory lock.
_MIGRATION_LOCK_KEY = 0x61696777  # "aigw"


async def upgrade(url: str, *, schema: str | None = None) -> str:
    """Apply every pending migration to the database at `url`; returns the revision now current.

    Applying it to a database already at `HEAD` changes nothing. `schema` is passed to
    `create_engine` (PostgreSQL only).
    """
    engine = create_engine(url, schema=schema)
    try:
        async with engine.connect() as connection:
            await _begin_exclusive(connection)
            await connection.run_sync(_upgrade_to_head)
            revision = await connection.run_sync(_current_revision)
            await connection.commit()
    finally:
        await engine.dispose()
    if revision is None:  # alembic has just stamped it: cannot happen
        raise RuntimeError("migrations ran but no revision is recorded")
    return revision


async def current_revision(url: str, *, schema: str | None = None) -> str | None:
    """The revision the database at `url` is at, or None when it was never migrated."""
    engine = create_engine(url, schema=schema)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_revision)
    finally:
        await engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config for our scripts; `connection` is the one `env.py` migrates on."""
    config = Config(attributes={"connection": connection} if connection is not None else None)
    # Config values go through configparser interpolation, where "%" is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


async def _begin_exclusive(connection: AsyncConnection) -> None:
    if connection.dialect.name == "sqlite":
        # The sqlite3 module would only open a transaction at the first INSERT, leaving the
        # DDL outside it; opening it ourselves makes the upgrade atomic and takes the lock now.
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
        )


def _upgrade_to_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
