"""Test data and look-ups shared by the store's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.engine import create_engine
from gateway.store.models import provider_attempts, requests
from gateway.store.records import AttemptRecord, RequestRecord
from gateway.store.writer import UsageWriter

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Database:
    """Where a test's tables live."""

    kind: str
    url: str
    schema: str | None

    def engine(self) -> AsyncEngine:
        """A new engine on this database (the caller disposes it)."""
        return create_engine(self.url, schema=self.schema)


def make_record(
    number: int,
    *,
    tenant_id: str = "acme",
    api_key_id: str | None = None,
    model: str = "gpt-4o",
    provider: str | None = "openai",
    provider_model: str | None = None,
    started_at: datetime = T0,
    cost_usd: float = 0.001,
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    usage_estimated: bool = False,
    attempts: int = 2,
) -> RequestRecord:
    """Call number `number`: its id is derived from the number, so recording it again repeats it."""
    return RequestRecord(
        id=f"call-{number:06d}",
        request_id=f"req-{number}",
        tenant_id=tenant_id,
        api_key_id=api_key_id,
        transport="grpc",
        rpc="Complete",
        model=model,
        provider=provider,
        provider_model=model if provider_model is None else provider_model,
        status="OK",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        cached_tokens=cached_tokens,
        reasoning_tokens=reasoning_tokens,
        usage_estimated=usage_estimated,
        cost_usd=cost_usd,
        cached=False,
        latency_ms=42,
        started_at=started_at,
        finished_at=started_at + timedelta(milliseconds=42),
        attempts=tuple(
            AttemptRecord(
                attempt=n,
                provider="openai",
                model=model,
                outcome="ok" if n == attempts else "error",
                error_code="" if n == attempts else "UNAVAILABLE",
                latency_ms=10 * n,
            )
            for n in range(1, attempts + 1)
        ),
    )


async def count_rows(engine: AsyncEngine, table: Table) -> int:
    """How many rows `table` holds."""
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


async def stored_ids(engine: AsyncEngine) -> list[str]:
    """The ids in `requests`, sorted, repeats kept (so a duplicate would show)."""
    async with engine.connect() as connection:
        result = await connection.execute(select(requests.c.id).order_by(requests.c.id))
        return list(result.scalars())


async def attempts_per_request(engine: AsyncEngine) -> dict[str, int]:
    """For each stored call id, how many attempt rows it has."""
    query = select(provider_attempts.c.request_row_id, func.count()).group_by(
        provider_attempts.c.request_row_id
    )
    async with engine.connect() as connection:
        return {row[0]: int(row[1]) for row in await connection.execute(query)}


def fast_writer(
    engine: AsyncEngine,
    spill_path: Path,
    *,
    max_pending: int = 50_000,
    batch_size: int = 500,
    write_timeout: float = 10.0,
) -> UsageWriter:
    """A `UsageWriter` with intervals of milliseconds, so tests do not wait on it."""
    return UsageWriter(
        engine,
        spill_path=spill_path,
        max_pending=max_pending,
        batch_size=batch_size,
        flush_interval=0.02,
        retry_interval=0.05,
        write_timeout=write_timeout,
    )


async def eventually(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Wait until `condition()` holds (polled: the writer is watched from outside)."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)
