"""ProviderStatus: each deployment's circuit, keys, models and prices; the kinds not configured."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.pipeline.pricing import PriceTable
from gateway.v1 import gateway_pb2 as pb
from providers.registry import ADAPTERS, Deployment, ProviderRegistry
from resilience.breaker import CLOSED, HALF_OPEN, OPEN, Breakers

_CIRCUIT_STATES = {
    CLOSED: pb.CIRCUIT_STATE_CLOSED,
    OPEN: pb.CIRCUIT_STATE_OPEN,
    HALF_OPEN: pb.CIRCUIT_STATE_HALF_OPEN,
}


def status_entries(
    registry: ProviderRegistry, breakers: Breakers, prices: PriceTable
) -> list[pb.ProviderInfo]:
    """Every deployment, then every adapter kind with none configured (marked so)."""
    entries = [_deployment_entry(d, breakers, prices) for d in registry.deployments]
    configured_kinds = {d.settings.kind for d in registry.deployments}
    for spec in ADAPTERS.values():
        if spec.kind not in configured_kinds:
            entries.append(
                pb.ProviderInfo(name=spec.kind, kind=spec.kind, models=spec.default_models)
            )
    return entries


def _deployment_entry(
    deployment: Deployment, breakers: Breakers, prices: PriceTable
) -> pb.ProviderInfo:
    name = deployment.settings.name
    keys = deployment.keys.status()
    circuit = breakers(name).status()
    usable_keys = keys.total == 0 or keys.available > 0
    return pb.ProviderInfo(
        name=name,
        kind=deployment.provider.kind,
        models=deployment.settings.models,
        circuit_state=_CIRCUIT_STATES.get(circuit.state, pb.CIRCUIT_STATE_UNSPECIFIED),
        consecutive_failures=circuit.consecutive_failures,
        opened_at=_timestamp(circuit.opened_at),
        next_probe_at=_timestamp(circuit.next_probe_at),
        last_error=circuit.last_error,
        healthy=circuit.state == CLOSED and usable_keys,
        configured=True,
        keys_total=keys.total,
        keys_available=keys.available,
        price_source=prices.source(name),
        prices=[_model_price(prices, name, model) for model in deployment.settings.models],
    )


def _model_price(prices: PriceTable, deployment: str, model: str) -> pb.ModelPrice:
    price, source = prices.priced(deployment, model)
    if price is None:
        return pb.ModelPrice(model=model, source=source)
    return pb.ModelPrice(
        model=model,
        source=source,
        input=price.input,
        output=price.output,
        cached_input=price.input if price.cached_input is None else price.cached_input,
        cache_write=price.input if price.cache_write is None else price.cache_write,
    )


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
