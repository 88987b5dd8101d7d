"""ProviderStatus: each deployment's circuit, keys, models, prices and group members' routing
state; the kinds not configured."""

from __future__ import annotations

from collections.abc import Callable

from gateway.pipeline.pricing import PriceTable
from gateway.pipeline.types import CircuitState, DeploymentStatus, MemberStatus, ModelPrice
from providers.registry import ADAPTERS, Deployment, ProviderRegistry
from resilience.breaker import CLOSED, HALF_OPEN, OPEN, Breakers

_CIRCUIT_STATES = {
    CLOSED: CircuitState.CLOSED,
    OPEN: CircuitState.OPEN,
    HALF_OPEN: CircuitState.HALF_OPEN,
}


#: What this replica knows of each group member on a deployment (`RoutedPlans.members_of`).
MembersOf = Callable[[str], tuple[MemberStatus, ...]]


def status_entries(
    registry: ProviderRegistry,
    breakers: Breakers,
    prices: PriceTable,
    members_of: MembersOf | None = None,
) -> list[DeploymentStatus]:
    """Every deployment (with its group members' routing state), then every adapter kind with
    none configured (marked so)."""
    entries = [_deployment_entry(d, breakers, prices, members_of) for d in registry.deployments]
    configured_kinds = {d.settings.kind for d in registry.deployments}
    for spec in ADAPTERS.values():
        if spec.kind not in configured_kinds:
            entries.append(DeploymentStatus(spec.kind, spec.kind, spec.default_models))
    return entries


def _deployment_entry(
    deployment: Deployment, breakers: Breakers, prices: PriceTable, members_of: MembersOf | None
) -> DeploymentStatus:
    name = deployment.settings.name
    keys = deployment.keys.status()
    circuit = breakers(name).status()
    usable_keys = keys.total == 0 or keys.available > 0
    return DeploymentStatus(
        name=name,
        kind=deployment.provider.kind,
        models=deployment.settings.models,
        configured=True,
        circuit=_CIRCUIT_STATES.get(circuit.state),
        consecutive_failures=circuit.consecutive_failures,
        opened_at=circuit.opened_at,
        next_probe_at=circuit.next_probe_at,
        last_error=circuit.last_error,
        healthy=circuit.state == CLOSED and usable_keys,
        keys_total=keys.total,
        keys_available=keys.available,
        price_source=prices.source(name),
        prices=tuple(_model_price(prices, name, model) for model in deployment.settings.models),
        members=members_of(name) if members_of is not None else (),
    )


def _model_price(prices: PriceTable, deployment: str, model: str) -> ModelPrice:
    price, source = prices.priced(deployment, model)
    if price is None:
        return ModelPrice(model, source)
    return ModelPrice(
        model,
        source,
        input=price.input,
        output=price.output,
        cached_input=price.input if price.cached_input is None else price.cached_input,
        cache_write=price.input if price.cache_write is None else price.cache_write,
    )
