"""The one way the gateway builds Redis clients: a bounded pool, hard timeouts, no retries."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

DEFAULT_MAX_CONNECTIONS = 64


def redis_client(
    url: str, *, timeout: float, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> Redis:
    """A client on a new pool to `url`; connects lazily, so it does no I/O here.

    Every wait is bounded by `timeout`: for a free pooled connection, to connect, to answer.
    redis-py retries by default; one try only here, so an operation costs at most one timeout
    (the Retry object governs that; `retry_on_timeout` is deprecated and already off).
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)
