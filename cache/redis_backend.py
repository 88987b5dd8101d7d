"""Redis cache backend: shared between replicas, and never slower than its timeout.

Every operation is one command on the process's shared client (built once with one bounded
pool and no retries: a retry would double the cost). A cache that stalls would add its stall to
every request, so one operation costs at most `timeout` seconds: the whole operation (waiting
for a pooled connection, connecting, the command) runs under `asyncio.timeout(timeout)`, which
holds whatever the client's socket timeouts are.

Whatever goes wrong surfaces as `CacheError`, raised from the original exception, with a
message naming host, port and database but never credentials. The URL itself is never logged
or put in a message: it may hold a password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from cache.backend import CacheError

DEFAULT_PREFIX = "aigw:cache:"
"""Prepended to every key, so the cache shares a Redis database safely with other data."""

_T = TypeVar("_T")


class RedisCache:
    """A `CacheBackend` over a `redis.asyncio.Redis` client.

    The client is the caller's (the process shares one with the rate limits): the cache uses it
    and never closes it.
    """

    def __init__(self, client: Redis, *, timeout: float, prefix: str = DEFAULT_PREFIX) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._client = client
        self._timeout = timeout
        self._prefix = prefix
        kwargs = client.connection_pool.connection_kwargs
        self._where = _describe_server(kwargs)
        self._password: str | None = kwargs.get("password")

    @property
    def name(self) -> str:
        """Always "redis"."""
        return "redis"

    async def get(self, key: str) -> bytes | None:
        """GET the prefixed key; None when it is absent or expired."""
        value = await self._call("GET", self._client.get(self._prefix + key))
        if value is None or isinstance(value, bytes):
            return value
        # Only a URL with `decode_responses=true` gets here; cached bytes must stay bytes.
        raise CacheError(f"redis GET on {self._where} returned text, not bytes")

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """SET the prefixed key with a millisecond expiry (PX); `ttl <= 0` stores nothing."""
        if ttl <= 0:
            return
        ttl_ms = max(1, round(ttl * 1000))  # PX needs a positive integer
        await self._call("SET", self._client.set(self._prefix + key, value, px=ttl_ms))

    async def aclose(self) -> None:
        """Nothing to release: the client is closed by whoever built it."""

    async def _call(self, command: str, operation: Awaitable[_T]) -> _T:
        """Await one Redis operation under the timeout; the one place errors are converted."""
        try:
            async with asyncio.timeout(self._timeout):
                return await operation
        except (RedisError, OSError) as exc:  # OSError includes TimeoutError
            raise CacheError(self._message(command, exc)) from exc

    def _message(self, command: str, exc: BaseException) -> str:
        detail = str(exc) or "no reply within the timeout"
        if self._password:
            detail = detail.replace(self._password, "***")
        return f"redis {command} on {self._where} failed: {type(exc).__name__}: {detail}"


def _describe_server(connection_kwargs: dict[str, object]) -> str:
    """Where the pool connects, without credentials: `host:port/db` or `unix:path/db`."""
    db = connection_kwargs.get("db", 0)
    path = connection_kwargs.get("path")
    if path is not None:
        return f"unix:{path}/{db}"
    host = connection_kwargs.get("host", "localhost")
    port = connection_kwargs.get("port", 6379)
    return f"{host}:{port}/{db}"
