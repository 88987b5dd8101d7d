"""A finished call as rows of the usage ledger: one `RequestRecord`, an `AttemptRecord` per try."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from gateway.pipeline.call import Call, PreparedCall
from gateway.pipeline.types import Attempt
from gateway.store.records import AttemptRecord, RequestRecord
from providers.types import Usage


def request_record(
    call: Call, prepared: PreparedCall, usage: Usage, elapsed: float
) -> RequestRecord:
    """The ledger row of a call that got past validation."""
    start, route, served = call.start, call.route, call.served
    cached = served is not None and served.cached
    return RequestRecord(
        id=start.id,
        request_id=start.context.request_id,
        tenant_id=prepared.tenant,
        api_key_id=prepared.identity.api_key_id,
        transport=start.context.transport,
        rpc=start.rpc,
        model=prepared.request.model,
        provider=route.provider.name if route else None,
        provider_model=route.model if route else None,
        status=call.code,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=served.cost_usd if served is not None and not cached else 0.0,
        cached=cached,
        latency_ms=round(elapsed * 1000),
        started_at=start.at,
        finished_at=datetime.now(UTC),
        attempts=attempt_records(prepared.trace.attempts),
    )


def attempt_records(attempts: Sequence[Attempt]) -> tuple[AttemptRecord, ...]:
    """The call's tries as the trace reports them, numbered from 1."""
    return tuple(
        AttemptRecord(
            attempt=number,
            provider=a.provider,
            model=a.model,
            outcome=a.outcome.name,
            error_code=a.error_code,
            latency_ms=round(a.latency * 1000),
        )
        for number, a in enumerate(attempts, start=1)
    )
