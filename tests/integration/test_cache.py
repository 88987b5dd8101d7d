"""The response cache: fast, shared between replicas, and never wrong (memory and real Redis)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest

from gateway.pipeline.pricing import DEFAULT_PRICES
from gateway.v1 import gateway_pb2 as pb
from providers.base import ProviderSettings
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.base import Fault
from tests.fakes.openai_server import FakeOpenAI
from tests.redis_support import redis_prefix_fixture, redis_url_fixture  # noqa: F401
from tests.sse import read_sse

MODEL = "gpt-4o-mini"
OTHER_MODEL = "gpt-4o"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(reply="Deterministic answer, cached once.") as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for each cache backend (Redis: the real server, keys under a test prefix)."""
    if request.param == "memory":
        return {"cache_backend": "memory"}
    return {
        "cache_backend": "redis",
        "redis_url": request.getfixturevalue("redis_url"),
        "cache_key_prefix": request.getfixturevalue("redis_prefix"),
        "cache_redis_timeout": 0.5,
    }


@pytest.fixture
async def gw(
    start_gateway: StartGateway, fake: FakeOpenAI, backend: dict[str, Any]
) -> RunningGateway:
    openai = ProviderSettings(
        name="openai",
        kind="openai",
        base_url=fake.base_url,
        api_keys=("k",),
        models=(MODEL, OTHER_MODEL),
    )
    # A fake is not the vendor's public API: list prices apply to it only as configured prices.
    return await start_gateway(
        providers=(openai,), primary_retries=0, prices=DEFAULT_PRICES, **backend
    )


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


def ask(tenant: str, text: str = "What is cached?", **fields: Any) -> pb.CompleteRequest:
    fields.setdefault("temperature", 0)
    fields.setdefault("model", MODEL)
    return pb.CompleteRequest(
        messages=[pb.Message(role="user", content=text)], metadata={"tenant": tenant}, **fields
    )


def stream_ask(tenant: str, **fields: Any) -> pb.StreamCompleteRequest:
    request = ask(tenant, **fields)
    streamed = pb.StreamCompleteRequest()
    streamed.ParseFromString(request.SerializeToString())  # the two share their wire shape
    return streamed


