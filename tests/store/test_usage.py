"""Usage sums per tenant, UTC day, model and what answered; spend for budgets; on both databases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.ledger import write_records
from gateway.store.repository import UsageRow, spend_since, usage_by_model_and_day
from tests.store.rows import make_record

DAY1 = datetime(2025, 3, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
#: 00:30 on day 2 in UTC, written as 19:30 on day 1 in New York.
NEW_YORK = timezone(timedelta(hours=-5))
LATE_IN_NEW_YORK = datetime(2025, 3, 1, 19, 30, tzinfo=NEW_YORK)


@pytest.fixture(autouse=True)
async def ledger(engine: AsyncEngine) -> None:
    """Six calls over two days, two models, two tenants, plus one outside the window."""
    await write_records(
        engine,
        [
            make_record(1, model="gpt-4o", started_at=DAY1 + timedelta(hours=1), cost_usd=0.01),
            make_record(2, model="gpt-4o", started_at=DAY1 + timedelta(hours=23), cost_usd=0.02),
            make_record(
                3,
                model="claude",
                provider="anthropic",
                started_at=DAY1 + timedelta(hours=2),
                cost_usd=0.5,
                prompt_tokens=100,
                completion_tokens=50,
                cached_tokens=20,
            ),
            make_record(4, model="gpt-4o", started_at=LATE_IN_NEW_YORK, cost_usd=0.04),
            make_record(5, model="gpt-4o", started_at=DAY2 + timedelta(hours=5), cost_usd=0.08),
            make_record(6, tenant_id="globex", started_at=DAY1, cost_usd=1.0, api_key_id="k2"),
            make_record(7, started_at=DAY2 + timedelta(days=1), cost_usd=100.0),
        ],
    )


async def test_usage_is_summed_per_utc_day_model_and_provider(engine: AsyncEngine) -> None:
    rows = await usage_by_model_and_day(
        engine, tenant_id="acme", since=DAY1, until=DAY2 + timedelta(days=1)
    )
    # Sums of floats: compared to the cent's billionth.
    assert [replace(row, cost_usd=round(row.cost_usd, 9)) for row in rows] == [
        UsageRow(
            tenant_id="acme",
            day=date(2025, 3, 1),
            model="claude",
            provider="anthropic",
            provider_model="claude",
            requests=1,
            prompt_tokens=100,
            completion_tokens=50,
            cached_tokens=20,
            reasoning_tokens=0,
            estimated_requests=0,
            cost_usd=0.5,
        ),
        UsageRow(
            tenant_id="acme",
            day=date(2025, 3, 1),
            model="gpt-4o",
            provider="openai",
            provider_model="gpt-4o",
            requests=2,
            prompt_tokens=20,
            completion_tokens=10,
            cached_tokens=0,
            reasoning_tokens=0,
            estimated_requests=0,
            cost_usd=0.03,
        ),
        UsageRow(
            tenant_id="acme",
            day=date(2025, 3, 2),
            model="gpt-4o",
            provider="openai",
            provider_model="gpt-4o",
            requests=2,
            prompt_tokens=20,
            completion_tokens=10,
            cached_tokens=0,
            reasoning_tokens=0,
            estimated_requests=0,
            cost_usd=0.12,
        ),
    ]


async def test_usage_of_all_tenants_keeps_them_apart(engine: AsyncEngine) -> None:
    rows = await usage_by_model_and_day(
        engine, tenant_id=None, since=DAY1, until=DAY2 + timedelta(days=1)
    )
    day1 = [(r.tenant_id, r.requests) for r in rows if r.day == date(2025, 3, 1)]
    assert sorted(day1) == [("acme", 1), ("acme", 2), ("globex", 1)]


async def test_usage_window_excludes_its_end(engine: AsyncEngine) -> None:
    rows = await usage_by_model_and_day(engine, tenant_id="acme", since=DAY2, until=DAY2)
    assert rows == []


async def test_spend_since_sums_a_tenants_cost(engine: AsyncEngine) -> None:
    assert await spend_since(
        engine, tenant_id="acme", api_key_id=None, since=DAY2
    ) == pytest.approx(0.04 + 0.08 + 100.0)
    assert await spend_since(
        engine, tenant_id="acme", api_key_id=None, since=DAY1
    ) == pytest.approx(100.65)


async def test_spend_since_can_narrow_to_one_key(engine: AsyncEngine) -> None:
    assert await spend_since(engine, tenant_id="globex", api_key_id="k2", since=DAY1) == 1.0
    assert await spend_since(engine, tenant_id="globex", api_key_id="k9", since=DAY1) == 0.0


async def test_spend_of_an_unknown_tenant_is_zero(engine: AsyncEngine) -> None:
    assert await spend_since(engine, tenant_id="nobody", api_key_id=None, since=DAY1) == 0.0


async def test_usage_keeps_requested_models_apart_and_names_what_answered(
    engine: AsyncEngine,
) -> None:
    day3 = DAY2 + timedelta(days=2)
    await write_records(
        engine,
        [
            make_record(10, model="fast", provider_model="gpt-4o-mini", started_at=day3),
            make_record(11, model="fast", provider_model="gpt-4o-mini", started_at=day3),
            make_record(
                12, model="openai/gpt-4o-mini", provider_model="gpt-4o-mini", started_at=day3
            ),
            # `fast` fell back to another deployment's model once: a row of its own.
            make_record(
                13, model="fast", provider="anthropic", provider_model="claude", started_at=day3
            ),
        ],
    )
    rows = await usage_by_model_and_day(
        engine, tenant_id="acme", since=day3, until=day3 + timedelta(days=1)
    )
    assert [(r.model, r.provider, r.provider_model, r.requests) for r in rows] == [
        ("fast", "anthropic", "claude", 1),
        ("fast", "openai", "gpt-4o-mini", 2),
        ("openai/gpt-4o-mini", "openai", "gpt-4o-mini", 1),
    ]


async def test_usage_sums_reasoning_tokens_and_counts_estimated_calls(
    engine: AsyncEngine,
) -> None:
    day3 = DAY2 + timedelta(days=2)
    await write_records(
        engine,
        [
            make_record(20, model="o3", started_at=day3, reasoning_tokens=30),
            make_record(21, model="o3", started_at=day3, reasoning_tokens=12),
            make_record(22, model="embed", started_at=day3, usage_estimated=True),
            make_record(23, model="embed", started_at=day3, usage_estimated=True),
            make_record(24, model="embed", started_at=day3),
        ],
    )
    rows = await usage_by_model_and_day(
        engine, tenant_id="acme", since=day3, until=day3 + timedelta(days=1)
    )
    assert [(r.model, r.requests, r.reasoning_tokens, r.estimated_requests) for r in rows] == [
        ("embed", 3, 0, 2),
        ("o3", 2, 42, 0),
    ]
