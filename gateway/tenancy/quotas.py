"""A caller's rate limits and monthly budget, checked before a call and settled after it.

Limits apply per API key and per tenant: requests per minute and tokens per minute. A key's own
limits come from its row; the tenant's from the tenant's row, else the gateway defaults
(`REQUESTS_PER_MINUTE`, `TOKENS_PER_MINUTE`). Prompt tokens are estimated at admission (a
quarter of the prompt's characters, plus `max_tokens` when set) and the charge is corrected with
the real usage afterwards. Budgets are monthly USD per key and per tenant; a caller over one is
refused before anything is spent. Counters live in Redis when it is configured, so N replicas
together admit the limit, not N times it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import RateLimitedError, ServiceUnavailableError
from gateway.tenancy.auth import Identity
from gateway.tenancy.limits import Budgets, Limit, RateLimiter, Reason
from metrics import RATE_LIMITED, labeled
from providers.types import Message

CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Charge:
    """What admitting a call charged: settled with the real usage when the call ends."""

    token_keys: tuple[str, ...]
    estimated_tokens: int
    budget_keys: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]


class Quotas:
    """Admits calls within their rate limits and budgets, and settles what they used."""

    def __init__(
        self,
        limiter: RateLimiter,
        budgets: Budgets,
        *,
        default_rpm: int = 0,
        default_tpm: int = 0,
    ) -> None:
        self._limiter = limiter
        self._budgets = budgets
        self._default_rpm = default_rpm
        self._default_tpm = default_tpm

    async def admit(self, identity: Identity, tenant: str, estimate: int) -> Charge:
        """Charge one request and its `estimate` of tokens (any kind of call: see
        `estimate_tokens` for a chat's), or raise `RateLimitedError` (429)."""
        grant = identity.grant
        key = f"key:{identity.api_key_id}" if identity.api_key_id else None
        tenant_key = f"tenant:{tenant}"
        await self._check_budgets(identity, key, tenant_key)
        tenant_rpm = grant.tenant_rpm if grant and grant.tenant_rpm else self._default_rpm
        tenant_tpm = grant.tenant_tpm if grant and grant.tenant_tpm else self._default_tpm
        limits = [
            Limit("rpm", tenant_key, tenant_rpm, 1),
            Limit("tpm", tenant_key, tenant_tpm, estimate),
        ]
        if key is not None and grant is not None:
            limits += [
                Limit("rpm", key, grant.key_rpm or 0, 1),
                Limit("tpm", key, grant.key_tpm or 0, estimate),
            ]
        limits = [limit for limit in limits if limit.limit > 0]
        headers: tuple[tuple[str, str], ...] = ()
        if limits:
            decision = await self._limiter.acquire(limits)
            headers = tuple(decision.headers.items())
            if not decision.allowed:
                raise self._refusal(
                    decision.reason, decision.retry_after, decision.limiting, headers
                )
        token_keys = tuple(limit.key for limit in limits if limit.name == "tpm")
        budget_keys = (tenant_key,) if key is None else (tenant_key, key)
        return Charge(token_keys, estimate, budget_keys, headers)

    @staticmethod
    def owes(charge: Charge, tokens_used: int, cost_usd: float) -> bool:
        """Whether `settle` would do anything (most calls without limits or cost owe nothing)."""
        tokens_off = bool(charge.token_keys) and tokens_used != charge.estimated_tokens
        return tokens_off or cost_usd > 0

    async def settle(self, charge: Charge, tokens_used: int, cost_usd: float) -> None:
        """Correct the token charge with what was used, and add the cost to the budgets."""
        delta = tokens_used - charge.estimated_tokens
        if delta:
            for key in charge.token_keys:
                await self._limiter.adjust("tpm", key, delta)
        if cost_usd > 0:
            for key in charge.budget_keys:
                await self._budgets.spend(key, cost_usd)

    async def aclose(self) -> None:
        """Close the limiter's and the budgets' connections."""
        await self._limiter.aclose()
        await self._budgets.aclose()

    async def _check_budgets(self, identity: Identity, key: str | None, tenant_key: str) -> None:
        grant = identity.grant
        checks = []
        if grant is not None and grant.tenant_budget_usd is not None:
            checks.append((tenant_key, grant.tenant_budget_usd))
        if key is not None and grant is not None and grant.key_budget_usd is not None:
            checks.append((key, grant.key_budget_usd))
        if not checks:
            return
        verdict = await self._budgets.over_budget(checks)
        if verdict.reason == Reason.BACKEND_UNAVAILABLE:
            raise ServiceUnavailableError(
                "budgets cannot be checked right now; retry shortly", retry_after=1.0
            )
        if not verdict.allowed:
            labeled(RATE_LIMITED, "budget").inc()
            which = verdict.exceeded
            scope = "API key" if which and which.startswith("key:") else "tenant"
            raise RateLimitedError(
                f"the {scope}'s monthly budget is spent; it renews at the start of next month"
            )

    def _refusal(
        self,
        reason: Reason,
        retry_after: float,
        limiting: Limit | None,
        headers: tuple[tuple[str, str], ...],
    ) -> RateLimitedError | ServiceUnavailableError:
        if reason == Reason.BACKEND_UNAVAILABLE:
            return ServiceUnavailableError(
                "rate limits cannot be checked right now; retry shortly", retry_after=1.0
            )
        what = "requests" if limiting is None or limiting.name == "rpm" else "tokens"
        scope = "API key" if limiting is not None and limiting.key.startswith("key:") else "tenant"
        labeled(RATE_LIMITED, f"{scope.split()[-1].lower()}_{what}").inc()
        error = RateLimitedError(
            f"the {scope} is over its {what} per minute limit", retry_after=retry_after
        )
        error.headers = headers
        return error


def estimate_tokens(messages: tuple[Message, ...], max_tokens: int | None) -> int:
    """A cheap upper-ish estimate of the tokens a call will use."""
    prompt = sum(len(m.text) for m in messages) // CHARS_PER_TOKEN + 4 * len(messages)
    return max(1, prompt + (max_tokens or 0))
