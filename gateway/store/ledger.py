"""Writing `RequestRecord`s to the `requests` and `provider_attempts` tables, idempotently.

Both inserts are "insert, ignore if present" (`ON CONFLICT DO NOTHING` on either database), so
a batch sent again — because the connection broke after the database committed but before we
heard, or because a spilled row is replayed — is stored exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
    if not records:
        return
    insert = _INSERTS[connection.dialect.name]
    # Requests first: each attempt row refers to its request row.
    await connection.execute(
        insert(requests).on_conflict_do_nothing(), [request_row(r) for r in records]
    )
    attempts = [row for record in records for row in attempt_rows(record)]
    if attempts:
        await connection.execute(insert(provider_attempts).on_conflict_do_nothing(), attempts)


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
