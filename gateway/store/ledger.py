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

from sqlalchemy import Dialect, Engine, Table
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
    """Writes each batch whole on a thread of its own, as a few multi-row INSERTs.

    Through aiosqlite every statement, begin and commit is a hop to its thread and back, and
    SQLite's driver lets go of the GIL around every statement it runs (for `executemany`: every
    row) and must take it back after: with a busy event loop in the same process each take-back
    waits up to a switch interval (5 ms). Under load a 500-row batch took ~300 ms, fewer rows a
    second than one worker serves, and the backlog went to the spill file. Here a batch is one
    hop, and its rows go `ROWS_PER_STATEMENT` to a statement, converted by each column's own
    bind processor (what SQLAlchemy itself would store) instead of its per-row machinery.
    """

    #: Rows per INSERT statement (19 parameters a request row: far below SQLite's 32,766).
    ROWS_PER_STATEMENT = 100

    def __init__(self, engine: Engine) -> None:
        self._sync = engine
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        self._requests = _MultiRowInsert(requests, engine.dialect)
        self._attempts = _MultiRowInsert(provider_attempts, engine.dialect)

    async def write(self, records: Sequence[RequestRecord]) -> None:
        """Store `records` exactly once, on the ledger's thread."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._write, records)

    def _write(self, records: Sequence[RequestRecord]) -> None:
        if not records:
            return
        attempts = [row for record in records for row in attempt_rows(record)]
        with self._sync.begin() as connection:
            # Requests first: each attempt row refers to its request row.
            for sql, parameters in self._requests.statements(
                [request_row(r) for r in records], self.ROWS_PER_STATEMENT
            ):
                connection.exec_driver_sql(sql, parameters)
            for sql, parameters in self._attempts.statements(attempts, self.ROWS_PER_STATEMENT):
                connection.exec_driver_sql(sql, parameters)

    async def aclose(self) -> None:
        """Close the engine's connections (on its thread, after any write), then the thread."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._sync.dispose)
        finally:
            self._thread.shutdown(wait=False)


class _MultiRowInsert:
    """A table's insert-or-ignore for SQLite, rendered for several rows at once."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        compiled = sqlite_insert(table).on_conflict_do_nothing().compile(dialect=dialect)
        self._keys = tuple(compiled.positiontup or ())
        self._processors = [
            table.c[key].type.dialect_impl(dialect).bind_processor(dialect) for key in self._keys
        ]
        text = str(compiled)
        self._head, rest = text.split(" VALUES ", 1)
        self._group, tail = rest.split(" ON CONFLICT", 1)
        self._tail = " ON CONFLICT" + tail
        self._sql: dict[int, str] = {}

    def statements(
        self, rows: Sequence[dict[str, Any]], per_statement: int
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """(SQL, parameters) for `rows`, `per_statement` rows to a statement."""
        out = []
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            parameters: list[Any] = []
            for row in chunk:
                for key, process in zip(self._keys, self._processors, strict=True):
                    value = row.get(key)
                    parameters.append(value if process is None or value is None else process(value))
            out.append((self._sql_for(len(chunk)), tuple(parameters)))
        return out

    def _sql_for(self, count: int) -> str:
        sql = self._sql.get(count)
        if sql is None:
            groups = ", ".join([self._group] * count)
            sql = self._sql[count] = f"{self._head} VALUES {groups}{self._tail}"
        return sql


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
