"""Database URLs and engines: the one place that knows SQLite and PostgreSQL connect differently.

Users write the URLs they know (`postgresql://…`, `postgres://…`, `sqlite:///usage.db`); the store
runs on asyncio drivers, so `database_url` rewrites them to `postgresql+asyncpg://` and
`sqlite+aiosqlite://`. URLs may carry a password: nothing here puts one in a message or a log.

SQLite connections get WAL journal mode (readers do not block the writer), a busy timeout (a
writer waits for the lock instead of failing at once) and foreign keys on. PostgreSQL gets a
small pool with pre-ping and a short connect timeout, so an outage is noticed in seconds.
"""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 5000
_WAL_RETRY_SECONDS = 0.02
POSTGRES_POOL_SIZE = 5
POSTGRES_MAX_OVERFLOW = 5
POSTGRES_POOL_TIMEOUT_SECONDS = 10.0
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5.0
POSTGRES_COMMAND_TIMEOUT_SECONDS = 30.0
APPLICATION_NAME = "ai-gateway"

_ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def database_url(raw: str) -> str:
    """`raw` with its driver made async: asyncpg for PostgreSQL, aiosqlite for SQLite.

    `postgres://` is accepted as an alias of `postgresql://`, and libpq's `sslmode` query
    parameter becomes asyncpg's `ssl`. A URL that already names a driver is returned unchanged.
    Raises ValueError for any other database (the message never repeats the URL).
    """
    url = make_url(raw)
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"the usage store needs PostgreSQL or SQLite, not {backend!r}")
    if driver:
        return raw
    url = url.set(drivername=_ASYNC_DRIVERS[backend])
    if backend == "postgresql" and "sslmode" in url.query and "ssl" not in url.query:
        url = url.update_query_dict({"ssl": url.query["sslmode"]}).difference_update_query(
            ["sslmode"]
        )
    return url.render_as_string(hide_password=False)


def create_engine(url: str, *, schema: str | None = None) -> AsyncEngine:
    """An engine for `url` (normalised with `database_url`), tuned for its backend.

    `schema` (PostgreSQL only) puts that schema first on every connection's `search_path`, so
    the tables are created and found there: how tests keep to themselves on a shared database.
    """
    parsed = make_url(database_url(url))
    if parsed.get_backend_name() == "sqlite":
        if schema is not None:
            raise ValueError("SQLite has no schemas")
        return _sqlite_engine(parsed.render_as_string(hide_password=False))
    return _postgres_engine(parsed.render_as_string(hide_password=False), schema)


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_pre_ping=True)
    event.listen(engine.sync_engine, "connect", _configure_sqlite)
    return engine


def sqlite_sync_engine(engine: AsyncEngine) -> Engine | None:
    """A plain (pysqlite) engine on the same SQLite file as `engine`; None for a memory database.

    For work that is better done whole on a thread of its own than statement by statement
    through aiosqlite's thread (`gateway.store.ledger.SqliteLedger`).
    """
    url = engine.url
    database = url.database or ""
    if database in ("", ":memory:") or "mode=memory" in str(url.query):
        return None
    sync = create_sync_engine(url.set(drivername="sqlite"), pool_pre_ping=True)
    event.listen(sync, "connect", _configure_sqlite)
    return sync


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # PRAGMAs are per connection, so every new connection gets them before first use.
    cursor = dbapi_connection.cursor()
    try:
        # The busy timeout first: switching to WAL takes a lock, and without a timeout a
        # connection opened while another process holds it fails at once ("database is locked").
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    # SQLite does not always call the busy handler while changing the journal mode: a replica
    # connecting while another converts a new file (or holds its write lock) can get "database
    # is locked" at once. The mode is persistent, so a file already in WAL needs no change, and
    # a conversion that meets a lock is tried again until the busy timeout has passed.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            mode = cursor.fetchone()
            if mode is not None and str(mode[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_SECONDS)


def _postgres_engine(url: str, schema: str | None) -> AsyncEngine:
    server_settings = {"application_name": APPLICATION_NAME}
    if schema is not None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError("schema must be a plain SQL identifier")
        server_settings["search_path"] = schema
    return create_async_engine(
        url,
        pool_size=POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_MAX_OVERFLOW,
        pool_timeout=POSTGRES_POOL_TIMEOUT_SECONDS,
        pool_pre_ping=True,
        connect_args={
            "timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
            "command_timeout": POSTGRES_COMMAND_TIMEOUT_SECONDS,
            "server_settings": server_settings,
        },
    )
