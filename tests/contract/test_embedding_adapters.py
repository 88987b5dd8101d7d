"""The embedding adapters against the loopback fakes of their vendors.

Each vendor: the exact request body and URL, the vectors in input order, a batch larger than the
vendor's limit split at the limit and joined in order, usage (reported or estimated), and HTTP
errors mapped to our error tree. Vectors are the fakes' deterministic ones
(`tests.fakes.embeddings.vector`), so every expected value is computed, not copied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from providers.base import ProviderSettings
from providers.embed_types import Embedder, EmbedRequest
from providers.embeddings import cohere, gemini, mock, ollama, openai
from providers.embeddings.base import EmbedderSpec, HttpEmbedder
from providers.errors import (
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.types import CallIO, Usage
from tests.fakes.azure_openai_server import FakeAzureOpenAI
from tests.fakes.base import Fault, VendorFake
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.embeddings import token_count, vector
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI

KEY = "emb-test-0123456789SECRET"
TEXTS = ("the first text", "a second one", "third")


@dataclass(frozen=True)
class Case:
    """One vendor: its fake, its embedder spec, and the model the tests ask for."""

    name: str
    fake: Callable[[], VendorFake]
    spec: EmbedderSpec
    model: str
    #: The fake's vectors' length when the request names none.
    default_dimensions: int = 16


CASES = (
    Case("openai", FakeOpenAI, openai.SPEC, "text-embedding-3-small"),
    Case("azure_openai", FakeAzureOpenAI, openai.AZURE_SPEC, "my-embeddings"),
    Case("gemini", FakeGemini, gemini.SPEC, "gemini-embedding-001"),
    Case("cohere", FakeCohere, cohere.SPEC, "embed-english-v3.0"),
    Case("ollama", FakeOllama, ollama.SPEC, "nomic-embed-text"),
)


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    """Each vendor in turn."""
    chosen: Case = request.param
    return chosen


@pytest.fixture
async def fake(case: Case) -> AsyncIterator[VendorFake]:
    """The vendor's loopback fake."""
    async with case.fake() as server:
        yield server


def build(case: Case, fake: VendorFake, session: UpstreamClient) -> Embedder:
    settings = ProviderSettings(
        name=f"{case.name}-main", kind=case.spec.kind, base_url=fake.base_url, api_keys=(KEY,)
    )
    return case.spec.factory(settings, session, KeyPool((KEY,), cooldown=60.0))


@pytest.fixture
def embedder(case: Case, fake: VendorFake, session: UpstreamClient) -> Embedder:
    """The vendor's embedder pointed at its fake."""
    return build(case, fake, session)


def ask(model: str, *texts: str, **fields: Any) -> EmbedRequest:
    return EmbedRequest(model, texts, io=CallIO(10.0), **fields)


# -- request bodies, exactly ---------------------------------------------------------------------


async def test_openai_body_asks_for_floats_and_sends_dimensions_when_set(
    session: UpstreamClient,
) -> None:
    case = CASES[0]
    async with FakeOpenAI() as fake:
        await build(case, fake, session).embed(ask(case.model, *TEXTS, dimensions=8))
        assert fake.requests[0].path == "/v1/embeddings"
        assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
        assert fake.requests[0].body == {
            "model": "text-embedding-3-small",
            "input": list(TEXTS),
            "encoding_format": "float",
            "dimensions": 8,
        }


async def test_openai_has_no_input_type_so_none_is_sent(session: UpstreamClient) -> None:
    case = CASES[0]
    async with FakeOpenAI() as fake:
        await build(case, fake, session).embed(ask(case.model, "x", input_type="search_query"))
        assert fake.requests[0].body == {
            "model": "text-embedding-3-small",
            "input": ["x"],
            "encoding_format": "float",
        }


async def test_openai_sends_token_arrays_and_splits_them_at_its_limit(
    session: UpstreamClient,
) -> None:
    case = CASES[0]
    arrays = tuple((i, i + 1) for i in range(openai.MAX_INPUTS + 2))
    async with FakeOpenAI() as fake:
        answer = await build(case, fake, session).embed(
            EmbedRequest(case.model, (), tokens=arrays, io=CallIO(10.0))
        )
        sent = [r.body["input"] for r in fake.requests]
    # Batches go out a few at once: their order of arrival is not fixed, their answers' is.
    assert sorted(sent, key=str) == sorted(
        [[list(a) for a in arrays[:-2]], [list(a) for a in arrays[-2:]]], key=str
    )
    assert answer.vectors == tuple(tuple(vector(f"{i} {i + 1}", 16)) for i, _ in arrays)
    assert answer.usage.prompt_tokens == 2 * len(arrays)


