"""The admin API (tenants, API keys) and the usage reports, over the store.

Both transports call these, as they call the completion core: no rule lives in a transport.
Admin calls need the admin token; usage reports show the caller's own tenant, or any tenant to
the admin. Requests and answers are our own values (below, and the store's `ApiKeyInfo` and
`UsageRow`); the transports convert them to and from their wire formats.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import InvalidArgumentError, NotFoundError, PermissionDeniedError
from gateway.store import repository
from gateway.store.repository import ApiKeyInfo
from gateway.store.usage import UsageRow, usage_by_model_and_day
from gateway.tenancy.auth import Authenticator, Identity

USAGE_DEFAULT_DAYS = 30
MAX_TENANT_CHARS = 64
MAX_KEY_NAME_CHARS = 200
#: The largest monthly budget: the store keeps USD as NUMERIC(18, 10), below 10**8.
MAX_BUDGET_USD = 99_999_999
#: The largest per-minute limit (the proto's int32).
MAX_PER_MINUTE = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's or a tenant's limits as asked for; None leaves that limit off (checked here)."""

    monthly_budget_usd: float | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new API key, and its secret: shown this once, never stored."""

    key: ApiKeyInfo
    secret: str


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """Whose usage, over which period: `tenant` "" is the caller's own (or all, for the admin);
    `since` None is the report's default start, `until` None is now."""

    tenant: str = ""
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Cost:
    """Calls and spend of one model or one day."""

    name: str
    requests: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class Costs:
    """Spend over a period: in total, by model (largest first) and by day (in order)."""

    total_cost_usd: float
    models: tuple[Cost, ...]
    days: tuple[Cost, ...]


class AdminCore:
    """Admin calls and usage reports."""

    def __init__(self, engine: AsyncEngine, authenticator: Authenticator) -> None:
        self._engine = engine
        self._auth = authenticator

    async def authenticate(self, authorization: str | None) -> Identity:
        """The caller behind `authorization` (`UnauthenticatedError` when it does not hold)."""
        return await self._auth.authenticate(authorization)

    async def create_api_key(
        self, tenant: str, name: str, limits: Limits, authorization: str | None
    ) -> CreatedKey:
        """A new key for a tenant; its secret is returned this once."""
        self._require_admin(authorization)
        tenant = _tenant(tenant)
        if len(name) > MAX_KEY_NAME_CHARS:
            raise InvalidArgumentError(f"name: at most {MAX_KEY_NAME_CHARS} characters")
        info, secret = await repository.create_api_key(
            self._engine,
            tenant,
            name=name,
            monthly_budget_usd=_budget(limits.monthly_budget_usd),
            requests_per_minute=_per_minute(limits.requests_per_minute, "requests_per_minute"),
            tokens_per_minute=_per_minute(limits.tokens_per_minute, "tokens_per_minute"),
        )
        return CreatedKey(info, secret)

    async def list_api_keys(self, tenant: str, authorization: str | None) -> list[ApiKeyInfo]:
        """Keys of a tenant ("" for all tenants); never their secrets."""
        self._require_admin(authorization)
        return await repository.list_api_keys(self._engine, tenant or None)

    async def revoke_api_key(self, key_id: str, authorization: str | None) -> str:
        """Revoke a key (every replica refuses it within seconds); returns its id."""
        self._require_admin(authorization)
        if not key_id:
            raise InvalidArgumentError("id: required")
        if not await repository.revoke_api_key(self._engine, key_id):
            raise NotFoundError(f"no active API key with id {key_id!r}")
        return key_id

    async def set_tenant_limits(
        self, tenant: str, limits: Limits, authorization: str | None
    ) -> str:
        """Set a tenant's rate limits and monthly budget (unset ones clear them); returns it."""
        self._require_admin(authorization)
        tenant = _tenant(tenant)
        budget = _budget(limits.monthly_budget_usd)
        rpm = _per_minute(limits.requests_per_minute, "requests_per_minute")
        tpm = _per_minute(limits.tokens_per_minute, "tokens_per_minute")
        await repository.set_tenant_limits(
            self._engine,
            tenant,
            monthly_budget_usd=budget,
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
        )
        return tenant

    async def get_usage(self, query: ReportQuery, authorization: str | None) -> list[UsageRow]:
        """Requests, tokens and cost by tenant, day, requested model and the deployment's model."""
        tenant = await self._report_scope(query.tenant, authorization)
        since, until = _period(query, default_since=_days_ago(USAGE_DEFAULT_DAYS))
        return await usage_by_model_and_day(
            self._engine, tenant_id=tenant, since=since, until=until
        )

    async def get_costs(self, query: ReportQuery, authorization: str | None) -> Costs:
        """Spend in total, by model and by day."""
        tenant = await self._report_scope(query.tenant, authorization)
        since, until = _period(query, default_since=_month_start())
        rows = await usage_by_model_and_day(
            self._engine, tenant_id=tenant, since=since, until=until
        )
        by_model: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        by_day: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for row in rows:
            for bucket in (by_model[row.model], by_day[row.day.isoformat()]):
                bucket[0] += row.requests
                bucket[1] += row.cost_usd
        models = sorted(by_model.items(), key=lambda item: -item[1][1])
        return Costs(
            total_cost_usd=sum(row.cost_usd for row in rows),
            models=tuple(Cost(n, int(r), c) for n, (r, c) in models),
            days=tuple(Cost(n, int(r), c) for n, (r, c) in sorted(by_day.items())),
        )

    async def _report_scope(self, requested: str, authorization: str | None) -> str | None:
        """The tenant a report may show: the caller's own, or any (None: all) for the admin."""
        if self._auth.is_admin_token(authorization):
            return requested or None
        identity: Identity = await self._auth.authenticate(authorization)
        tenant = identity.tenant_for("")
        if requested and requested != tenant:
            raise PermissionDeniedError("only the admin token may read another tenant's usage")
        return tenant

    def _require_admin(self, authorization: str | None) -> None:
        if not self._auth.is_admin_token(authorization):
            raise PermissionDeniedError("this call needs the admin token (ADMIN_TOKEN)")


def _tenant(value: str) -> str:
    tenant = value.strip()
    if not tenant or len(tenant) > MAX_TENANT_CHARS:
        raise InvalidArgumentError(f"tenant: required, at most {MAX_TENANT_CHARS} characters")
    return tenant


def _budget(value: float | None) -> float | None:
    """A monthly budget in USD from 0 to `MAX_BUDGET_USD`; None when unset (no budget)."""
    if value is None:
        return None
    # NaN compares false with everything: `not (a <= v <= b)` refuses it too.
    if not (math.isfinite(value) and 0 <= value <= MAX_BUDGET_USD):
        raise InvalidArgumentError(
            f"monthly_budget_usd: must be a number of US dollars from 0 to {MAX_BUDGET_USD}, "
            f"got {value!r} (leave it out for no budget)"
        )
    return value


def _per_minute(value: int | None, field: str) -> int | None:
    """A per-minute limit from 1 to `MAX_PER_MINUTE`; None when unset (no limit)."""
    if value is None:
        return None
    if not 1 <= value <= MAX_PER_MINUTE:
        raise InvalidArgumentError(
            f"{field}: must be a whole number from 1 to {MAX_PER_MINUTE}, got {value}"
            " (leave it out for no limit)"
        )
    return value


def _period(query: ReportQuery, *, default_since: datetime) -> tuple[datetime, datetime]:
    since = query.since or default_since
    until = query.until or datetime.now(UTC)
    if until <= since:
        raise InvalidArgumentError("until: must be after since")
    return since, until


def _days_ago(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def _month_start() -> datetime:
    return datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
