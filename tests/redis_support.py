"""Fixtures for tests that need the real Redis server.

Import the fixtures into a test module, or into `tests/conftest.py` to offer them to every
test; pytest finds them among the module's attributes and registers them under the names
`redis_url` and `redis_prefix`::

    from tests.redis_support import redis_prefix_fixture, redis_url_fixture  # noqa: F401

(The functions are named `*_fixture` so that a test's `redis_url` parameter does not shadow
an import, which linters rightly flag. `redis_url` and `redis_prefix` are aliases of the same
fixtures, for modules that import them by fixture name and only reach them through
`request.getfixturevalue`.)

`redis_url` is the server to use: `REDIS_URL`, or the standard local port. When the server
does not answer PING, tests that use it skip with a reason saying how to start one; when the
`CI` environment variable is set they fail instead, so CI can never go green by skipping.

`redis_prefix` is a fresh key prefix for one test; its keys are deleted afterwards, so tests
never touch each other's data or anything else in the database.

`refused_url` and `silent_url` are Redis URLs on loopback that refuse connections, or accept
them and never answer: for tests of what a broken Redis costs. `gateway_client` builds an
asyncio client as the gateway does, to hand to the cache or the limits under test.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.runtime.redis import redis_client

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PING_TIMEOUT_SECONDS = 1.0
DELETE_BATCH = 500


def sync_client(url: str) -> redis.Redis:
    """A blocking client with short timeouts and no retries, for test setup and inspection.

    Blocking is fine in fixtures and for inspecting the server from a test: neither runs
    concurrently with the code under test.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=PING_TIMEOUT_SECONDS,
        socket_connect_timeout=PING_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


@asynccontextmanager
async def gateway_client(
    url: str,
    *,
    timeout: float,  # noqa: ASYNC109 - the client's bound on each operation, not this call's
) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client built as the gateway builds its own (bounded pool, no retries), for
    handing to the cache or the limits under test; closed, with its pool, on leaving."""
    client = redis_client(url, timeout=timeout)
    try:
        yield client
    finally:
        await client.aclose()


def display_url(url: str) -> str:
    """`url` without user name or password, for messages."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return parts._replace(netloc=netloc, query="").geturl()


@pytest.fixture(scope="session", name="redis_url")
def redis_url_fixture() -> str:
    """URL of a Redis server that answers PING; skips (fails under CI) when there is none."""
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    try:
        with sync_client(url) as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        where = display_url(url)
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required under CI: no answer from {where} ({exc})")
        pytest.skip(
            f"Redis not reachable at {where} ({exc}); start it with: "
            "redis-server --port 6379 --save '' --appendonly no --daemonize yes "
            "(or set REDIS_URL)"
        )
    return url


@pytest.fixture(name="redis_prefix")
def redis_prefix_fixture(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted after the test."""
    prefix = f"aigw-test:{uuid4().hex}:"
    yield prefix
    with sync_client(redis_url) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=DELETE_BATCH):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)


@pytest.fixture(name="refused_url")
def refused_url_fixture() -> str:
    """A loopback Redis URL whose port nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture(name="silent_url")
async def silent_url_fixture() -> AsyncIterator[str]:
    """A loopback Redis URL whose server accepts connections and then never says a word."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()
