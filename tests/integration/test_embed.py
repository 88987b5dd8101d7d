"""The Embed RPC and `POST /v1/embed`: one core path with usage, cost, cache, fallbacks, limits.

The gateway runs in-process against the vendors' loopback fakes (whose vectors are
`tests.fakes.embeddings.vector`) and the built-in mock; the ledger is a fresh SQLite store.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from sqlalchemy import select

from gateway.pipeline.pricing import DEFAULT_PRICES
from gateway.store.engine import create_engine, database_url
from gateway.store.models import provider_attempts, requests
from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import MOCK, RunningGateway, StartGateway
from tests.fakes.base import Fault
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.embeddings import token_count, vector
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.openai_server import FakeOpenAI

SMALL = "text-embedding-3-small"
TEXTS = ["first text to embed", "the second", "third"]
TOKENS = sum(token_count(t) for t in TEXTS)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'usage.db'}"


def deployments(
    openai: FakeOpenAI, cohere: FakeCohere, gemini: FakeGemini
) -> tuple[ProviderSettings, ...]:
    return (
        MOCK,
        ProviderSettings(
            name="openai", kind="openai", base_url=openai.base_url, api_keys=("k",), models=(SMALL,)
        ),
        # Lists only a chat model: its embedding models are reached by their bare names.
        ProviderSettings(
            name="cohere",
            kind="cohere",
            base_url=cohere.base_url,
            api_keys=("k",),
            models=("command-r-08-2024",),
        ),
        ProviderSettings(name="gemini", kind="gemini", base_url=gemini.base_url, api_keys=("k",)),
        ProviderSettings(name="claude", kind="anthropic", base_url="http://127.0.0.1:9", models=()),
    )


@pytest.fixture
async def gw(
    start_gateway: StartGateway,
    openai_fake: FakeOpenAI,
    cohere_fake: FakeCohere,
    gemini_fake: FakeGemini,
    store: str,
) -> RunningGateway:
    return await start_gateway(
        providers=deployments(openai_fake, cohere_fake, gemini_fake),
        prices=DEFAULT_PRICES,  # a fake is not the vendor's API: list prices only as configured
        database_url=store,
        auto_migrate=True,
        primary_retries=0,
    )


def ask(model: str = SMALL, texts: list[str] = TEXTS, **fields: Any) -> pb.EmbedRequest:
    return pb.EmbedRequest(model=model, inputs=texts, **fields)


async def post(gw: RunningGateway, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with gw.http.post(gw.http_url + "/v1/embed", data=orjson.dumps(body)) as response:
        return response.status, orjson.loads(await response.read())


async def grpc_code(gw: RunningGateway, request: pb.EmbedRequest) -> grpc.StatusCode:
    try:
        await gw.stub.Embed(request)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def wait_for_requests(fake: FakeOpenAI, count: int) -> None:
    async with asyncio.timeout(5):
        while len(fake.requests) < count:  # noqa: ASYNC110 (the fake's requests are a list)
            await asyncio.sleep(0.01)


def floats(values: list[float]) -> list[float]:
    """`values` as the float32 the API carries them in, back as Python floats."""
    return list(pb.Embedding(values=values).values)


# -- answers --------------------------------------------------------------------------------------


async def test_grpc_embed_returns_the_vendors_vectors_in_order_with_usage_and_cost(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    response = await gw.stub.Embed(ask())
    assert (response.provider, response.model) == ("openai", SMALL)
    assert [list(e.values) for e in response.embeddings] == [floats(vector(t, 16)) for t in TEXTS]
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (TOKENS, TOKENS)
    assert not response.usage_estimated
    assert response.cost_usd == pytest.approx(TOKENS * 0.02 / 1e6)
    assert [a.outcome for a in response.attempts] == [pb.ATTEMPT_OUTCOME_SUCCESS]
    assert openai_fake.requests[0].body["input"] == TEXTS


async def test_json_embed_takes_camel_case_and_answers_snake_case(gw: RunningGateway) -> None:
    status, body = await post(
        gw, {"model": SMALL, "inputs": ["a b"], "dimensions": 8, "inputType": "search_query"}
    )
    assert status == 200, body
    [embedding] = body["embeddings"]
    # JSON carries each float32 in its shortest form: read back as float32 it is the value.
    assert floats(embedding["values"]) == floats(vector("a b", 8))
    assert body["usage"]["prompt_tokens"] == 2
    assert body["usage_estimated"] is False
    assert body["attempts"][0]["outcome"] == "ATTEMPT_OUTCOME_SUCCESS"
    assert body["provider"] == "openai"


async def test_both_transports_give_the_same_mock_vectors(gw: RunningGateway) -> None:
    response = await gw.stub.Embed(ask("mock", ["hello world"], dimensions=4))
    status, body = await post(gw, {"model": "mock", "inputs": ["hello world"], "dimensions": 4})
    assert status == 200
    assert floats(body["embeddings"][0]["values"]) == list(response.embeddings[0].values)
    assert len(response.embeddings[0].values) == 4
    assert (response.provider, body["provider"]) == ("mock", "mock")


async def test_a_vendor_without_usage_gets_a_marked_estimate_and_its_cost(
    gw: RunningGateway,
) -> None:
    response = await gw.stub.Embed(ask("gemini/gemini-embedding-001", ["abcdefgh"]))
    assert response.usage_estimated
    assert response.usage.prompt_tokens == 2  # eight characters: two tokens by the estimate
    assert response.cost_usd == pytest.approx(2 * 0.15 / 1e6)


async def test_an_embedding_model_routes_by_its_bare_name(
    gw: RunningGateway, cohere_fake: FakeCohere
) -> None:
    response = await gw.stub.Embed(ask("embed-english-v3.0", ["x"]))
    assert response.provider == "cohere"
    assert cohere_fake.requests[0].body["input_type"] == "search_document"


# -- cache, fallback, limits ----------------------------------------------------------------------


async def test_a_repeated_call_is_a_cache_hit_that_costs_nothing(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    first = await gw.stub.Embed(ask())
    again = await gw.stub.Embed(ask())
    status, body = await post(gw, {"model": SMALL, "inputs": TEXTS})
    assert not first.cached
    assert again.cached
    assert (status, body["cached"]) == (200, True)
    assert (again.cost_usd, len(again.attempts)) == (0.0, 0)
    assert list(again.embeddings) == list(first.embeddings)
    assert len(openai_fake.requests) == 1
    other = await gw.stub.Embed(ask(dimensions=8))  # another request: another key
    assert not other.cached
    assert len(openai_fake.requests) == 2


async def test_a_failing_primary_falls_back_to_the_next_model(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    openai_fake.persistent_fault = Fault(status=503)
    response = await gw.stub.Embed(ask(fallback_models=["embed-english-v3.0"]))
    assert response.provider == "cohere"
    assert [a.provider for a in response.attempts] == ["openai", "cohere"]
    assert [a.outcome for a in response.attempts] == [
        pb.ATTEMPT_OUTCOME_ERROR,
        pb.ATTEMPT_OUTCOME_SUCCESS,
    ]
    assert [list(e.values) for e in response.embeddings] == [floats(vector(t, 16)) for t in TEXTS]


async def test_a_fallback_that_cannot_embed_is_skipped(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    openai_fake.persistent_fault = Fault(status=503)
    response = await gw.stub.Embed(ask(fallback_models=["claude/any", "mock"]))
    assert [a.outcome for a in response.attempts] == [
        pb.ATTEMPT_OUTCOME_ERROR,
        pb.ATTEMPT_OUTCOME_UNSUPPORTED,
        pb.ATTEMPT_OUTCOME_SUCCESS,
    ]
    assert response.provider == "mock"


async def test_the_callers_rate_limit_applies_to_embed(start_gateway: StartGateway) -> None:
    gw = await start_gateway(requests_per_minute=1)
    assert await grpc_code(gw, ask("mock")) == grpc.StatusCode.OK
    assert await grpc_code(gw, ask("mock", ["another"])) == grpc.StatusCode.RESOURCE_EXHAUSTED
    status, body = await post(gw, {"model": "mock", "inputs": ["more"]})
    assert status == 429
    assert body["error"]["code"] == "RESOURCE_EXHAUSTED"


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"inputs": []}, "inputs"),
        ({"inputs": ["ok", " "]}, "inputs[1]"),
        ({"dimensions": 0}, "dimensions"),
        ({"input_type": "not a name!"}, "input_type"),
        ({"model": "claude/any"}, "model"),
    ],
)
async def test_bad_input_is_invalid_argument_on_both_transports(
    gw: RunningGateway, request_fields: dict[str, Any], field: str
) -> None:
    fields = {"model": SMALL, "inputs": ["ok"], **request_fields}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gw.stub.Embed(pb.EmbedRequest(**fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(field)
    status, body = await post(gw, fields)
    assert status == 400
    assert body["error"]["code"] == "INVALID_ARGUMENT"
    assert body["error"]["message"].startswith(field)


async def test_an_unknown_field_and_an_unknown_model_are_refused(gw: RunningGateway) -> None:
    status, body = await post(gw, {"model": SMALL, "inputs": ["x"], "input": "x"})
    assert (status, body["error"]["code"]) == (400, "INVALID_ARGUMENT")
    assert await grpc_code(gw, ask("no-such-model")) == grpc.StatusCode.NOT_FOUND


# -- the ledger -----------------------------------------------------------------------------------


async def test_each_call_is_one_ledger_row_with_usage_cost_and_attempts(
    gw: RunningGateway, openai_fake: FakeOpenAI, store: str
) -> None:
    await gw.stub.Embed(ask())
    await gw.stub.Embed(ask())  # a cache hit
    assert (await post(gw, {"model": "mock", "inputs": ["one two"]}))[0] == 200
    await gw.gateway.stop()  # graceful shutdown flushes the ledger
    engine = create_engine(database_url(store))
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(
                        requests.c.rpc,
                        requests.c.transport,
                        requests.c.provider,
                        requests.c.prompt_tokens,
                        requests.c.cost_usd,
                        requests.c.cached,
                    ).order_by(requests.c.started_at)
                )
            ).all()
            attempts = (await connection.execute(select(provider_attempts.c.outcome))).all()
    finally:
        await engine.dispose()
    assert [tuple(row[:4]) for row in rows] == [
        ("Embed", "grpc", "openai", TOKENS),
        ("Embed", "grpc", "openai", TOKENS),
        ("Embed", "http", "mock", 2),
    ]
    assert float(rows[0].cost_usd) == pytest.approx(TOKENS * 0.02 / 1e6)
    assert [float(rows[1].cost_usd), bool(rows[1].cached)] == [0.0, True]
    assert len(attempts) == 2  # the cache hit made no try


async def test_an_estimated_usage_is_marked_in_the_ledger_row(
    gw: RunningGateway, store: str
) -> None:
    await gw.stub.Embed(ask("gemini/gemini-embedding-001", ["abcdefgh"]))  # no vendor counts
    assert (await post(gw, {"model": SMALL, "inputs": TEXTS}))[0] == 200  # the vendor's counts
    await gw.gateway.stop()  # graceful shutdown flushes the ledger
    engine = create_engine(database_url(store))
    try:
        async with engine.connect() as connection:
            query = select(requests.c.provider, requests.c.usage_estimated).order_by(
                requests.c.started_at
            )
            rows = (await connection.execute(query)).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in rows] == [("gemini", True), ("openai", False)]


# -- retries, breakers, deadlines, auth ------------------------------------------------------------


async def test_a_failed_try_is_retried_on_the_same_deployment(
    start_gateway: StartGateway,
    openai_fake: FakeOpenAI,
    cohere_fake: FakeCohere,
    gemini_fake: FakeGemini,
) -> None:
    gw = await start_gateway(
        providers=deployments(openai_fake, cohere_fake, gemini_fake),
        primary_retries=1,
        retry_backoff_base_seconds=0.01,
    )
    openai_fake.fail_next(Fault(status=503))
    response = await gw.stub.Embed(ask())
    assert [(a.provider, a.outcome) for a in response.attempts] == [
        ("openai", pb.ATTEMPT_OUTCOME_ERROR),
        ("openai", pb.ATTEMPT_OUTCOME_SUCCESS),
    ]
    assert len(openai_fake.requests) == 2


async def test_failing_embeds_open_the_deployments_breaker(
    start_gateway: StartGateway,
    openai_fake: FakeOpenAI,
    cohere_fake: FakeCohere,
    gemini_fake: FakeGemini,
) -> None:
    gw = await start_gateway(
        providers=deployments(openai_fake, cohere_fake, gemini_fake),
        primary_retries=0,
        circuit_breaker_fail_max=2,
        circuit_breaker_reset_timeout=30.0,
    )
    openai_fake.persistent_fault = Fault(status=503)
    for _ in range(2):
        assert await grpc_code(gw, ask()) == grpc.StatusCode.UNAVAILABLE
    response = await gw.stub.Embed(ask(fallback_models=["mock"]))
    assert [a.outcome for a in response.attempts] == [
        pb.ATTEMPT_OUTCOME_CIRCUIT_OPEN,
        pb.ATTEMPT_OUTCOME_SUCCESS,
    ]
    assert len(openai_fake.requests) == 2  # the open circuit kept the third call away


async def test_the_callers_timeout_bounds_the_call(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail_next(Fault(delay=2.0))
    request = ask()
    request.timeout.FromMilliseconds(300)
    assert await grpc_code(gw, request) == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_embed_needs_a_credential_when_auth_is_on(start_gateway: StartGateway) -> None:
    gw = await start_gateway(auth_tokens=("token-one",))
    assert await grpc_code(gw, ask("mock")) == grpc.StatusCode.UNAUTHENTICATED
    status, _ = await post(gw, {"model": "mock", "inputs": ["x"]})
    assert status == 401
    response = await gw.stub.Embed(ask("mock"), metadata=(("authorization", "Bearer token-one"),))
    assert len(response.embeddings) == len(TEXTS)


async def test_the_token_limit_is_charged_with_the_inputs_estimate(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(tokens_per_minute=50)
    short = await gw.stub.Embed(ask("mock", ["a few words"]))
    assert len(short.embeddings) == 1
    long_text = "x" * 400  # about a hundred tokens: over the minute's fifty
    assert await grpc_code(gw, ask("mock", [long_text])) == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- cache namespaces and batches through the gateway --------------------------------------------


async def test_the_cache_is_per_tenant(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    await gw.stub.Embed(ask(metadata={"tenant": "a"}))
    again = await gw.stub.Embed(ask(metadata={"tenant": "a"}))
    other = await gw.stub.Embed(ask(metadata={"tenant": "b"}))
    assert again.cached
    assert not other.cached
    assert len(openai_fake.requests) == 2


async def test_a_large_batch_is_split_for_the_vendor_and_comes_back_in_order(
    gw: RunningGateway, gemini_fake: FakeGemini
) -> None:
    texts = [f"input number {i}" for i in range(250)]
    response = await gw.stub.Embed(ask("gemini/gemini-embedding-001", texts))
    batches = [r.body["requests"] for r in gemini_fake.requests]
    # Batches go out a few at once: their order of arrival is not fixed, their answers' is.
    assert sorted(len(b) for b in batches if isinstance(b, list)) == [50, 100, 100]
    assert [list(e.values) for e in response.embeddings] == [floats(vector(t, 16)) for t in texts]
    assert [a.outcome for a in response.attempts] == [pb.ATTEMPT_OUTCOME_SUCCESS]


# -- single flight: identical misses share one provider call -------------------------------------


async def test_twenty_identical_concurrent_calls_make_one_upstream_request(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    openai_fake.persistent_fault = Fault(delay=0.4)  # long enough for all twenty to arrive
    over_grpc = [gw.stub.Embed(ask()) for _ in range(10)]
    over_json = [post(gw, {"model": SMALL, "inputs": TEXTS}) for _ in range(10)]
    grpc_answers, json_answers = await asyncio.gather(
        asyncio.gather(*over_grpc), asyncio.gather(*over_json)
    )
    assert len(openai_fake.requests) == 1
    expected = [floats(vector(t, 16)) for t in TEXTS]
    for answer in grpc_answers:
        assert [list(e.values) for e in answer.embeddings] == expected
    for status, body in json_answers:
        assert status == 200, body
        assert [floats(e["values"]) for e in body["embeddings"]] == expected
    cached = [a.cached for a in grpc_answers] + [body["cached"] for _, body in json_answers]
    assert sorted(cached) == [False] + [True] * 19  # one leader; the others paid nothing
    costs = [a.cost_usd for a in grpc_answers] + [body["cost_usd"] for _, body in json_answers]
    assert sum(costs) == pytest.approx(TOKENS * 0.02 / 1e6)


async def test_a_waiting_call_keeps_its_own_deadline(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    openai_fake.persistent_fault = Fault(delay=1.0)
    leader = asyncio.ensure_future(gw.stub.Embed(ask(), timeout=5))
    await wait_for_requests(openai_fake, 1)
    short = ask()
    short.timeout.FromMilliseconds(200)
    started = time.perf_counter()
    assert await grpc_code(gw, short) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.perf_counter() - started < 0.7  # its own 0.2 s, not the leader's 1 s
    started = time.perf_counter()
    status, body = await post(gw, {"model": SMALL, "inputs": TEXTS, "timeout": "0.2s"})
    assert (status, body["error"]["code"]) == (504, "DEADLINE_EXCEEDED")
    assert time.perf_counter() - started < 0.7
    answer = await leader  # the followers that left did not disturb it
    assert (answer.cached, len(answer.embeddings)) == (False, len(TEXTS))
    assert len(openai_fake.requests) == 1


async def test_when_the_leader_fails_a_waiting_call_asks_the_provider_itself(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail_next(Fault(status=503, delay=0.3))
    leader = asyncio.ensure_future(grpc_code(gw, ask()))
    await wait_for_requests(openai_fake, 1)
    follower = await gw.stub.Embed(ask())
    assert await leader == grpc.StatusCode.UNAVAILABLE
    assert (follower.cached, len(follower.embeddings)) == (False, len(TEXTS))
    assert len(openai_fake.requests) == 2
