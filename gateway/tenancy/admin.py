"""The admin API (tenants, API keys) and the usage reports, over the store.

Both transports call these, as they call the completion core: no rule lives in a transport.
Admin calls need the admin token; usage reports show the caller's own tenant, or any tenant to
the admin.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import InvalidArgumentError, NotFoundError, PermissionDeniedError
from gateway.store import repository
from gateway.store.repository import ApiKeyInfo
from gateway.store.usage import UsageRow, usage_by_model_and_day
from gateway.tenancy.auth import Authenticator, Identity
from gateway.v1 import gateway_pb2 as pb

USAGE_DEFAULT_DAYS = 30
MAX_TENANT_CHARS = 64
MAX_KEY_NAME_CHARS = 200
#: The largest monthly budget: the store keeps USD as NUMERIC(18, 10), below 10**8.
MAX_BUDGET_USD = 99_999_999
#: The largest per-minute limit (the proto's int32).
MAX_PER_MINUTE = 2**31 - 1


class AdminCore:
    """Admin calls and usage reports."""

    def __init__(self, engine: AsyncEngine, authenticator: Authenticator) -> None:
        self._engine = engine
        self._auth = authenticator

    async def create_api_key(
        self, request: pb.CreateApiKeyRequest, authorization: str | None
    ) -> pb.CreateApiKeyResponse:
        """A new key for a tenant; its secret is returned this once."""
        self._require_admin(authorization)
        tenant = _tenant(request.tenant)
        if len(request.name) > MAX_KEY_NAME_CHARS:
            raise InvalidArgumentError(f"name: at most {MAX_KEY_NAME_CHARS} characters")
        info, secret = await repository.create_api_key(
            self._engine,
            tenant,
            name=request.name,
            monthly_budget_usd=_budget(request, "monthly_budget_usd"),
            requests_per_minute=_per_minute(request, "requests_per_minute"),
            tokens_per_minute=_per_minute(request, "tokens_per_minute"),
        )
        return pb.CreateApiKeyResponse(api_key=_key_message(info), secret=secret)

    async def list_api_keys(
        self, request: pb.ListApiKeysRequest, authorization: str | None
    ) -> pb.ListApiKeysResponse:
        """Keys of a tenant, or of all tenants; never their secrets."""
        self._require_admin(authorization)
        keys = await repository.list_api_keys(self._engine, request.tenant or None)
        return pb.ListApiKeysResponse(api_keys=[_key_message(k) for k in keys])

    async def revoke_api_key(
        self, request: pb.RevokeApiKeyRequest, authorization: str | None
    ) -> pb.RevokeApiKeyResponse:
        """Revoke a key; every replica refuses it within seconds."""
        self._require_admin(authorization)
        if not request.id:
            raise InvalidArgumentError("id: required")
        if not await repository.revoke_api_key(self._engine, request.id):
            raise NotFoundError(f"no active API key with id {request.id!r}")
        return pb.RevokeApiKeyResponse(id=request.id)

    async def set_tenant_limits(
        self, request: pb.SetTenantLimitsRequest, authorization: str | None
    ) -> pb.SetTenantLimitsResponse:
        """Set a tenant's rate limits and monthly budget (unset fields clear them)."""
        self._require_admin(authorization)
        tenant = _tenant(request.tenant)
        budget = _budget(request, "monthly_budget_usd")
        rpm = _per_minute(request, "requests_per_minute")
        tpm = _per_minute(request, "tokens_per_minute")
        await repository.set_tenant_limits(
            self._engine,
            tenant,
            monthly_budget_usd=budget,
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
        )
        return pb.SetTenantLimitsResponse(tenant=tenant)

    async def get_usage(
        self, request: pb.GetUsageRequest, authorization: str | None
    ) -> pb.GetUsageResponse:
        """Requests, tokens and cost by tenant, day, requested model and the deployment's model."""
        tenant = await self._report_scope(request.tenant, authorization)
        since, until = _period(request, default_since=_days_ago(USAGE_DEFAULT_DAYS))
        rows = await usage_by_model_and_day(
            self._engine, tenant_id=tenant, since=since, until=until
        )
        return pb.GetUsageResponse(rows=[_usage_message(r) for r in rows])

    async def get_costs(
        self, request: pb.GetCostsRequest, authorization: str | None
    ) -> pb.GetCostsResponse:
        """Spend in total, by model and by day."""
        tenant = await self._report_scope(request.tenant, authorization)
        since, until = _period(request, default_since=_month_start())
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
        return pb.GetCostsResponse(
            total_cost_usd=sum(row.cost_usd for row in rows),
            models=[pb.Cost(name=n, requests=int(r), cost_usd=c) for n, (r, c) in models],
            days=[
                pb.Cost(name=n, requests=int(r), cost_usd=c) for n, (r, c) in sorted(by_day.items())
            ],
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


def _budget(
    message: pb.CreateApiKeyRequest | pb.SetTenantLimitsRequest, field: str
) -> float | None:
    """A monthly budget in USD from 0 to `MAX_BUDGET_USD`; None when unset (no budget)."""
    if not message.HasField(field):  # type: ignore[arg-type]  # the field names are literals
        return None
    value = float(getattr(message, field))
    # NaN compares false with everything: `not (a <= v <= b)` refuses it too.
    if not (math.isfinite(value) and 0 <= value <= MAX_BUDGET_USD):
        raise InvalidArgumentError(
            f"{field}: must be a number of US dollars from 0 to {MAX_BUDGET_USD}, got {value!r}"
            " (leave it out for no budget)"
        )
    return value


def _per_minute(
    message: pb.CreateApiKeyRequest | pb.SetTenantLimitsRequest, field: str
) -> int | None:
    """A per-minute limit from 1 to `MAX_PER_MINUTE`; None when unset (no limit)."""
    if not message.HasField(field):  # type: ignore[arg-type]  # the field names are literals
        return None
    value = int(getattr(message, field))
    if not 1 <= value <= MAX_PER_MINUTE:
        raise InvalidArgumentError(
            f"{field}: must be a whole number from 1 to {MAX_PER_MINUTE}, got {value}"
            " (leave it out for no limit)"
        )
    return value


def _period(
    request: pb.GetUsageRequest | pb.GetCostsRequest, *, default_since: datetime
) -> tuple[datetime, datetime]:
    since = _moment(request, "since") or default_since
    until = _moment(request, "until") or datetime.now(UTC)
    if until <= since:
        raise InvalidArgumentError("until: must be after since")
    return since, until


def _moment(request: pb.GetUsageRequest | pb.GetCostsRequest, field: str) -> datetime | None:
    """The request's `since` or `until` (None when unset); INVALID_ARGUMENT out of range."""
    if not request.HasField(field):  # type: ignore[arg-type]  # the field names are literals
        return None
    stamp: Timestamp = getattr(request, field)
    try:
        return stamp.ToDatetime(UTC)
    except (ValueError, OverflowError):  # beyond what a datetime holds (years 1 to 9999)
        raise InvalidArgumentError(
            f"{field}: must be a time between the years 1 and 9999"
        ) from None


def _days_ago(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def _month_start() -> datetime:
    return datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _key_message(info: ApiKeyInfo) -> pb.ApiKey:
    key = pb.ApiKey(
        id=info.id,
        tenant=info.tenant_id,
        name=info.name,
        prefix=info.prefix,
        created_at=_timestamp(info.created_at),
        revoked_at=_timestamp(info.revoked_at),
    )
    if info.monthly_budget_usd is not None:
        key.monthly_budget_usd = float(info.monthly_budget_usd)
    if info.requests_per_minute is not None:
        key.requests_per_minute = info.requests_per_minute
    if info.tokens_per_minute is not None:
        key.tokens_per_minute = info.tokens_per_minute
    return key


def _usage_message(row: UsageRow) -> pb.UsageRow:
    return pb.UsageRow(
        tenant=row.tenant_id,
        day=row.day.isoformat(),
        model=row.model,
        provider=row.provider or "",
        provider_model=row.provider_model or "",
        requests=row.requests,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cached_tokens=row.cached_tokens,
        cost_usd=row.cost_usd,
    )
