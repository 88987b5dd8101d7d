"""Writing `RequestRecord`s to the `requests` and `provider_attempts` tables, idempotently.

Both inserts are "insert, ignore if present" (`ON CONFLICT DO NOTHING` on either database), so
a batch sent again — because the connection broke after the database committed but before we
heard, or because a spilled row is replayed — is stored exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.engine import sqlite_sync_engine
from gateway.store.models import provider_attempts, requests
from gateway.store.records import RequestRecord
from gateway.store.values import to_money, to_utc

_INSERTS: dict[str, Callable[[Table], Any]] = {
    "sqlite": sqlite_insert,
    "postgresql": postgresql_insert,
}


async def write_records(engine: AsyncEngine, records: Sequence[RequestRecord]) -> None:
    """Store `records` and their attempts in one transaction; rows already stored are skipped."""
    async with engine.begin() as connection:
        await insert_records(connection, records)


async def insert_records(connection: AsyncConnection, records: Sequence[RequestRecord]) -> None:
    """Insert `records` and their attempts on `connection`, ignoring rows already present."""
    for statement, rows in _inserts(connection.dialect.name, records):
        await connection.execute(statement, rows)


def _inserts(dialect: str, records: Sequence[RequestRecord]) -> list[tuple[Any, list[Any]]]:
    """The insert-or-ignore statements that store `records`, each with its rows."""
    if not records:
        return []
    insert = _INSERTS[dialect]
    # Requests first: each attempt row refers to its request row.
    statements = [(insert(requests).on_conflict_do_nothing(), [request_row(r) for r in records])]
    attempts = [row for record in records for row in attempt_rows(record)]
    if attempts:
        statements.append((insert(provider_attempts).on_conflict_do_nothing(), attempts))
    return statements


class Ledger:
    """Where a `UsageWriter` stores its batches: `write_records` on the engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @staticmethod
    def for_engine(engine: AsyncEngine) -> Ledger:
        """The ledger for `engine`: `SqliteLedger` for a SQLite file, else this one."""
        if engine.dialect.name == "sqlite":
            sync = sqlite_sync_engine(engine)
            if sync is not None:
                return SqliteLedger(sync)
        return Ledger(engine)

    async def write(self, records: Sequence[RequestRecord]) -> None:
        """Store `records` exactly once (rows already stored are skipped)."""
        await write_records(self._engine, records)

    async def aclose(self) -> None:
        """Release what this ledger holds (the engine is the caller's)."""


class SqliteLedger(Ledger):
    """Writes each batch whole on a thread of its own: one hop per batch, not one per statement.

    Through aiosqlite every statement, begin and commit is a hop to its thread and back, each
    waiting on a busy event loop; here a batch's inserts and commit run together on the sync
    engine, as `write_records` would run them.
    """

    def __init__(self, engine: Engine) -> None:
        self._sync = engine
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")

    async def write(self, records: Sequence[RequestRecord]) -> None:
        """Store `records` exactly once, on the ledger's thread."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._write, records)

    def _write(self, records: Sequence[RequestRecord]) -> None:
        with self._sync.begin() as connection:
            for statement, rows in _inserts(connection.dialect.name, records):
                connection.execute(statement, rows)

    async def aclose(self) -> None:
        """Close the engine's connections (on its thread, after any write), then the thread."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._sync.dispose)
        finally:
            self._thread.shutdown(wait=False)


def request_row(record: RequestRecord) -> dict[str, Any]:
    """The `requests` row for `record`."""
    return {
        "id": record.id,
        "request_id": record.request_id,
        "tenant_id": record.tenant_id,
        "api_key_id": record.api_key_id,
        "transport": record.transport,
        "rpc": record.rpc,
        "model": record.model,
        "provider": record.provider,
        "provider_model": record.provider_model,
        "status": record.status,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "total_tokens": record.total_tokens,
        "cached_tokens": record.cached_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": to_money(record.cost_usd),
        "cached": record.cached,
        "latency_ms": record.latency_ms,
        "started_at": to_utc(record.started_at),
        "finished_at": to_utc(record.finished_at),
    }


def attempt_rows(record: RequestRecord) -> list[dict[str, Any]]:
    """The `provider_attempts` rows for `record`, one per try."""
    return [
        {
            "request_row_id": record.id,
            "attempt": attempt.attempt,
            "provider": attempt.provider,
            "model": attempt.model,
            "outcome": attempt.outcome,
            "error_code": attempt.error_code,
            "latency_ms": attempt.latency_ms,
        }
        for attempt in record.attempts
    ]
