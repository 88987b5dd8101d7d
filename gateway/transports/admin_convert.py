"""The admin and usage calls' protobuf messages to and from the admin core's own values.

Both transports go through here: gRPC hands over the messages it received, the JSON routes the
messages they parsed (proto3 JSON mapping), so both read and answer the same fields.
"""

from __future__ import annotations

from gateway.store.repository import ApiKeyInfo
from gateway.store.usage import UsageRow
from gateway.tenancy.admin import Costs, CreatedKey, Limits, ReportQuery
from gateway.transports.proto_time import from_timestamp, to_timestamp
from gateway.v1 import gateway_pb2 as pb


def limits_of(message: pb.CreateApiKeyRequest | pb.SetTenantLimitsRequest) -> Limits:
    """The limits a request sets; a field left unset is None (that limit off)."""
    return Limits(
        monthly_budget_usd=(
            message.monthly_budget_usd if message.HasField("monthly_budget_usd") else None
        ),
        requests_per_minute=(
            message.requests_per_minute if message.HasField("requests_per_minute") else None
        ),
        tokens_per_minute=(
            message.tokens_per_minute if message.HasField("tokens_per_minute") else None
        ),
    )


def report_query(message: pb.GetUsageRequest | pb.GetCostsRequest) -> ReportQuery:
    """Whose usage and when; INVALID_ARGUMENT for a time beyond what a datetime holds."""
    return ReportQuery(
        tenant=message.tenant,
        since=from_timestamp(message.since, "since") if message.HasField("since") else None,
        until=from_timestamp(message.until, "until") if message.HasField("until") else None,
    )


def created_key_message(created: CreatedKey) -> pb.CreateApiKeyResponse:
    """A new key and its secret."""
    return pb.CreateApiKeyResponse(api_key=key_message(created.key), secret=created.secret)


def keys_message(keys: list[ApiKeyInfo]) -> pb.ListApiKeysResponse:
    """A listing of keys."""
    return pb.ListApiKeysResponse(api_keys=[key_message(k) for k in keys])


def key_message(info: ApiKeyInfo) -> pb.ApiKey:
    """One key as the API shows it: its own limits, never the tenant's, never the secret."""
    key = pb.ApiKey(
        id=info.id,
        tenant=info.tenant_id,
        name=info.name,
        prefix=info.prefix,
        created_at=to_timestamp(info.created_at),
        revoked_at=to_timestamp(info.revoked_at),
    )
    if info.monthly_budget_usd is not None:
        key.monthly_budget_usd = float(info.monthly_budget_usd)
    if info.requests_per_minute is not None:
        key.requests_per_minute = info.requests_per_minute
    if info.tokens_per_minute is not None:
        key.tokens_per_minute = info.tokens_per_minute
    return key


def usage_message(rows: list[UsageRow]) -> pb.GetUsageResponse:
    """A usage report."""
    return pb.GetUsageResponse(
        rows=[
            pb.UsageRow(
                tenant=row.tenant_id,
                day=row.day.isoformat(),
                model=row.model,
                provider=row.provider or "",
                provider_model=row.provider_model or "",
                requests=row.requests,
                prompt_tokens=row.prompt_tokens,
                completion_tokens=row.completion_tokens,
                cached_tokens=row.cached_tokens,
                reasoning_tokens=row.reasoning_tokens,
                estimated_requests=row.estimated_requests,
                cost_usd=row.cost_usd,
            )
            for row in rows
        ]
    )


def costs_message(costs: Costs) -> pb.GetCostsResponse:
    """A spend report."""
    return pb.GetCostsResponse(
        total_cost_usd=costs.total_cost_usd,
        models=[
            pb.Cost(name=c.name, requests=c.requests, cost_usd=c.cost_usd) for c in costs.models
        ],
        days=[pb.Cost(name=c.name, requests=c.requests, cost_usd=c.cost_usd) for c in costs.days],
    )
