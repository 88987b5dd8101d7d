"""Tenants, API keys, rate limits, budgets and the usage ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from gateway.pipeline.pricing import DEFAULT_PRICES
from gateway.store.engine import create_engine, database_url
from gateway.store.models import provider_attempts, requests
from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from providers.base import ProviderSettings
from tests.conftest import MOCK, RunningGateway, StartGateway
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI

ADMIN = "admin-secret-token"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
MODEL = "gpt-4o-mini"
ONE_ANSWER_USD = (8 * 0.15 + 4 * 0.075 + 5 * 0.60) / 1e6  # the fake's usage at gpt-4o-mini prices


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def gw(start_gateway: StartGateway, fake: FakeOpenAI, store_url: str) -> RunningGateway:
    openai = ProviderSettings(
        name="openai", kind="openai", base_url=fake.base_url, api_keys=("k",), models=(MODEL,)
    )
    # A fake is not the vendor's public API: list prices apply to it only as configured prices.
    return await start_gateway(
        providers=(MOCK, openai),
        prices=DEFAULT_PRICES,
        database_url=store_url,
        auto_migrate=True,
        admin_tokens=(ADMIN,),
        primary_retries=0,
    )


def ask(text: str = "hi") -> pb.CompleteRequest:
    return pb.CompleteRequest(model=MODEL, messages=[pb.Message(role="user", content=text)])


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


async def create_key(gw: RunningGateway, tenant: str, **limits: Any) -> dict[str, Any]:
    body = orjson.dumps({"tenant": tenant, "name": "ci", **limits})
    async with gw.http.post(gw.http_url + "/v1/admin/keys", data=body, headers=ADMIN_HEADERS) as r:
        assert r.status == 200, await r.text()
        created: dict[str, Any] = orjson.loads(await r.read())
        return created


async def json_call(gw: RunningGateway, secret: str) -> tuple[int, dict[str, Any]]:
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Authorization": f"Bearer {secret}"}
    async with gw.http.post(gw.http_url + "/v1/complete", data=body, headers=headers) as r:
        return r.status, orjson.loads(await r.read())


async def grpc_code(gw: RunningGateway, secret: str) -> grpc.StatusCode:
    try:
        await gw.stub.Complete(ask(), metadata=bearer(secret))
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_key_lifecycle_create_use_revoke_is_refused_everywhere(gw: RunningGateway) -> None:
    created = await create_key(gw, "acme")
    secret, key_id = created["secret"], created["api_key"]["id"]
    assert secret.startswith("aigw_")
    assert created["api_key"]["tenant"] == "acme"

    assert await grpc_code(gw, secret) == grpc.StatusCode.OK
    assert (await json_call(gw, secret))[0] == 200
    async with gw.http.get(gw.http_url + "/v1/admin/keys", headers=ADMIN_HEADERS) as r:
        listing = await r.text()
    assert key_id in listing
    assert secret not in listing

    admin = pb_grpc.AdminServiceStub(gw.channel)
    await admin.RevokeApiKey(pb.RevokeApiKeyRequest(id=key_id), metadata=bearer(ADMIN))
    await asyncio.sleep(2.2)  # the key cache on every replica expires within seconds
    assert await grpc_code(gw, secret) == grpc.StatusCode.UNAUTHENTICATED
    status, body = await json_call(gw, secret)
    assert status == 401
    _, unknown = await json_call(gw, "aigw_never_issued")
    assert body["error"]["message"] == unknown["error"]["message"] == "invalid credential"


async def test_admin_calls_need_the_admin_token(gw: RunningGateway) -> None:
    body = orjson.dumps({"tenant": "acme"})
    async with gw.http.post(gw.http_url + "/v1/admin/keys", data=body) as reply:
        assert reply.status == 403
    admin = pb_grpc.AdminServiceStub(gw.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer("aigw_not_admin"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_key_over_its_requests_per_minute_gets_429_with_retry_after(
    gw: RunningGateway,
) -> None:
    secret = (await create_key(gw, "limited", requests_per_minute=3))["secret"]
    for _ in range(3):
        assert await grpc_code(gw, secret) == grpc.StatusCode.OK
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.Complete(ask(), metadata=bearer(secret))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "requests per minute" in (caught.value.details() or "")
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Authorization": f"Bearer {secret}"}
    async with gw.http.post(gw.http_url + "/v1/complete", data=body, headers=headers) as r:
        assert r.status == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["RateLimit-Limit"] == "3"
        assert r.headers["RateLimit-Remaining"] == "0"


async def test_a_spent_budget_is_refused_on_both_transports(gw: RunningGateway) -> None:
    budget = ONE_ANSWER_USD * 1.5  # room for two answers' worth of checks, not a third
    secret = (await create_key(gw, "thrifty", monthly_budget_usd=budget))["secret"]
    assert await grpc_code(gw, secret) == grpc.StatusCode.OK
    await asyncio.sleep(0.1)  # spend is added off the request path
    assert await grpc_code(gw, secret) == grpc.StatusCode.OK
    await asyncio.sleep(0.1)
    assert await grpc_code(gw, secret) == grpc.StatusCode.RESOURCE_EXHAUSTED
    status, body = await json_call(gw, secret)
    assert status == 429
    assert "monthly budget" in body["error"]["message"]


async def test_every_call_is_one_ledger_row_with_its_attempts(
    gw: RunningGateway, store_url: str
) -> None:
    secret = (await create_key(gw, "ledger"))["secret"]
    for _ in range(5):
        assert await grpc_code(gw, secret) == grpc.StatusCode.OK
    for _ in range(3):
        assert (await json_call(gw, secret))[0] == 200
    await gw.gateway.stop()  # graceful shutdown flushes the buffer
    engine = create_engine(database_url(store_url))
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(requests.c.transport, func.count(), func.sum(requests.c.cost_usd))
                    .where(requests.c.tenant_id == "ledger")
                    .group_by(requests.c.transport)
                )
            ).all()
            attempts = (await connection.execute(select(func.count(provider_attempts.c.id)))).one()
    finally:
        await engine.dispose()
    counts = {transport: (count, float(cost)) for transport, count, cost in rows}
    assert counts["grpc"][0] == 5
    assert counts["http"][0] == 3
    assert counts["grpc"][1] == pytest.approx(5 * ONE_ANSWER_USD)
    assert attempts[0] == 8


async def test_usage_reports_show_the_callers_tenant_and_all_to_the_admin(
    gw: RunningGateway,
) -> None:
    mine = (await create_key(gw, "tenant-a"))["secret"]
    other = (await create_key(gw, "tenant-b"))["secret"]
    for secret in (mine, mine, other):
        assert await grpc_code(gw, secret) == grpc.StatusCode.OK
    await asyncio.sleep(1.0)  # the ledger is written in the background

    async def usage(secret: str, query: str = "") -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {secret}"}
        async with gw.http.get(gw.http_url + "/v1/usage" + query, headers=headers) as r:
            return r.status, orjson.loads(await r.read())

    status, report = await usage(mine)
    assert status == 200
    assert {row["tenant"] for row in report["rows"]} == {"tenant-a"}
    assert sum(int(row["requests"]) for row in report["rows"]) == 2
    assert (await usage(mine, "?tenant=tenant-b"))[0] == 403
    _, everything = await usage(ADMIN)
    assert {row["tenant"] for row in everything["rows"]} >= {"tenant-a", "tenant-b"}
    headers = {"Authorization": f"Bearer {mine}"}
    async with gw.http.get(gw.http_url + "/v1/usage/costs", headers=headers) as r:
        costs = orjson.loads(await r.read())
    assert costs["total_cost_usd"] == pytest.approx(2 * ONE_ANSWER_USD)
    assert costs["models"][0]["name"] == MODEL


# Values out of range: each must be refused (400 / INVALID_ARGUMENT), never stored.
BAD_VALUES: dict[str, list[Any]] = {
    "monthly_budget_usd": ["NaN", "Infinity", "-Infinity", -1, -0.01, 1e300],
    "requests_per_minute": [-1, 0],
    "tokens_per_minute": [-1, 0],
}


@pytest.mark.parametrize("field", sorted(BAD_VALUES))
async def test_out_of_range_key_values_are_400_and_make_no_key(
    gw: RunningGateway, field: str
) -> None:
    for value in BAD_VALUES[field]:
        body = orjson.dumps({"tenant": "range", field: value})
        url = gw.http_url + "/v1/admin/keys"
        async with gw.http.post(url, data=body, headers=ADMIN_HEADERS) as r:
            assert r.status == 400, (value, await r.text())
            error = orjson.loads(await r.read())["error"]
        assert error["code"] == "INVALID_ARGUMENT"
        assert field in error["message"]
    async with gw.http.get(gw.http_url + "/v1/admin/keys", headers=ADMIN_HEADERS) as r:
        assert orjson.loads(await r.read()).get("api_keys", []) == []


async def test_a_key_name_longer_than_the_store_holds_is_400(gw: RunningGateway) -> None:
    body = orjson.dumps({"tenant": "range", "name": "n" * 201})
    async with gw.http.post(gw.http_url + "/v1/admin/keys", data=body, headers=ADMIN_HEADERS) as r:
        assert r.status == 400, await r.text()
        assert "name" in orjson.loads(await r.read())["error"]["message"]


async def test_out_of_range_tenant_limits_are_400_and_leave_the_tenant_working(
    gw: RunningGateway,
) -> None:
    secret = (await create_key(gw, "steady"))["secret"]
    url = gw.http_url + "/v1/admin/tenants/steady/limits"
    for field, values in BAD_VALUES.items():
        for value in values:
            body = orjson.dumps({field: value})
            async with gw.http.post(url, data=body, headers=ADMIN_HEADERS) as r:
                assert r.status == 400, (field, value, await r.text())
                error = orjson.loads(await r.read())["error"]
            assert error["code"] == "INVALID_ARGUMENT"
            assert field in error["message"]
    await asyncio.sleep(2.2)  # past the key cache: the tenant's limits are read again
    assert await grpc_code(gw, secret) == grpc.StatusCode.OK


async def test_out_of_range_values_are_invalid_argument_over_grpc(gw: RunningGateway) -> None:
    admin = pb_grpc.AdminServiceStub(gw.channel)
    cases: list[dict[str, Any]] = [
        {"monthly_budget_usd": float("nan")},
        {"monthly_budget_usd": float("inf")},
        {"monthly_budget_usd": float("-inf")},
        {"monthly_budget_usd": -1.0},
        {"monthly_budget_usd": 1e300},
        {"requests_per_minute": -1},
        {"tokens_per_minute": -5},
        {"requests_per_minute": 0},
    ]
    for limits in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.CreateApiKey(
                pb.CreateApiKeyRequest(tenant="range", **limits), metadata=bearer(ADMIN)
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, limits
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.SetTenantLimits(
                pb.SetTenantLimitsRequest(tenant="range", **limits), metadata=bearer(ADMIN)
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, limits
    listing = await admin.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(ADMIN))
    assert list(listing.api_keys) == []


async def test_edge_values_in_range_are_accepted(gw: RunningGateway) -> None:
    created = await create_key(
        gw, "edges", monthly_budget_usd=0, requests_per_minute=1, tokens_per_minute=2147483647
    )
    assert created["api_key"]["requests_per_minute"] == 1
    body = orjson.dumps({"monthly_budget_usd": 99_999_999, "requests_per_minute": 1})
    url = gw.http_url + "/v1/admin/tenants/edges/limits"
    async with gw.http.post(url, data=body, headers=ADMIN_HEADERS) as r:
        assert r.status == 200, await r.text()


async def test_a_report_period_out_of_range_is_invalid_argument(gw: RunningGateway) -> None:
    far = Timestamp(seconds=2**62)
    stub = pb_grpc.GatewayServiceStub(gw.channel)
    for request in (pb.GetUsageRequest(since=far), pb.GetCostsRequest(until=far)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(stub, type(request).__name__.removesuffix("Request"))(
                request, metadata=bearer(ADMIN)
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Traceback" not in (caught.value.details() or "")


async def test_usage_rows_name_the_deployment_and_model_that_answered(
    start_gateway: StartGateway, fake: FakeOpenAI, store_url: str
) -> None:
    openai = ProviderSettings(
        name="openai", kind="openai", base_url=fake.base_url, api_keys=("k",), models=(MODEL,)
    )
    running = await start_gateway(
        providers=(MOCK, openai),
        database_url=store_url,
        auto_migrate=True,
        admin_tokens=(ADMIN,),
        aliases={"fast": f"openai/{MODEL}"},
    )
    for model in ("fast", f"openai/{MODEL}", "fast"):
        request = pb.CompleteRequest(model=model, messages=[pb.Message(role="user", content="hi")])
        response = await running.stub.Complete(request, metadata=bearer(ADMIN))
        assert response.provider == "openai"
    await running.gateway.stop()  # flushes the ledger
    reader = await start_gateway(database_url=store_url, admin_tokens=(ADMIN,))
    async with reader.http.get(reader.http_url + "/v1/usage", headers=ADMIN_HEADERS) as r:
        assert r.status == 200, await r.text()
        rows: list[dict[str, Any]] = orjson.loads(await r.read())["rows"]
    by_requested = {row["model"]: row for row in rows}
    assert set(by_requested) == {"fast", f"openai/{MODEL}"}
    for row in by_requested.values():
        assert (row["provider"], row["provider_model"]) == ("openai", MODEL)
    assert int(by_requested["fast"]["requests"]) == 2
    report = await pb_grpc.GatewayServiceStub(reader.channel).GetUsage(
        pb.GetUsageRequest(), metadata=bearer(ADMIN)
    )
    assert {(r.model, r.provider, r.provider_model) for r in report.rows} == {
        ("fast", "openai", MODEL),
        (f"openai/{MODEL}", "openai", MODEL),
    }


async def test_usage_rows_show_reasoning_tokens_and_count_estimated_embeddings(
    start_gateway: StartGateway, store_url: str
) -> None:
    async with FakeGemini() as gemini:
        deployment = ProviderSettings(
            name="gemini", kind="gemini", base_url=gemini.base_url, api_keys=("k",)
        )
        running = await start_gateway(
            providers=(MOCK, deployment),
            database_url=store_url,
            auto_migrate=True,
            admin_tokens=(ADMIN,),
        )
        thought = await running.stub.Complete(
            pb.CompleteRequest(
                model="mock",
                messages=[pb.Message(role="user", content="think first")],
                reasoning_effort="high",
            ),
            metadata=bearer(ADMIN),
        )
        assert thought.usage.reasoning_tokens > 0
        for text in ("abcdefgh", "ijklmnop"):
            embedded = await running.stub.Embed(
                pb.EmbedRequest(model="gemini/gemini-embedding-001", inputs=[text]),
                metadata=bearer(ADMIN),
            )
            assert embedded.usage_estimated  # Gemini reports no token counts for embeddings
        await running.gateway.stop()  # flushes the ledger
    reader = await start_gateway(database_url=store_url, admin_tokens=(ADMIN,))
    async with reader.http.get(reader.http_url + "/v1/usage", headers=ADMIN_HEADERS) as r:
        assert r.status == 200, await r.text()
        rows = {row["model"]: row for row in orjson.loads(await r.read())["rows"]}
    counts = {
        model: (int(row["reasoning_tokens"]), int(row["estimated_requests"]))
        for model, row in rows.items()
    }
    assert counts == {
        "mock": (thought.usage.reasoning_tokens, 0),
        "gemini/gemini-embedding-001": (0, 2),
    }
    report = await pb_grpc.GatewayServiceStub(reader.channel).GetUsage(
        pb.GetUsageRequest(), metadata=bearer(ADMIN)
    )
    assert {r.model: (r.reasoning_tokens, r.estimated_requests) for r in report.rows} == counts
