"""Reports over the request ledger: usage per tenant, UTC day and model; spend so far.

A usage row is the model as requested *and* the deployment and model that answered it, so `fast`
(an alias) and `openai/gpt-4o-mini` stay apart as asked yet show they reached the same model.

Both run on SQLite and PostgreSQL. The one difference is the day: PostgreSQL truncates the
`timestamptz` after converting it to UTC, SQLite takes the date of the UTC text it stores.
Windows are half-open, `since <= started_at < until`, on the time the call started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Date, case, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.models import requests
from gateway.store.values import from_money, to_utc


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRow:
    """Usage of one requested model, as one deployment's model, by one tenant on one UTC day."""

    tenant_id: str
    day: date
    model: str
    #: The deployment that served the calls; None for calls no deployment served.
    provider: str | None
    #: The model that deployment was asked for (after aliases and fallbacks); None likewise.
    provider_model: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    #: Completion tokens spent on reasoning (a part of `completion_tokens`).
    reasoning_tokens: int
    #: Calls whose token counts are the gateway's estimate (the provider reported none).
    estimated_requests: int
    cost_usd: float


async def usage_by_model_and_day(
    engine: AsyncEngine, *, tenant_id: str | None, since: datetime, until: datetime
) -> list[UsageRow]:
    """Usage between `since` and `until`, per tenant (or just `tenant_id`), day, requested
    model, deployment and the deployment's model.

    Rows come ordered by day, tenant, requested model, deployment and the deployment's model.
    """
    day = _utc_day(engine.dialect.name)
    keys = (
        requests.c.tenant_id,
        day,
        requests.c.model,
        requests.c.provider,
        requests.c.provider_model,
    )
    query = (
        select(
            *keys,
            func.count().label("requests"),
            func.sum(requests.c.prompt_tokens).label("prompt_tokens"),
            func.sum(requests.c.completion_tokens).label("completion_tokens"),
            func.sum(requests.c.cached_tokens).label("cached_tokens"),
            func.sum(requests.c.reasoning_tokens).label("reasoning_tokens"),
            func.sum(case((requests.c.usage_estimated, 1), else_=0)).label("estimated_requests"),
            func.sum(requests.c.cost_usd).label("cost_usd"),
        )
        .where(requests.c.started_at >= to_utc(since), requests.c.started_at < to_utc(until))
        .group_by(*keys)
        .order_by(day, *(key for key in keys if key is not day))
    )
    if tenant_id is not None:
        query = query.where(requests.c.tenant_id == tenant_id)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [_usage_row(row._mapping) for row in rows]


async def spend_since(
    engine: AsyncEngine, *, tenant_id: str, api_key_id: str | None, since: datetime
) -> float:
    """USD spent by `tenant_id` (only through `api_key_id`, when given) since `since`."""
    query = select(func.sum(requests.c.cost_usd)).where(
        requests.c.tenant_id == tenant_id, requests.c.started_at >= to_utc(since)
    )
    if api_key_id is not None:
        query = query.where(requests.c.api_key_id == api_key_id)
    async with engine.connect() as connection:
        total = (await connection.execute(query)).scalar_one()
    return from_money(total) or 0.0


def _utc_day(dialect_name: str) -> ColumnElement[date]:
    started_at = requests.c.started_at
    if dialect_name == "sqlite":
        return func.date(started_at, type_=Date).label("day")
    # A literal, not a bound parameter: GROUP BY must repeat the SELECT's expression exactly.
    in_utc = func.timezone(literal_column("'UTC'"), started_at)
    return cast(in_utc, Date).label("day")


def _usage_row(row: Any) -> UsageRow:
    return UsageRow(
        tenant_id=row["tenant_id"],
        day=row["day"],
        model=row["model"],
        provider=row["provider"],
        provider_model=row["provider_model"],
        requests=int(row["requests"]),
        prompt_tokens=int(row["prompt_tokens"]),
        completion_tokens=int(row["completion_tokens"]),
        cached_tokens=int(row["cached_tokens"]),
        reasoning_tokens=int(row["reasoning_tokens"]),
        estimated_requests=int(row["estimated_requests"]),
        cost_usd=from_money(row["cost_usd"]) or 0.0,
    )
