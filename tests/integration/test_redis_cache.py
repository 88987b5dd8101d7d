"""RedisCache against a real Redis, and against servers that refuse or never answer."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlencode, urlsplit
from uuid import uuid4

import pytest
import redis.exceptions

from cache.backend import CacheError
from cache.redis_backend import RedisCache
from tests.conftest import StartGateway
from tests.redis_support import (  # noqa: F401  (pytest registers imported fixtures)
    gateway_client,
    redis_prefix_fixture,
    redis_url_fixture,
    refused_url_fixture,
    silent_url_fixture,
    sync_client,
)

TIMEOUT = 0.1
"""The cache's timeout in these tests: short, so a stall shows up as a slow test."""


@pytest.fixture
async def cache(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisCache]:
    """A cache on the real Redis, confined to this test's prefix."""
    async with gateway_client(redis_url, timeout=1.0) as client:
        yield RedisCache(client, timeout=1.0, prefix=redis_prefix)


def test_is_named_redis(cache: RedisCache) -> None:
    assert cache.name == "redis"


async def test_binary_value_round_trips(cache: RedisCache) -> None:
    value = bytes(range(256)) * 4

    await cache.set("k", value, ttl=60)

    assert await cache.get("k") == value


async def test_unknown_key_is_a_miss(cache: RedisCache) -> None:
    assert await cache.get("missing") is None


async def test_value_expires_after_its_ttl(cache: RedisCache) -> None:
    await cache.set("k", b"value", ttl=0.2)
    assert await cache.get("k") == b"value"

    await asyncio.sleep(0.4)

    assert await cache.get("k") is None


@pytest.mark.parametrize("ttl", [0, -1.0])
async def test_non_positive_ttl_is_not_stored(cache: RedisCache, ttl: float) -> None:
    await cache.set("k", b"value", ttl=ttl)

    assert await cache.get("k") is None


async def test_keys_are_stored_under_the_prefix(
    redis_url: str,
    redis_prefix: str,
) -> None:
    async with gateway_client(redis_url, timeout=1.0) as shared:
        first = RedisCache(shared, timeout=1.0, prefix=f"{redis_prefix}one:")
        second = RedisCache(shared, timeout=1.0, prefix=f"{redis_prefix}two:")
        await first.set("k", b"from first", ttl=60)
        await second.set("k", b"from second", ttl=60)

        assert await first.get("k") == b"from first"
        assert await second.get("k") == b"from second"
        with sync_client(redis_url) as client:
            assert client.get(f"{redis_prefix}one:k") == b"from first"
            assert client.get("k") is None


async def test_refused_connection_raises_cache_error_quickly(refused_url: str) -> None:
    started = time.monotonic()
    async with gateway_client(refused_url, timeout=TIMEOUT) as client:
        cache = RedisCache(client, timeout=TIMEOUT)
        with pytest.raises(CacheError, match=r"redis GET on 127\.0\.0\.1:"):
            await cache.get("k")

    assert time.monotonic() - started < TIMEOUT + 0.2


async def get_once(cache: RedisCache) -> None:
    """One GET."""
    await cache.get("k")


async def set_once(cache: RedisCache) -> None:
    """One SET."""
    await cache.set("k", b"value", ttl=60)


@pytest.mark.parametrize("command", [get_once, set_once], ids=["get", "set"])
async def test_silent_server_raises_cache_error_within_the_timeout(
    silent_url: str, command: Callable[[RedisCache], Awaitable[None]]
) -> None:
    started = time.monotonic()
    async with gateway_client(silent_url, timeout=TIMEOUT) as client:
        with pytest.raises(CacheError) as caught:
            await command(RedisCache(client, timeout=TIMEOUT))

    assert time.monotonic() - started < TIMEOUT + 0.5
    assert isinstance(caught.value.__cause__, TimeoutError | redis.exceptions.TimeoutError)


async def test_socket_timeouts_in_the_url_cannot_stretch_the_timeout(silent_url: str) -> None:
    lax = f"{silent_url}?socket_timeout=30&socket_connect_timeout=30"
    started = time.monotonic()
    async with gateway_client(lax, timeout=TIMEOUT) as client:
        with pytest.raises(CacheError, match="no reply within the timeout"):
            await RedisCache(client, timeout=TIMEOUT).get("k")

    assert time.monotonic() - started < TIMEOUT + 0.5


async def test_error_message_never_shows_the_password(refused_url: str) -> None:
    with_password = refused_url.replace("redis://", "redis://cache-user:hunter2-secret@")
    async with gateway_client(with_password, timeout=TIMEOUT) as client:
        with pytest.raises(CacheError) as caught:
            await RedisCache(client, timeout=TIMEOUT).set("k", b"value", ttl=60)

    assert "hunter2-secret" not in str(caught.value)
    assert "cache-user" not in str(caught.value)


def connections_named(redis_url: str, name: str) -> int:
    """How many connections the server currently has from clients called `name`."""
    with sync_client(redis_url) as client:
        return sum(1 for info in client.client_list() if info.get("name") == name)


async def eventually_zero(count: Callable[[], int]) -> bool:
    """Whether `count()` reaches 0 within a second (the server notices a close promptly)."""
    deadline = time.monotonic() + 1.0
    while count() != 0:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_the_gateway_closes_its_redis_connections_when_it_stops(
    start_gateway: StartGateway, redis_url: str, redis_prefix: str
) -> None:
    # The cache and the rate limits use the process's one client, which they never close: the
    # gateway does, and stopping it leaves no connection behind.
    name = f"aigw-test-{uuid4().hex}"
    separator = "&" if urlsplit(redis_url).query else "?"
    running = await start_gateway(
        redis_url=f"{redis_url}{separator}{urlencode({'client_name': name})}",
        cache_backend="redis",
        cache_key_prefix=redis_prefix,
        requests_per_minute=1000,
    )
    body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    for _ in range(3):
        async with running.http.post(f"{running.http_url}/v1/complete", json=body) as response:
            assert response.status == 200
            assert (await response.json())["content"]
    assert connections_named(redis_url, name) > 0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await running.gateway.stop()
        gc.collect()

    assert await eventually_zero(lambda: connections_named(redis_url, name))
    assert [str(w.message) for w in caught] == []
