"""API keys are made, found, listed and revoked; only their hash and prefix are stored."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.models import api_keys, tenants
from gateway.store.repository import (
    KEY_SCHEME,
    create_api_key,
    ensure_tenant,
    find_api_key,
    key_hash,
    list_api_keys,
    revoke_api_key,
    set_tenant_limits,
)


async def test_a_new_key_is_found_by_its_secret(engine: AsyncEngine) -> None:
    info, secret = await create_api_key(engine, "acme", name="ci", requests_per_minute=60)

    assert secret.startswith(KEY_SCHEME)
    assert len(secret) > 40
    assert info.prefix == secret[: len(info.prefix)]
    assert await find_api_key(engine, secret) == info
    assert (info.tenant_id, info.name, info.requests_per_minute, info.revoked_at) == (
        "acme",
        "ci",
        60,
        None,
    )


@pytest.mark.parametrize("secret", ["aigw_unknown", "not-even-ours", ""])
async def test_an_unknown_secret_finds_nothing(engine: AsyncEngine, secret: str) -> None:
    await create_api_key(engine, "acme")
    assert await find_api_key(engine, secret) is None


async def test_a_revoked_key_is_no_longer_found(engine: AsyncEngine) -> None:
    info, secret = await create_api_key(engine, "acme")

    assert await revoke_api_key(engine, info.id) is True
    assert await find_api_key(engine, secret) is None
    [listed] = await list_api_keys(engine, "acme")
    assert listed.revoked_at is not None
    assert listed.revoked_at >= info.created_at


async def test_revoking_twice_or_an_unknown_key_reports_false(engine: AsyncEngine) -> None:
    info, _ = await create_api_key(engine, "acme")
    await revoke_api_key(engine, info.id)

    assert await revoke_api_key(engine, info.id) is False
    assert await revoke_api_key(engine, "key_nope") is False


async def test_listing_shows_one_tenants_keys_or_everyones(engine: AsyncEngine) -> None:
    first, _ = await create_api_key(engine, "acme", name="one")
    second, _ = await create_api_key(engine, "acme", name="two")
    other, _ = await create_api_key(engine, "globex")

    assert await list_api_keys(engine, "acme") == [first, second]
    assert {info.id for info in await list_api_keys(engine, None)} == {
        first.id,
        second.id,
        other.id,
    }
    assert await list_api_keys(engine, "nobody") == []


async def test_the_secret_is_neither_stored_nor_shown(engine: AsyncEngine) -> None:
    info, secret = await create_api_key(engine, "acme")
    found = await find_api_key(engine, secret)
    async with engine.connect() as connection:
        stored = (await connection.execute(select(api_keys))).one()

    assert secret not in repr(info)
    assert secret not in repr(found)
    assert secret not in repr(await list_api_keys(engine, "acme"))
    assert key_hash(secret) not in repr(info)
    assert secret not in [str(value) for value in stored]
    assert stored.key_hash == key_hash(secret)


async def test_a_key_carries_its_tenants_limits(engine: AsyncEngine) -> None:
    await set_tenant_limits(
        engine, "acme", monthly_budget_usd=250.5, requests_per_minute=600, tokens_per_minute=None
    )
    info, secret = await create_api_key(engine, "acme", monthly_budget_usd=10.25)

    assert (info.monthly_budget_usd, info.requests_per_minute) == (10.25, None)
    assert (
        info.tenant_monthly_budget_usd,
        info.tenant_requests_per_minute,
        info.tenant_tokens_per_minute,
    ) == (250.5, 600, None)

    await set_tenant_limits(
        engine, "acme", monthly_budget_usd=None, requests_per_minute=None, tokens_per_minute=9000
    )
    found = await find_api_key(engine, secret)
    assert found is not None
    assert (found.tenant_monthly_budget_usd, found.tenant_tokens_per_minute) == (None, 9000)


async def test_ensuring_a_tenant_twice_keeps_the_first(engine: AsyncEngine) -> None:
    await ensure_tenant(engine, "acme", name="Acme Corp")
    await ensure_tenant(engine, "acme", name="Renamed")
    async with engine.connect() as connection:
        rows = (await connection.execute(select(tenants.c.id, tenants.c.name))).all()

    assert [tuple(row) for row in rows] == [("acme", "Acme Corp")]


async def test_creating_a_key_creates_its_tenant(engine: AsyncEngine) -> None:
    await create_api_key(engine, "new-tenant")
    async with engine.connect() as connection:
        ids = (await connection.execute(select(tenants.c.id))).scalars().all()

    assert list(ids) == ["new-tenant"]
