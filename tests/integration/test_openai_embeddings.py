"""The official `openai` SDK's `client.embeddings.create` against `POST /v1/embeddings`.

The gateway serves the mock and the OpenAI, Azure OpenAI, Cohere, Gemini and Ollama fakes (whose
vectors are `tests.fakes.embeddings.vector`). The SDK asks for base64 unless told otherwise and
decodes it itself after validating, so base64 calls use a client without strict response
validation (the issue's exception); calls asking for floats validate strictly.
"""

from __future__ import annotations

import base64
import struct
from functools import partial
from typing import Any

import orjson
import pytest
from openai import (
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
)
from sqlalchemy import select

from gateway.pipeline.pricing import DEFAULT_PRICES
from gateway.store.engine import create_engine
from gateway.store.models import requests
from providers.base import ProviderSettings
from tests.conftest import MOCK, RunningGateway, StartGateway
from tests.fakes.azure_openai_server import FakeAzureOpenAI
from tests.fakes.base import Fault
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.embeddings import token_count, vector
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.sdk_clients import sdk_client

SMALL = "text-embedding-3-small"
TEXTS = ["first text to embed", "the second", "third"]
TOKENS = sum(token_count(t) for t in TEXTS)

#: Strict only where a test asks: the SDK decodes the base64 it asks for after validating.
client = partial(sdk_client, strict=False)


@pytest.fixture
async def gw(
    start_gateway: StartGateway,
    openai_fake: FakeOpenAI,
    azure_fake: FakeAzureOpenAI,
    cohere_fake: FakeCohere,
    gemini_fake: FakeGemini,
    ollama_fake: FakeOllama,
) -> RunningGateway:
    def deployment(name: str, base_url: str, *models: str) -> ProviderSettings:
        return ProviderSettings(
            name=name, kind=name, base_url=base_url, api_keys=("k",), models=models
        )

    return await start_gateway(
        providers=(
            MOCK,
            deployment("openai", openai_fake.base_url, SMALL),
            deployment("azure_openai", azure_fake.base_url, "my-embeddings"),
            deployment("cohere", cohere_fake.base_url),
            deployment("gemini", gemini_fake.base_url),
            deployment("ollama", ollama_fake.base_url, "nomic-embed-text"),
        ),
        prices=DEFAULT_PRICES,
        primary_retries=0,
    )


def decoded(text: str) -> list[float]:
    """A base64 embedding as the float32 values it holds."""
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _count(items: object) -> int:
    assert isinstance(items, list)
    return len(items)


# -- answers --------------------------------------------------------------------------------------


