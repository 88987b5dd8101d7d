"""A finished call as rows of the usage ledger: one `RequestRecord`, an `AttemptRecord` per try."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from gateway.pipeline.call import Call
from gateway.pipeline.types import Attempt
from gateway.store.records import AttemptRecord, RequestRecord
from providers.types import Usage


def request_record(call: Call, usage: Usage, elapsed: float) -> RequestRecord | None:
    """The ledger row of a call that got past validation (None for one that did not)."""
    if call.request is None or call.identity is None:
        return None
    route = call.route
    return RequestRecord(
        id=call.id,
        request_id=call.context.request_id,
        tenant_id=call.tenant,
        api_key_id=call.identity.api_key_id,
        transport=call.context.transport,
        rpc=call.rpc,
        model=call.request.model,
        provider=route.provider.name if route else None,
        provider_model=route.model if route else None,
        status=call.code,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        cached_tokens=usage.cached_tokens,
        cost_usd=0.0 if call.cached else call.cost_usd,
        cached=call.cached,
        latency_ms=round(elapsed * 1000),
        started_at=call.started_at,
        finished_at=datetime.now(UTC),
        attempts=attempt_records(call.trace.attempts),
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