def test_only_openai_compatible_embedders_and_the_mock_take_token_arrays(
    session: UpstreamClient,
) -> None:
    settings = ProviderSettings(name="x", kind="x", base_url="http://127.0.0.1:9")
    takers = {
        spec.kind
        for spec in (openai.SPEC, openai.AZURE_SPEC, gemini.SPEC, cohere.SPEC, ollama.SPEC)
        if spec.factory(settings, session, KeyPool(("k",), cooldown=1.0)).takes_tokens
    }
    assert takers == {"openai", "azure_openai"}
    assert mock.MockEmbedder(settings).takes_tokens


async def test_azure_puts_the_deployment_in_the_path_with_the_api_version(
    session: UpstreamClient,
) -> None:
    case = CASES[1]
    async with FakeAzureOpenAI() as fake:
        await build(case, fake, session).embed(ask(case.model, "x"))
        sent = fake.requests[0]
        assert sent.path == "/openai/deployments/my-embeddings/embeddings"
        assert sent.query == {"api-version": "2024-10-21"}
        assert sent.headers["api-key"] == KEY
        assert sent.body == {"model": "my-embeddings", "input": ["x"], "encoding_format": "float"}


async def test_gemini_sends_one_request_per_input_with_task_type_and_dimensionality(
    session: UpstreamClient,
) -> None:
    case = CASES[2]
    async with FakeGemini() as fake:
        request = ask(case.model, "a", "b", dimensions=8, input_type="search_query")
        await build(case, fake, session).embed(request)
        sent = fake.requests[0]
        assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
        assert sent.headers["x-goog-api-key"] == KEY
        assert sent.body == {
            "requests": [
                {
                    "model": "models/gemini-embedding-001",
                    "content": {"parts": [{"text": text}]},
                    "taskType": "RETRIEVAL_QUERY",
                    "outputDimensionality": 8,
                }
                for text in ("a", "b")
            ]
        }


async def test_gemini_refuses_an_input_type_it_has_no_task_type_for(
    session: UpstreamClient,
) -> None:
    case = CASES[2]
    async with FakeGemini() as fake:
        with pytest.raises(UpstreamBadRequestError, match="input_type"):
            await build(case, fake, session).embed(ask(case.model, "a", input_type="image"))
        assert fake.requests == []


async def test_cohere_defaults_input_type_to_search_document(session: UpstreamClient) -> None:
    case = CASES[3]
    async with FakeCohere() as fake:
        await build(case, fake, session).embed(ask(case.model, *TEXTS))
        assert fake.requests[0].path == "/v2/embed"
        assert fake.requests[0].body == {
            "model": "embed-english-v3.0",
            "texts": list(TEXTS),
            "input_type": "search_document",
            "embedding_types": ["float"],
        }


async def test_cohere_takes_the_callers_input_type_and_output_dimension(
    session: UpstreamClient,
) -> None:
    case = CASES[3]
    async with FakeCohere() as fake:
        request = ask("embed-v4.0", "q", input_type="search_query", dimensions=256)
        answer = await build(case, fake, session).embed(request)
        assert fake.requests[0].body == {
            "model": "embed-v4.0",
            "texts": ["q"],
            "input_type": "search_query",
            "embedding_types": ["float"],
            "output_dimension": 256,
        }
        assert answer.vectors == (tuple(vector("q", 256)),)


async def test_ollama_body_is_model_input_and_dimensions(session: UpstreamClient) -> None:
    case = CASES[4]
    async with FakeOllama() as fake:
        await build(case, fake, session).embed(ask(case.model, *TEXTS, dimensions=8))
        assert fake.requests[0].path == "/api/embed"
        assert fake.requests[0].body == {
            "model": "nomic-embed-text",
            "input": list(TEXTS),
            "dimensions": 8,
        }


# -- answers ------------------------------------------------------------------------------------


async def test_vectors_come_back_one_per_input_in_order(
    case: Case, embedder: Embedder, fake: VendorFake
) -> None:
    answer = await embedder.embed(ask(case.model, *TEXTS))
    assert answer.vectors == tuple(tuple(vector(t, case.default_dimensions)) for t in TEXTS)
    assert len(fake.requests) == 1


async def test_usage_is_the_vendors_count_or_a_marked_estimate(
    case: Case, embedder: Embedder
) -> None:
    answer = await embedder.embed(ask(case.model, *TEXTS))
    if case.name == "gemini":  # Gemini reports no usage for embeddings
        assert answer.usage_estimated
        assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0
    else:
        counted = sum(token_count(t) for t in TEXTS)
        assert not answer.usage_estimated
        assert answer.usage == Usage(prompt_tokens=counted, total_tokens=counted)


