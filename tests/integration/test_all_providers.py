"""Switching vendors means changing only `model`: same shape, usage and correct cost everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import orjson
import pytest

from gateway.pipeline.pricing import DEFAULT_PRICES, PriceTable
from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import MOCK, RunningGateway, StartGateway
from tests.contract.cases import CASES, REPLY, AdapterCase
from tests.fakes.base import Fault, VendorFake
from tests.fakes.openai_server import FakeOpenAI
from tests.sse import read_sse

MESSAGES = [pb.Message(role="system", content="Be brief."), pb.Message(role="user", content="Hi")]
BODY_MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
PRICES = PriceTable(DEFAULT_PRICES)


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, VendorFake]]:
    async with AsyncExitStack() as stack:
        yield {c.kind: await stack.enter_async_context(c.fake()) for c in CASES}


@pytest.fixture
async def gw(start_gateway: StartGateway, fakes: dict[str, VendorFake]) -> RunningGateway:
    deployments = tuple(c.settings(fakes[c.kind]) for c in CASES)
    # A fake is not the vendor's public API: list prices apply to it only as configured prices.
    return await start_gateway(providers=(MOCK, *deployments), prices=DEFAULT_PRICES)


def expected_cost(case: AdapterCase, answered_model: str) -> float:
    usage = case.usage
    return PRICES.cost(case.kind, case.kind, (answered_model, case.model), usage)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_grpc_complete_is_equivalent_across_vendors(
    gw: RunningGateway, case: AdapterCase
) -> None:
    response = await gw.stub.Complete(pb.CompleteRequest(model=case.model, messages=MESSAGES))
    assert (response.provider, response.content, response.finish_reason) == (
        case.kind,
        REPLY,
        "stop",
    )
    usage = case.usage
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert response.usage.cached_tokens == usage.cached_tokens
    assert response.cost_usd == pytest.approx(expected_cost(case, response.model))
    assert (response.cost_usd > 0) == (case.kind != "ollama")


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_grpc_stream_is_equivalent_across_vendors(
    gw: RunningGateway, case: AdapterCase
) -> None:
    call = gw.stub.StreamComplete(pb.StreamCompleteRequest(model=case.model, messages=MESSAGES))
    messages = [m async for m in call]
    last = messages[-1]  # it may carry the deltas that waited with it
    assert "".join(m.delta for m in messages) == REPLY
    assert last.finish_reason == "stop"
    assert last.usage.total_tokens == case.usage.total_tokens
    assert last.cost_usd == pytest.approx(expected_cost(case, last.model))


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_json_complete_and_stream_are_equivalent_across_vendors(
    gw: RunningGateway, case: AdapterCase
) -> None:
    body: dict[str, Any] = {"model": case.model, "messages": BODY_MESSAGES}
    async with gw.http.post(gw.http_url + "/v1/complete", data=orjson.dumps(body)) as reply:
        unary = orjson.loads(await reply.read())
    async with gw.http.post(gw.http_url + "/v1/complete:stream", data=orjson.dumps(body)) as r:
        events = await read_sse(r)
    chunks = [orjson.loads(data) for _, data in events[:-1]]
    assert unary["content"] == "".join(c.get("delta", "") for c in chunks) == REPLY
    assert unary["usage"] == chunks[-1]["usage"]
    assert unary["finish_reason"] == chunks[-1]["finish_reason"] == "stop"
    assert unary["cost_usd"] == pytest.approx(chunks[-1]["cost_usd"])
    assert unary["cost_usd"] == pytest.approx(expected_cost(case, unary["model"]))


async def test_key_pool_round_robin_and_429_rest_are_visible_upstream(
    start_gateway: StartGateway,
) -> None:
    async with FakeOpenAI() as fake:
        openai = ProviderSettings(
            name="openai",
            kind="openai",
            base_url=fake.base_url,
            api_keys=("key-a", "key-b", "key-c"),
            models=("gpt-4o-mini",),
        )
        gw = await start_gateway(providers=(openai,), primary_retries=0)
        request = pb.CompleteRequest(model="gpt-4o-mini", messages=MESSAGES)
        for _ in range(3):
            await gw.stub.Complete(request)
        assert fake.keys_seen == ["key-a", "key-b", "key-c"]

        fake.fail_next(Fault(status=429, headers={"retry-after": "1"}))
        with pytest.raises(Exception, match="RESOURCE_EXHAUSTED"):
            await gw.stub.Complete(request)  # key-a is refused and rests for 1 s
        status = await gw.stub.ProviderStatus(pb.ProviderStatusRequest(provider="openai"))
        assert (status.providers[0].keys_total, status.providers[0].keys_available) == (3, 2)
        for _ in range(4):
            await gw.stub.Complete(request)
        assert fake.keys_seen[4:] == ["key-b", "key-c", "key-b", "key-c"]

        await asyncio.sleep(1.1)  # the cooldown ends: key-a is back in rotation
        for _ in range(3):
            await gw.stub.Complete(request)
        assert sorted(fake.keys_seen[8:]) == ["key-a", "key-b", "key-c"]
        text = str(await gw.stub.ProviderStatus(pb.ProviderStatusRequest()))
        assert "key-a" not in text
