"""Tenants and API keys: who may call the gateway, and with what limits.

An API key is `aigw_` followed by 32 random bytes (URL-safe base64). It is shown once, when made;
the store keeps its SHA-256 (to find it again) and its first characters (to recognise it in a
listing), never the key itself. Looking a key up by its hash leaks nothing worth a timing attack.

The usage reports (`usage_by_model_and_day`, `spend_since`) are written in `gateway.store.usage`
and offered here too, so the rest of the gateway reads the store through this one module.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.models import api_keys, tenants
from gateway.store.usage import UsageRow, spend_since, usage_by_model_and_day
from gateway.store.values import from_money, to_money, to_utc

__all__ = [
    "KEY_SCHEME",
    "ApiKeyInfo",
    "UsageRow",
    "create_api_key",
    "ensure_tenant",
    "find_api_key",
    "key_hash",
    "list_api_keys",
    "revoke_api_key",
    "set_tenant_limits",
    "spend_since",
    "usage_by_model_and_day",
]

KEY_SCHEME = "aigw_"
KEY_RANDOM_BYTES = 32
#: How much of a key is kept for display: the scheme and 7 random characters.
PREFIX_CHARS = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyInfo:
    """An API key as the store knows it (never the key itself), with its tenant's limits.

    A limit of None means "no limit at this level"; the key's own limits apply on top of the
    tenant's.
    """

    id: str
    tenant_id: str
    name: str
    #: The key's first characters, to recognise it in a listing.
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    monthly_budget_usd: float | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    tenant_monthly_budget_usd: float | None
    tenant_requests_per_minute: int | None
    tenant_tokens_per_minute: int | None


async def ensure_tenant(engine: AsyncEngine, tenant_id: str, *, name: str = "") -> None:
    """Create tenant `tenant_id` unless it exists (an existing tenant is left as it is)."""
    async with engine.begin() as connection:
        await _ensure_tenant(connection, tenant_id, name)


async def set_tenant_limits(
    engine: AsyncEngine,
    tenant_id: str,
    *,
    monthly_budget_usd: float | None,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
) -> None:
    """Set the tenant's limits (None lifts one), creating the tenant if needed."""
    async with engine.begin() as connection:
        await _ensure_tenant(connection, tenant_id, "")
        await connection.execute(
            update(tenants)
            .where(tenants.c.id == tenant_id)
            .values(
                monthly_budget_usd=to_money(monthly_budget_usd),
                requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute,
            )
        )


async def create_api_key(
    engine: AsyncEngine,
    tenant_id: str,
    *,
    name: str = "",
    monthly_budget_usd: float | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
) -> tuple[ApiKeyInfo, str]:
    """Make a key for `tenant_id` (creating the tenant if needed): its info and the key itself.

    The key is returned this once and cannot be recovered: hand it to its owner, never log it.
    """
    secret = KEY_SCHEME + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    key_id = "key_" + uuid.uuid4().hex
    async with engine.begin() as connection:
        await _ensure_tenant(connection, tenant_id, "")
        await connection.execute(
            api_keys.insert().values(
                id=key_id,
                tenant_id=tenant_id,
                name=name,
                prefix=secret[:PREFIX_CHARS],
                key_hash=key_hash(secret),
                monthly_budget_usd=to_money(monthly_budget_usd),
                requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute,
                created_at=_now(),
            )
        )
        row = (await connection.execute(_keys().where(api_keys.c.id == key_id))).one()
    return _info(row._mapping), secret


async def list_api_keys(engine: AsyncEngine, tenant_id: str | None) -> list[ApiKeyInfo]:
    """Every key of `tenant_id` (of all tenants when None), revoked ones too, oldest first."""
    query = _keys().order_by(api_keys.c.created_at, api_keys.c.id)
    if tenant_id is not None:
        query = query.where(api_keys.c.tenant_id == tenant_id)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [_info(row._mapping) for row in rows]


async def revoke_api_key(engine: AsyncEngine, key_id: str) -> bool:
    """Revoke key `key_id`; False when there is no such key or it was already revoked."""
    async with engine.begin() as connection:
        result = await connection.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=_now())
        )
    return bool(result.rowcount == 1)


async def find_api_key(engine: AsyncEngine, secret: str) -> ApiKeyInfo | None:
    """The key whose secret is `secret`, or None when it is unknown or revoked."""
    if not secret.startswith(KEY_SCHEME):
        return None
    query = _keys().where(api_keys.c.key_hash == key_hash(secret), api_keys.c.revoked_at.is_(None))
    async with engine.connect() as connection:
        row = (await connection.execute(query)).one_or_none()
    return None if row is None else _info(row._mapping)


def key_hash(secret: str) -> str:
    """The SHA-256 hex digest the store keeps in place of the key."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def _ensure_tenant(connection: AsyncConnection, tenant_id: str, name: str) -> None:
    # Insert-or-ignore rather than look-then-insert: no race between replicas, and on SQLite the
    # transaction takes the write lock with its first statement instead of upgrading later.
    insert = sqlite_insert if connection.dialect.name == "sqlite" else postgresql_insert
    await connection.execute(
        insert(tenants)
        .values(id=tenant_id, name=name, created_at=_now())
        .on_conflict_do_nothing(index_elements=[tenants.c.id])
    )


def _keys() -> Select[Any]:
    return select(
        api_keys.c.id,
        api_keys.c.tenant_id,
        api_keys.c.name,
        api_keys.c.prefix,
        api_keys.c.created_at,
        api_keys.c.revoked_at,
        api_keys.c.monthly_budget_usd,
        api_keys.c.requests_per_minute,
        api_keys.c.tokens_per_minute,
        tenants.c.monthly_budget_usd.label("tenant_monthly_budget_usd"),
        tenants.c.requests_per_minute.label("tenant_requests_per_minute"),
        tenants.c.tokens_per_minute.label("tenant_tokens_per_minute"),
    ).join_from(api_keys, tenants, api_keys.c.tenant_id == tenants.c.id)


def _info(row: Any) -> ApiKeyInfo:
    revoked_at = row["revoked_at"]
    return ApiKeyInfo(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=to_utc(row["created_at"]),
        revoked_at=None if revoked_at is None else to_utc(revoked_at),
        monthly_budget_usd=from_money(row["monthly_budget_usd"]),
        requests_per_minute=row["requests_per_minute"],
        tokens_per_minute=row["tokens_per_minute"],
        tenant_monthly_budget_usd=from_money(row["tenant_monthly_budget_usd"]),
        tenant_requests_per_minute=row["tenant_requests_per_minute"],
        tenant_tokens_per_minute=row["tenant_tokens_per_minute"],
    )


def _now() -> datetime:
    return datetime.now(UTC)