async def test_a_batch_over_the_vendors_limit_is_split_at_it_and_joined_in_order(
    case: Case, embedder: Embedder, fake: VendorFake
) -> None:
    assert isinstance(embedder, HttpEmbedder)
    limit = embedder.batch_limit
    texts = tuple(f"text number {i}" for i in range(limit + 3))
    answer = await embedder.embed(ask(case.model, *texts))
    assert len(fake.requests) == 2
    assert answer.vectors == tuple(tuple(vector(t, case.default_dimensions)) for t in texts)
    if case.name != "gemini":
        counted = sum(token_count(t) for t in texts)
        assert answer.usage == Usage(prompt_tokens=counted, total_tokens=counted)


async def test_a_failing_batch_fails_the_whole_call(
    case: Case, embedder: Embedder, fake: VendorFake
) -> None:
    assert isinstance(embedder, HttpEmbedder)
    texts = tuple(f"text number {i}" for i in range(2 * embedder.batch_limit + 1))
    fake.fail_next(Fault(status=503))
    with pytest.raises(UpstreamUnavailableError):
        await embedder.embed(ask(case.model, *texts))


def test_batch_limits_are_the_vendors() -> None:
    assert openai.OpenAIEmbedder.batch_limit == 2048
    assert openai.AzureOpenAIEmbedder.batch_limit == 2048
    assert gemini.GeminiEmbedder.batch_limit == 100
    assert cohere.CohereEmbedder.batch_limit == 96


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, UpstreamBadRequestError),
        (401, UpstreamAuthError),
        (429, UpstreamRateLimitedError),
        (503, UpstreamUnavailableError),
    ],
)
async def test_http_errors_map_to_our_errors_without_the_key(
    case: Case,
    embedder: Embedder,
    fake: VendorFake,
    status: int,
    error: type[Exception],
) -> None:
    fake.fail_next(Fault(status=status, error_message=f"no thanks {KEY}"))
    with pytest.raises(error) as raised:
        await embedder.embed(ask(case.model, "x"))
    assert KEY not in str(raised.value)


async def test_a_reply_without_vectors_is_unavailable(
    case: Case, embedder: Embedder, fake: VendorFake
) -> None:
    fake.fail_next(Fault(raw_body=b'{"unexpected": true}'))
    with pytest.raises(UpstreamUnavailableError, match="malformed"):
        await embedder.embed(ask(case.model, "x"))


async def test_a_reply_with_too_few_vectors_is_unavailable(
    case: Case, embedder: Embedder, fake: VendorFake
) -> None:
    one = await embedder.embed(ask(case.model, "only"))
    assert len(one.vectors) == 1
    fake.fail_next(Fault(raw_body=_reply_for_one(case)))
    with pytest.raises(UpstreamUnavailableError, match="malformed"):
        await embedder.embed(ask(case.model, "a", "b"))


def _reply_for_one(case: Case) -> bytes:
    values = "[0.6, 0.8]"
    return {
        "openai": b'{"data": [{"index": 0, "embedding": ' + values.encode() + b"}]}",
        "azure_openai": b'{"data": [{"index": 0, "embedding": ' + values.encode() + b"}]}",
        "gemini": b'{"embeddings": [{"values": ' + values.encode() + b"}]}",
        "cohere": b'{"embeddings": {"float": [' + values.encode() + b"]}}",
        "ollama": b'{"embeddings": [' + values.encode() + b"]}",
    }[case.name]


# -- the mock -----------------------------------------------------------------------------------


async def test_the_mock_is_deterministic_normalised_and_sized() -> None:
    embedder = mock.MockEmbedder(ProviderSettings(name="mock", kind="mock"))
    first = await embedder.embed(EmbedRequest("mock", ("hello world", "bye")))
    again = await embedder.embed(EmbedRequest("other", ("bye",), dimensions=32))
    assert first.vectors[0] != first.vectors[1]
    assert len(first.vectors[0]) == mock.DEFAULT_DIMENSIONS
    assert len(again.vectors[0]) == 32
    for values in (*first.vectors, *again.vectors):
        assert abs(sum(x * x for x in values) - 1.0) < 1e-5
    repeat = await embedder.embed(EmbedRequest("mock", ("hello world", "bye")))
    assert repeat.vectors == first.vectors
    assert first.usage == Usage(prompt_tokens=3, total_tokens=3)


async def test_the_mock_embeds_token_arrays_as_the_text_of_their_ids() -> None:
    embedder = mock.MockEmbedder(ProviderSettings(name="mock", kind="mock"))
    answer = await embedder.embed(EmbedRequest("mock", (), tokens=((1, 2, 3), (4,))))
    assert answer.vectors == (
        mock.mock_vector("1 2 3", mock.DEFAULT_DIMENSIONS),
        mock.mock_vector("4", mock.DEFAULT_DIMENSIONS),
    )
    assert answer.usage == Usage(prompt_tokens=4, total_tokens=4)