async def test_identical_deterministic_request_is_a_hit_with_the_original_usage(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    first = await gw.stub.Complete(ask(tenant))
    await asyncio.sleep(0.05)  # stores are off the request path
    second = await gw.stub.Complete(ask(tenant))
    assert len(fake.requests) == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.content == first.content
    assert second.usage == first.usage
    assert first.cost_usd > 0
    assert second.cost_usd == 0
    assert list(second.attempts) == []


@pytest.mark.parametrize(
    "change",
    [
        {"metadata_tenant": "someone-else"},
        {"model": OTHER_MODEL},
        {"temperature": 0.5},
        {"max_tokens": 17},
        {"text": "A different question"},
    ],
    ids=["tenant", "model", "temperature", "max_tokens", "messages"],
)
async def test_anything_that_changes_the_answer_is_a_miss(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str, change: dict[str, Any]
) -> None:
    await gw.stub.Complete(ask(tenant))
    await asyncio.sleep(0.05)
    fields = dict(change)  # the parametrized dict is shared by both backends' runs
    other_tenant = fields.pop("metadata_tenant", tenant)
    response = await gw.stub.Complete(ask(other_tenant, **fields))
    assert not response.cached
    assert len(fake.requests) == 2


async def test_temperature_unset_is_never_cached(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    request = pb.CompleteRequest(
        model=MODEL, messages=[pb.Message(role="user", content="x")], metadata={"tenant": tenant}
    )
    for _ in range(2):
        assert not (await gw.stub.Complete(request)).cached
        await asyncio.sleep(0.05)
    assert len(fake.requests) == 2


async def test_errors_and_truncated_answers_are_never_cached(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    fake.fail_next(Fault(status=500))
    with pytest.raises(Exception, match="UNAVAILABLE"):
        await gw.stub.Complete(ask(tenant))
    fake.finish_reason = "length"
    assert (await gw.stub.Complete(ask(tenant))).finish_reason == "length"
    await asyncio.sleep(0.05)
    fake.finish_reason = "stop"
    assert not (await gw.stub.Complete(ask(tenant))).cached
    assert len(fake.requests) == 3


async def test_a_cut_stream_is_never_cached(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    fake.fail_next(Fault(break_after=2, break_with="eof"))
    with pytest.raises(Exception, match="UNAVAILABLE"):
        _ = [m async for m in gw.stub.StreamComplete(stream_ask(tenant))]
    await asyncio.sleep(0.05)
    messages = [m async for m in gw.stub.StreamComplete(stream_ask(tenant))]
    assert not messages[-1].cached
    assert len(fake.requests) == 2


async def test_ttl_expiry_makes_a_miss(gw: RunningGateway, fake: FakeOpenAI, tenant: str) -> None:
    short = pb.CachePolicy()
    short.ttl.FromMilliseconds(300)
    await gw.stub.Complete(ask(tenant, cache=short))
    await asyncio.sleep(0.05)
    assert (await gw.stub.Complete(ask(tenant))).cached
    await asyncio.sleep(0.4)
    assert not (await gw.stub.Complete(ask(tenant))).cached
    assert len(fake.requests) == 2


async def test_no_cache_skips_the_lookup_but_stores(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    await gw.stub.Complete(ask(tenant))
    await asyncio.sleep(0.05)
    fake.reply = "A fresher answer."
    fresh = await gw.stub.Complete(ask(tenant, cache=pb.CachePolicy(no_cache=True)))
    assert (fresh.cached, fresh.content) == (False, "A fresher answer.")
    await asyncio.sleep(0.05)
    assert (await gw.stub.Complete(ask(tenant))).content == "A fresher answer."
    assert len(fake.requests) == 2


async def test_no_store_does_not_store(gw: RunningGateway, fake: FakeOpenAI, tenant: str) -> None:
    await gw.stub.Complete(ask(tenant, cache=pb.CachePolicy(no_store=True)))
    await asyncio.sleep(0.05)
    assert not (await gw.stub.Complete(ask(tenant))).cached
    assert len(fake.requests) == 2


async def test_a_stream_is_stored_once_and_replayed_with_the_same_pieces_and_usage(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    per_chunk = (("x-stream-coalescing", "off"),)  # the pieces as stored, unmerged
    original = [m async for m in gw.stub.StreamComplete(stream_ask(tenant), metadata=per_chunk)]
    await asyncio.sleep(0.05)
    replayed = [m async for m in gw.stub.StreamComplete(stream_ask(tenant), metadata=per_chunk)]
    assert len(fake.requests) == 1
    assert [m.delta for m in replayed] == [m.delta for m in original]
    assert replayed[-1].usage == original[-1].usage
    assert replayed[-1].finish_reason == original[-1].finish_reason == "stop"
    assert all(m.cached for m in replayed)
    assert replayed[-1].cost_usd == 0


async def test_a_unary_answer_serves_a_stream_and_a_stream_serves_a_unary_call(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    unary = await gw.stub.Complete(ask(tenant, text="first unary"))
    await asyncio.sleep(0.05)
    replay = [m async for m in gw.stub.StreamComplete(stream_ask(tenant, text="first unary"))]
    assert "".join(m.delta for m in replay) == unary.content
    assert replay[-1].usage == unary.usage

    streamed = [m async for m in gw.stub.StreamComplete(stream_ask(tenant, text="first stream"))]
    await asyncio.sleep(0.05)
    hit = await gw.stub.Complete(ask(tenant, text="first stream"))
    assert hit.cached
    assert hit.content == "".join(m.delta for m in streamed)
    assert len(fake.requests) == 2


async def test_50_concurrent_identical_misses_reach_the_upstream_once(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    fake.persistent_fault = Fault(delay=0.3)
    answers = await asyncio.gather(*(gw.stub.Complete(ask(tenant)) for _ in range(50)))
    assert len(fake.requests) == 1
    assert {a.content for a in answers} == {fake.reply}
    assert sum(not a.cached for a in answers) == 1


async def wait_for_requests(fake: FakeOpenAI, count: int) -> None:
    async with asyncio.timeout(5):
        while len(fake.requests) < count:  # noqa: ASYNC110 (the fake's requests are a list)
            await asyncio.sleep(0.01)


async def test_a_coalesced_follower_keeps_its_own_deadline(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    fake.persistent_fault = Fault(delay=1.0)
    leader = asyncio.ensure_future(gw.stub.Complete(ask(tenant), timeout=5))
    await wait_for_requests(fake, 1)
    started = time.perf_counter()
    async with gw.http.post(
        gw.http_url + "/v1/complete",
        data=json_ask(tenant, timeout="0.2s"),
        headers={"x-request-timeout": "5s"},
    ) as reply:
        assert reply.status == 504, await reply.text()
        assert (await reply.json())["error"]["code"] == "DEADLINE_EXCEEDED"
    assert time.perf_counter() - started < 0.7  # its own 0.2 s, not the leader's 1 s
    started = time.perf_counter()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        # The gateway's own bound (no client-side deadline): the follower's x-request-timeout.
        await gw.stub.Complete(ask(tenant), metadata=(("x-request-timeout", "200ms"),))
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.perf_counter() - started < 0.7
    answer = await leader  # the leader is not disturbed by followers that left
    assert (answer.content, answer.cached) == (fake.reply, False)
    assert len(fake.requests) == 1


async def test_a_cancelled_follower_cancels_neither_the_leader_nor_the_other_followers(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    fake.persistent_fault = Fault(delay=0.6)
    leader = asyncio.ensure_future(gw.stub.Complete(ask(tenant)))
    await wait_for_requests(fake, 1)
    leaving = gw.stub.Complete(ask(tenant))
    staying = asyncio.ensure_future(gw.stub.Complete(ask(tenant)))
    await asyncio.sleep(0.15)
    leaving.cancel()
    answers = await asyncio.gather(leader, staying)
    assert [(a.content, a.cached) for a in answers] == [(fake.reply, False), (fake.reply, True)]
    assert len(fake.requests) == 1
    assert fake.disconnects == 0


async def test_a_cancelled_leader_does_not_fail_its_followers(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    fake.persistent_fault = Fault(delay=0.6)
    leader = gw.stub.Complete(ask(tenant))
    await wait_for_requests(fake, 1)
    followers = [asyncio.ensure_future(gw.stub.Complete(ask(tenant))) for _ in range(3)]
    await asyncio.sleep(0.15)
    leader.cancel()
    answers = await asyncio.gather(*followers)  # each is answered: none inherits the cancel
    assert {a.content for a in answers} == {fake.reply}
    await asyncio.wait_for(fake.client_disconnected.wait(), 5)  # the leader's call was aborted


def json_ask(tenant: str, **fields: Any) -> bytes:
    message = {"role": "user", "content": "What is cached?"}
    body = {"model": MODEL, "messages": [message], "temperature": 0, "metadata": {"tenant": tenant}}
    return orjson.dumps({**body, **fields})


async def test_json_spelling_order_and_default_values_do_not_change_the_key(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    messages = [{"role": "user", "content": "spelled two ways"}]
    first = {"model": MODEL, "messages": messages, "temperature": 0, "metadata": {"tenant": tenant}}
    second = {
        "metadata": {"tenant": tenant},
        "topP": 1.0,
        "stop": [],
        "temperature": 0.0,
        "messages": messages,
        "model": MODEL,
    }
    replies = []
    for body in (first, second):
        async with gw.http.post(gw.http_url + "/v1/complete", data=orjson.dumps(body)) as r:
            replies.append(orjson.loads(await r.read()))
        await asyncio.sleep(0.05)
    assert [r["cached"] for r in replies] == [False, True]
    assert len(fake.requests) == 1


async def test_json_stream_hit_is_served_as_sse(
    gw: RunningGateway, fake: FakeOpenAI, tenant: str
) -> None:
    body = orjson.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "sse"}],
            "temperature": 0,
            "metadata": {"tenant": tenant},
        }
    )
    for _ in range(2):
        async with gw.http.post(gw.http_url + "/v1/complete:stream", data=body) as reply:
            events = await read_sse(reply)
        await asyncio.sleep(0.05)
    chunks = [orjson.loads(data) for _, data in events[:-1]]
    assert events[-1] == ("message", "[DONE]")
    assert all(c["cached"] for c in chunks)
    assert "".join(c.get("delta", "") for c in chunks) == fake.reply
    assert len(fake.requests) == 1
