"""A call is charged only at a price known to be its price, and status says which price applies.

The built-in list prices are the vendors' prices for their own public APIs; a deployment at
another URL (a local vLLM behind OPENAI_BASE_URL, a fake here) costs 0 unless the config prices it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.pipeline.pricing import Price
from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from providers.openai import SPEC as OPENAI_SPEC
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.openai_server import FakeOpenAI, FakeUsage

USAGE = FakeUsage(prompt_tokens=1_000, completion_tokens=500, cached_tokens=0)
MESSAGES = [pb.Message(role="user", content="Hi")]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(usage=USAGE) as server:
        yield server


def openai_at(base_url: str) -> ProviderSettings:
    return ProviderSettings(
        name="openai",
        kind="openai",
        models=("gpt-4o-mini",),
        base_url=base_url,
        api_keys=("sk-test",),
    )


async def json_status(gw: RunningGateway, provider: str) -> dict[str, Any]:
    url = f"{gw.http_url}/v1/providers/status?provider={provider}"
    async with gw.http.get(url) as reply:
        assert reply.status == 200
        body: dict[str, Any] = await reply.json()
    (entry,) = body["providers"]
    assert isinstance(entry, dict)
    return entry


async def test_a_deployment_at_another_url_costs_nothing_without_a_configured_price(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai_at(fake.base_url),))

    response = await gw.stub.Complete(pb.CompleteRequest(model="gpt-4o-mini", messages=MESSAGES))

    assert (response.usage.prompt_tokens, response.cost_usd) == (1_000, 0.0)


async def test_status_says_a_deployment_at_another_url_has_no_price(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(providers=(openai_at(fake.base_url),))

    entry = await json_status(gw, "openai")

    assert entry["price_source"] == "none"
    assert entry["prices"] == [
        {
            "model": "gpt-4o-mini",
            "source": "none",
            "input": 0.0,
            "output": 0.0,
            "cached_input": 0.0,
            "cache_write": 0.0,
        }
    ]


async def test_a_configured_price_is_charged_and_shown_in_status(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    gw = await start_gateway(
        providers=(openai_at(fake.base_url),), prices={"openai/*": Price(input=2.0, output=4.0)}
    )

    response = await gw.stub.Complete(pb.CompleteRequest(model="gpt-4o-mini", messages=MESSAGES))
    status = await gw.stub.ProviderStatus(pb.ProviderStatusRequest(provider="openai"))

    assert response.cost_usd == pytest.approx((1_000 * 2.0 + 500 * 4.0) / 1e6)
    (info,) = status.providers
    assert info.price_source == "config"
    assert [(p.model, p.source, p.input, p.output) for p in info.prices] == [
        ("gpt-4o-mini", "config", 2.0, 4.0)
    ]


async def test_status_shows_list_prices_for_a_deployment_calling_the_vendor_api(
    start_gateway: StartGateway,
) -> None:
    # Nothing is called: status only reads the configuration.
    gw = await start_gateway(providers=(openai_at(OPENAI_SPEC.default_base_url),))

    entry = await json_status(gw, "openai")

    assert entry["price_source"] == "list"
    assert entry["prices"] == [
        {
            "model": "gpt-4o-mini",
            "source": "list",
            "input": 0.15,
            "output": 0.6,
            "cached_input": 0.075,
            "cache_write": 0.15,
        }
    ]
