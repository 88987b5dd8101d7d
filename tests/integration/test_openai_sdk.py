"""The official `openai` SDK against the gateway's OpenAI-compatible routes, strictly validated.

The gateway serves the mock provider and an OpenAI deployment in front of the loopback fake;
every client is built with `_strict_response_validation=True`, so a missing or mistyped field
in any answer fails the test.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import orjson
import pytest
from openai import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
)
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from sqlalchemy import select

from gateway.pipeline.pricing import DEFAULT_PRICES
from gateway.store.engine import create_engine
from gateway.store.models import requests
from providers.base import ProviderSettings
from tests.conftest import MOCK, RunningGateway, StartGateway
from tests.contract.cases import CASES, REPLY
from tests.fakes.base import VendorFake
from tests.fakes.openai_server import FakeOpenAI, Fault
from tests.sdk_clients import sdk_client as client

MODEL = "gpt-4o-mini"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


#: A mock deployment that takes text only (no seed, no tools...): what a capability check refuses.
TEXT_MOCK = replace(MOCK, name="plain", models=("plain",), options={"capabilities": "text"})


def openai_deployment(fake: FakeOpenAI) -> ProviderSettings:
    return ProviderSettings(
        name="openai", kind="openai", base_url=fake.base_url, api_keys=("sk-up",), models=(MODEL,)
    )


@pytest.fixture
async def gw(start_gateway: StartGateway, fake: FakeOpenAI) -> RunningGateway:
    return await start_gateway(
        providers=(MOCK, openai_deployment(fake)), primary_retries=0, prices=DEFAULT_PRICES
    )


async def ledger(gw: RunningGateway) -> list[tuple[Any, ...]]:
    """(transport, rpc, status, provider, cost) of every call, once the gateway has stopped."""
    await gw.gateway.stop()
    engine = create_engine(gw.gateway.settings.database_url)
    try:
        async with engine.connect() as connection:
            query = select(
                requests.c.transport,
                requests.c.rpc,
                requests.c.status,
                requests.c.provider,
                requests.c.cost_usd,
            ).order_by(requests.c.started_at)
            return [tuple(row) for row in await connection.execute(query)]
    finally:
        await engine.dispose()


# -- answers -------------------------------------------------------------------------------------


async def test_a_completion_has_openais_shape_and_the_gateway_headers(gw: RunningGateway) -> None:
    raw = await client(gw).chat.completions.with_raw_response.create(
        model="mock", messages=HELLO, temperature=0
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert (completion.choices[0].message.content or "").endswith("You said: Hello there")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.completion_tokens_details is not None
    assert completion._request_id == raw.headers["x-request-id"]
    assert raw.headers["x-gateway-provider"] == "mock"
    assert raw.headers["x-gateway-cache"] == "miss"
    assert float(raw.headers["x-gateway-cost-usd"]) == 0.0


async def test_a_repeated_deterministic_completion_is_a_cache_hit(gw: RunningGateway) -> None:
    api = client(gw)
    await api.chat.completions.create(model="mock", messages=HELLO, temperature=0)
    again = await api.chat.completions.with_raw_response.create(
        model="mock", messages=HELLO, temperature=0
    )
    assert again.headers["x-gateway-cache"] == "hit"


async def test_usage_carries_cached_and_reasoning_tokens(gw: RunningGateway) -> None:
    completion = await client(gw).chat.completions.create(model=f"openai/{MODEL}", messages=HELLO)
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 5, 17)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 4
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0


async def test_a_stream_with_usage_ends_with_one_usage_chunk_and_done(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(
        model="mock", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("You said: Hello there")
    finished = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finished[-1] == "stop"
    assert [c for c in chunks if not c.choices] == [chunks[-1]]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


async def test_a_stream_without_usage_has_no_empty_chunk(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(model="mock", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)


async def test_the_wire_ends_with_done(gw: RunningGateway) -> None:
    body = {"model": "mock", "messages": HELLO, "stream": True}
    async with gw.http.post(gw.http_url + "/v1/chat/completions", json=body) as reply:
        raw = await reply.read()
        assert reply.headers["Content-Type"].startswith("text/event-stream")
        assert reply.headers["x-gateway-provider"] == "mock"
    assert raw.endswith(b"data: [DONE]\n\n")


async def test_n_choices_are_n_accounted_calls(gw: RunningGateway) -> None:
    completion = await client(gw).chat.completions.create(model="mock", messages=HELLO, n=2)
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.message.content for c in completion.choices)
    rows = await ledger(gw)
    assert [(row[0], row[2]) for row in rows] == [("openai", "OK"), ("openai", "OK")]


async def test_n_streamed_choices_each_start_and_finish(gw: RunningGateway) -> None:
    stream = await client(gw).chat.completions.create(
        model="mock", messages=HELLO, n=2, stream=True
    )
    chunks = [chunk async for chunk in stream]
    for index in (0, 1):
        mine = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == index]
        assert mine[0].delta.role == "assistant"
        assert mine[-1].finish_reason == "stop"
        assert "".join(c.delta.content or "" for c in mine).endswith("Hello there")


async def test_six_vendors_answer_the_same_text(
    start_gateway: StartGateway,
) -> None:
    async with AsyncExitStack() as stack:
        fakes: dict[str, VendorFake] = {
            c.kind: await stack.enter_async_context(c.fake()) for c in CASES
        }
        gw = await start_gateway(providers=tuple(c.settings(fakes[c.kind]) for c in CASES))
        api = client(gw)
        for case in CASES:
            model = f"{case.kind}/{case.model}"
            completion = await api.chat.completions.create(model=model, messages=HELLO)
            assert completion.choices[0].message.content == REPLY, case.kind
            stream = await api.chat.completions.create(
                model=model, messages=HELLO, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == REPLY, case.kind
            assert chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens == case.usage.completion_tokens


# -- models --------------------------------------------------------------------------------------


async def test_models_lists_every_routable_model(gw: RunningGateway) -> None:
    page = await client(gw).models.list()
    ids = {model.id: model.owned_by for model in page.data}
    assert ids == {
        "mock": "mock",
        "mock/mock": "mock",
        MODEL: "openai",
        f"openai/{MODEL}": "openai",
    }
    assert len({model.created for model in page.data}) == 1


async def test_a_model_with_a_slash_is_retrieved(gw: RunningGateway) -> None:
    model = await client(gw).models.retrieve(f"openai/{MODEL}")
    assert (model.id, model.object, model.owned_by) == (f"openai/{MODEL}", "model", "openai")


async def test_an_unknown_model_is_not_found(gw: RunningGateway) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client(gw).models.retrieve("openai/gpt-nope")
    assert caught.value.code == "model_not_found"
    with pytest.raises(NotFoundError) as caught:
        await client(gw).chat.completions.create(model="gpt-nope", messages=HELLO)
    assert caught.value.code == "model_not_found"
    assert caught.value.request_id


# -- errors --------------------------------------------------------------------------------------


async def test_a_field_the_gateway_cannot_honour_is_a_400_naming_it(gw: RunningGateway) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client(gw).chat.completions.create(
            model="mock", messages=HELLO, frequency_penalty=0.5
        )
    assert caught.value.param == "frequency_penalty"
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.type == "invalid_request_error"


async def test_a_bad_value_is_a_400_naming_its_field(gw: RunningGateway) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client(gw).chat.completions.create(model="mock", messages=HELLO, temperature=3)
    assert caught.value.param == "temperature"


async def test_a_capability_the_deployment_lacks_is_a_400_naming_it(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(providers=(TEXT_MOCK,))
    with pytest.raises(BadRequestError) as caught:
        await client(gw).chat.completions.create(model="plain", messages=HELLO, seed=7)
    assert caught.value.param == "seed"


async def test_dropping_unsupported_params_names_them(start_gateway: StartGateway) -> None:
    gw = await start_gateway(providers=(TEXT_MOCK,), drop_unsupported_params=True)
    raw = await client(gw).chat.completions.with_raw_response.create(
        model="plain", messages=HELLO, seed=7, frequency_penalty=0.5
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-gateway-dropped-params"] == "frequency_penalty,seed"


async def test_a_wrong_key_is_an_authentication_error(start_gateway: StartGateway) -> None:
    gw = await start_gateway(auth_tokens=("sk-right",))
    with pytest.raises(AuthenticationError) as caught:
        await client(gw, key="sk-wrong").chat.completions.create(model="mock", messages=HELLO)
    assert caught.value.code == "invalid_api_key"
    with pytest.raises(AuthenticationError):
        await client(gw, key="sk-wrong").models.list()
    completion = await client(gw, key="sk-right").chat.completions.create(
        model="mock", messages=HELLO
    )
    assert completion.choices[0].message.content


async def test_api_key_and_x_api_key_headers_authenticate(start_gateway: StartGateway) -> None:
    gw = await start_gateway(auth_tokens=("sk-right",))
    body = {"model": "mock", "messages": HELLO}
    for header in ("api-key", "x-api-key"):
        async with gw.http.post(
            gw.http_url + "/v1/chat/completions", json=body, headers={header: "sk-right"}
        ) as reply:
            assert reply.status == 200, header


async def test_a_caller_over_its_limit_gets_a_rate_limit_error_with_retry_after(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(requests_per_minute=1)
    api = client(gw)
    await api.chat.completions.create(model="mock", messages=HELLO)
    with pytest.raises(RateLimitError) as caught:
        await api.chat.completions.create(model="mock", messages=HELLO)
    headers = caught.value.response.headers
    assert caught.value.code == "rate_limit_exceeded"
    assert 1 <= int(headers["retry-after"]) <= 120  # the longest wait the SDK honours
    assert abs(int(headers["retry-after-ms"]) / 1000 - int(headers["retry-after"])) <= 1
    assert "x-should-retry" not in headers


async def test_the_sdk_waits_the_retry_after_of_a_429(gw: RunningGateway, fake: FakeOpenAI) -> None:
    fake.fail_next(Fault(status=429, headers={"retry-after": "1"}))
    started = time.monotonic()
    completion = await client(gw, retries=1).chat.completions.create(
        model=f"openai/{MODEL}", messages=HELLO
    )
    assert completion.choices[0].message.content == fake.reply
    assert time.monotonic() - started >= 1.0


async def test_a_provider_outage_is_not_retried_by_the_sdk(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.fail_next(*[Fault(status=500)] * 3)
    with pytest.raises(InternalServerError) as caught:
        await client(gw, retries=2).chat.completions.create(model=f"openai/{MODEL}", messages=HELLO)
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.status_code == 503
    assert len(fake.requests) == 1  # the gateway's one try; the SDK's two retries never came


async def test_a_failure_mid_stream_raises_in_the_sdk(gw: RunningGateway, fake: FakeOpenAI) -> None:
    fake.fail_next(Fault(break_after=2, break_with="cut"))
    stream = await client(gw).chat.completions.create(
        model=f"openai/{MODEL}", messages=HELLO, stream=True
    )
    seen: list[ChatCompletionChunk] = []
    with pytest.raises(APIError) as caught:
        await read_into(stream, seen)
    assert seen
    assert not isinstance(caught.value, APIConnectionError)  # the gateway's error event, no cut
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "server_error"


async def test_a_stream_that_fails_before_its_first_chunk_gets_a_status(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(status=500))
    with pytest.raises(InternalServerError) as caught:
        await client(gw).chat.completions.create(
            model=f"openai/{MODEL}", messages=HELLO, stream=True
        )
    assert caught.value.status_code == 503
    assert caught.value.response.headers["x-should-retry"] == "false"


async def read_into(stream: AsyncIterator[ChatCompletionChunk], into: list[Any]) -> None:
    async for chunk in stream:
        into.append(chunk)


async def test_a_fallback_shows_in_the_provider_header(
    gw: RunningGateway, fake: FakeOpenAI
) -> None:
    fake.fail_next(Fault(status=500))
    raw = await client(gw).chat.completions.with_raw_response.create(
        model=f"openai/{MODEL}", messages=HELLO, extra_body={"fallback_models": ["mock"]}
    )
    assert raw.headers["x-gateway-provider"] == "mock"


async def test_chat_completions_and_complete_account_alike(gw: RunningGateway) -> None:
    await client(gw).chat.completions.create(
        model=f"openai/{MODEL}", messages=HELLO, extra_body={"cache": {"no_cache": True}}
    )
    body = {"model": f"openai/{MODEL}", "messages": HELLO, "cache": {"no_cache": True}}
    async with gw.http.post(gw.http_url + "/v1/complete", data=orjson.dumps(body)) as reply:
        assert reply.status == 200
    rows = await ledger(gw)
    assert [row[:4] for row in rows] == [
        ("openai", "Complete", "OK", "openai"),
        ("http", "Complete", "OK", "openai"),
    ]
    assert rows[0][4] == rows[1][4] > 0
