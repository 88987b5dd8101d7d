"""The cache is shared between replicas through Redis, and a Redis outage never fails a call."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from providers.base import ProviderSettings
from tests.conftest import StartGateway
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import spawn
from tests.redis_support import redis_prefix_fixture, redis_url_fixture  # noqa: F401

BODY = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "shared between replicas"}],
        "temperature": 0,
        "metadata": {"tenant": "replicated"},
    }
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def post(http: aiohttp.ClientSession, port: int) -> dict[str, object]:
    async with http.post(f"http://127.0.0.1:{port}/v1/complete", data=BODY) as reply:
        assert reply.status == 200
        body: dict[str, object] = orjson.loads(await reply.read())
        return body


async def test_an_answer_from_one_replica_is_a_hit_on_another(
    fake: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    env = {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": redis_prefix,
    }
    first, second = await asyncio.gather(spawn(**env), spawn(**env))
    try:
        async with aiohttp.ClientSession() as http:
            answered = await post(http, first.http_port)
            await asyncio.sleep(0.1)  # the store happens off the request path
            replayed = await post(http, second.http_port)
    finally:
        codes = await asyncio.gather(first.stop(), second.stop())
    assert (answered["cached"], replayed["cached"]) == (False, True)
    assert replayed["content"] == answered["content"]
    assert replayed["usage"] == answered["usage"]
    assert len(fake.requests) == 1
    assert list(codes) == [0, 0]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("outage", ["refused", "silent"])
async def test_with_redis_down_calls_succeed_paying_at_most_the_redis_timeout(
    start_gateway: StartGateway, fake: FakeOpenAI, silent_server: int, outage: str
) -> None:
    port = closed_port() if outage == "refused" else silent_server
    openai = ProviderSettings(
        name="openai", kind="openai", base_url=fake.base_url, models=("gpt-4o-mini",)
    )
    gw = await start_gateway(
        providers=(openai,),
        cache_backend="redis",
        redis_url=f"redis://127.0.0.1:{port}/0",
        cache_redis_timeout=0.1,
    )
    durations = []
    for _ in range(3):
        started = time.perf_counter()
        answer = await post(gw.http, gw.gateway.http_port)
        durations.append(time.perf_counter() - started)
        assert answer["cached"] is False
    assert len(fake.requests) == 3
    # One lookup per call waits at most the 0.1 s timeout (the store is off the request path).
    assert max(durations) < 0.1 + 0.25
    async with gw.http.get(gw.metrics_url) as reply:
        metrics = await reply.text()
    assert 'gateway_cache_errors_total{backend="redis",operation="get"}' in metrics