async def test_floats_come_back_in_openais_list_with_usage_and_the_gateway_headers(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    raw = await client(gw, strict=True).embeddings.with_raw_response.create(
        model=SMALL, input=TEXTS, encoding_format="float"
    )
    answer = raw.parse()
    assert answer.object == "list"
    assert [e.object for e in answer.data] == ["embedding"] * 3
    assert [e.index for e in answer.data] == [0, 1, 2]
    assert [e.embedding for e in answer.data] == [vector(t, 16) for t in TEXTS]
    assert answer.model == SMALL
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (TOKENS, TOKENS)
    assert raw.headers["x-request-id"]
    assert raw.headers["x-gateway-provider"] == "openai"
    assert raw.headers["x-gateway-cache"] == "miss"
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx(TOKENS * 0.02 / 1e6)
    assert openai_fake.requests[0].body["input"] == TEXTS


async def test_the_sdks_default_base64_is_decoded_by_the_sdk_to_the_same_vectors(
    gw: RunningGateway,
) -> None:
    answer = await client(gw).embeddings.create(model=SMALL, input=TEXTS)
    assert [e.embedding for e in answer.data] == [vector(t, 16) for t in TEXTS]


async def test_base64_asked_for_is_little_endian_float32(gw: RunningGateway) -> None:
    answer = await client(gw).embeddings.create(
        model="mock", input="hello world", encoding_format="base64", dimensions=4
    )
    embedding = answer.data[0].embedding
    assert isinstance(embedding, str)  # the SDK leaves an asked-for format as it came
    floats = await client(gw, strict=True).embeddings.create(
        model="mock", input="hello world", encoding_format="float", dimensions=4
    )
    as_float32 = [struct.unpack("<f", struct.pack("<f", x))[0] for x in floats.data[0].embedding]
    assert decoded(embedding) == as_float32
    assert len(as_float32) == 4


async def test_a_single_string_gets_one_embedding(gw: RunningGateway) -> None:
    answer = await client(gw, strict=True).embeddings.create(
        model="mock", input="one text", encoding_format="float"
    )
    assert len(answer.data) == 1
    assert answer.usage.prompt_tokens == 2


async def test_the_same_call_as_v1_embed_gets_the_same_vectors_and_cost(
    gw: RunningGateway,
) -> None:
    answer = await client(gw, strict=True).embeddings.create(
        model=f"openai/{SMALL}", input=["a b c"], encoding_format="float", dimensions=8
    )
    body = {"model": f"openai/{SMALL}", "inputs": ["a b c"], "dimensions": 8}
    async with gw.http.post(gw.http_url + "/v1/embed", data=orjson.dumps(body)) as response:
        native = orjson.loads(await response.read())
    assert native["cached"] is True  # the same call: the first one's cache entry
    as_float32 = [struct.unpack("<f", struct.pack("<f", x))[0] for x in answer.data[0].embedding]
    assert native["embeddings"][0]["values"] == pytest.approx(as_float32)


async def test_a_repeated_call_is_a_cache_hit(gw: RunningGateway, openai_fake: FakeOpenAI) -> None:
    api = client(gw)
    await api.embeddings.create(model=SMALL, input=TEXTS)
    again = await api.embeddings.with_raw_response.create(model=SMALL, input=TEXTS)
    assert again.headers["x-gateway-cache"] == "hit"
    assert float(again.headers["x-gateway-cost-usd"]) == 0.0
    assert len(openai_fake.requests) == 1


# -- token arrays ---------------------------------------------------------------------------------


async def test_token_arrays_reach_openai_as_token_arrays(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    answer = await client(gw, strict=True).embeddings.create(
        model=SMALL, input=[[1, 2, 3], [40, 50]], encoding_format="float"
    )
    assert openai_fake.requests[0].body["input"] == [[1, 2, 3], [40, 50]]
    assert [e.embedding for e in answer.data] == [vector("1 2 3", 16), vector("40 50", 16)]
    assert answer.usage.prompt_tokens == 5


async def test_one_token_array_reaches_azure(
    gw: RunningGateway, azure_fake: FakeAzureOpenAI
) -> None:
    answer = await client(gw).embeddings.create(model="my-embeddings", input=[7, 8, 9])
    assert azure_fake.requests[0].body["input"] == [[7, 8, 9]]
    assert answer.data[0].embedding == vector("7 8 9", 16)


@pytest.mark.parametrize("model", ["embed-english-v3.0", "gemini/text-embedding-004"])
async def test_token_arrays_are_refused_naming_input_where_the_vendor_takes_none(
    gw: RunningGateway, model: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client(gw).embeddings.create(model=model, input=[[1, 2, 3]])
    assert caught.value.param == "input"
    assert caught.value.code == "unsupported_parameter"
    assert "token arrays" in caught.value.message


async def test_token_arrays_are_refused_by_ollama(
    gw: RunningGateway, ollama_fake: FakeOllama
) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client(gw).embeddings.create(model="nomic-embed-text", input=[3, 4])
    assert caught.value.param == "input"
    assert ollama_fake.requests == []


async def test_a_fallback_that_cannot_take_token_arrays_is_skipped(
    gw: RunningGateway, openai_fake: FakeOpenAI, gemini_fake: FakeGemini
) -> None:
    openai_fake.persistent_fault = Fault(status=503)
    with pytest.raises(InternalServerError):
        await client(gw).embeddings.create(
            model=SMALL,
            input=[[1, 2]],
            extra_body={"fallback_models": ["gemini/text-embedding-004"]},
        )
    raw = await client(gw).embeddings.with_raw_response.create(
        model=SMALL,
        input=[[1, 2]],
        extra_body={"fallback_models": ["gemini/text-embedding-004", "azure_openai/x"]},
    )
    assert raw.headers["x-gateway-provider"] == "azure_openai"
    assert gemini_fake.requests == []


@pytest.mark.parametrize(
    ("sent", "param"),
    [(["text", [1, 2]], "input"), ([[1], [-1]], "input[1]"), ([], "input"), ([True], "input")],
)
async def test_a_malformed_input_is_refused_naming_it(
    gw: RunningGateway, sent: Any, param: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client(gw).embeddings.create(model="mock", input=sent)
    assert caught.value.param == param


# -- extras, batches ------------------------------------------------------------------------------


async def test_input_type_reaches_cohere_from_the_body(
    gw: RunningGateway, cohere_fake: FakeCohere
) -> None:
    api = client(gw)
    await api.embeddings.create(model="embed-english-v3.0", input=["q"])
    await api.embeddings.create(
        model="embed-english-v3.0", input=["q"], extra_body={"input_type": "search_query"}
    )
    assert [r.body["input_type"] for r in cohere_fake.requests] == [
        "search_document",
        "search_query",
    ]


async def test_a_failing_model_falls_back_to_the_bodys_fallback_models(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    openai_fake.persistent_fault = Fault(status=503)
    raw = await client(gw).embeddings.with_raw_response.create(
        model=SMALL, input=["x"], extra_body={"fallback_models": ["gemini/text-embedding-004"]}
    )
    assert raw.headers["x-gateway-provider"] == "gemini"
    assert raw.parse().data[0].embedding == vector("x", 16)


async def test_a_batch_larger_than_openais_limit_is_split_and_joined_in_order(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    texts = [f"input {i}" for i in range(2100)]
    answer = await client(gw).embeddings.create(model=SMALL, input=texts)
    assert sorted(_count(r.body["input"]) for r in openai_fake.requests) == [52, 2048]
    assert [e.index for e in answer.data] == list(range(2100))
    assert [e.embedding for e in answer.data] == [vector(t, 16) for t in texts]


async def test_a_batch_larger_than_geminis_limit_is_split_and_joined_in_order(
    gw: RunningGateway, gemini_fake: FakeGemini
) -> None:
    texts = [f"text number {i}" for i in range(150)]
    answer = await client(gw).embeddings.create(model="gemini/text-embedding-004", input=texts)
    assert sorted(_count(r.body["requests"]) for r in gemini_fake.requests) == [50, 100]
    assert [e.embedding for e in answer.data] == [vector(t, 16) for t in texts]


# -- errors ---------------------------------------------------------------------------------------


async def test_an_empty_input_is_refused_naming_its_position(gw: RunningGateway) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client(gw).embeddings.create(model="mock", input=["fine", " "])
    assert caught.value.param == "input[1]"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"].startswith("input[1]: ")
    assert caught.value.type == "invalid_request_error"


async def test_an_unknown_field_is_refused_naming_it(gw: RunningGateway) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client(gw).embeddings.create(model="mock", input="x", extra_body={"truncate": "END"})
    assert caught.value.param == "truncate"


async def test_dimensions_out_of_range_is_refused_naming_dimensions(gw: RunningGateway) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client(gw).embeddings.create(model="mock", input="x", dimensions=0)
    assert caught.value.param == "dimensions"


async def test_an_unknown_model_is_not_found(gw: RunningGateway) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client(gw).embeddings.create(model="no-such-embedder", input="x")
    assert caught.value.code == "model_not_found"


async def test_a_chat_only_deployment_is_refused_naming_model(
    start_gateway: StartGateway,
) -> None:
    claude = ProviderSettings(
        name="claude", kind="anthropic", base_url="http://127.0.0.1:9", models=("claude-x",)
    )
    gw = await start_gateway(providers=(MOCK, claude))
    with pytest.raises(BadRequestError) as caught:
        await client(gw).embeddings.create(model="claude/claude-x", input="x")
    assert caught.value.param == "model"


async def test_a_wrong_key_is_an_authentication_error(start_gateway: StartGateway) -> None:
    gw = await start_gateway(auth_tokens=("sk-right",))
    with pytest.raises(AuthenticationError):
        await client(gw, key="sk-wrong").embeddings.create(model="mock", input="x")
    answer = await client(gw, key="sk-right").embeddings.create(model="mock", input="x")
    assert len(answer.data) == 1


async def test_the_callers_rate_limit_is_a_rate_limit_error_with_retry_after(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(requests_per_minute=1)
    api = client(gw)
    await api.embeddings.create(model="mock", input="x")
    with pytest.raises(RateLimitError) as caught:
        await api.embeddings.create(model="mock", input="y")
    assert caught.value.code == "rate_limit_exceeded"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 120


async def test_a_provider_outage_is_a_server_error_the_sdk_does_not_retry(
    gw: RunningGateway, openai_fake: FakeOpenAI
) -> None:
    openai_fake.persistent_fault = Fault(status=503)
    with pytest.raises(InternalServerError) as caught:
        await client(gw, retries=2).embeddings.create(model=SMALL, input="x")
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(openai_fake.requests) == 1


# -- the ledger -----------------------------------------------------------------------------------


async def test_one_ledger_row_per_call_at_the_same_cost_as_v1_embed(gw: RunningGateway) -> None:
    await client(gw).embeddings.create(
        model=SMALL, input=TEXTS, extra_body={"cache": {"no_cache": True}}
    )
    body: dict[str, Any] = {"model": SMALL, "inputs": TEXTS, "cache": {"no_cache": True}}
    async with gw.http.post(gw.http_url + "/v1/embed", data=orjson.dumps(body)) as response:
        assert response.status == 200
    await gw.gateway.stop()  # graceful shutdown flushes the ledger
    engine = create_engine(gw.gateway.settings.database_url)
    try:
        async with engine.connect() as connection:
            query = select(
                requests.c.transport,
                requests.c.rpc,
                requests.c.provider,
                requests.c.prompt_tokens,
                requests.c.cost_usd,
            ).order_by(requests.c.started_at)
            rows = [tuple(row) for row in await connection.execute(query)]
    finally:
        await engine.dispose()
    assert [row[:4] for row in rows] == [
        ("openai", "Embed", "openai", TOKENS),
        ("http", "Embed", "openai", TOKENS),
    ]
    assert float(rows[0][4]) == float(rows[1][4]) == pytest.approx(TOKENS * 0.02 / 1e6)
