"""Several gateway processes sharing PostgreSQL and Redis: limits hold in total, nothing is lost."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from sqlalchemy import func, select

from gateway.store.engine import create_engine, database_url
from gateway.store.models import requests
from tests.processes import GatewayProcess, spawn
from tests.store.tcp_proxy import TcpProxy

ADMIN = "replica-admin-token"
PROMPT = "abc " * 40  # the mock counts 43 prompt tokens; the gateway estimates 44


async def replicas(count: int, **env: str) -> list[GatewayProcess]:
    """`count` one-worker gateways; a limit check may wait 2 s for Redis on a loaded machine
    (the default 100 ms would fail open there, and then these tests would measure load)."""
    env = {"WORKERS": "1", "RATE_LIMIT_REDIS_TIMEOUT_MS": "2000", **env}
    return list(await asyncio.gather(*(spawn(ADMIN_TOKEN=ADMIN, **env) for _ in range(count))))


async def create_key(http: aiohttp.ClientSession, port: int, **limits: Any) -> str:
    body = orjson.dumps({"tenant": f"t-{uuid.uuid4().hex[:6]}", **limits})
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with http.post(f"http://127.0.0.1:{port}/v1/admin/keys", data=body, headers=headers) as r:
        assert r.status == 200
        secret: str = orjson.loads(await r.read())["secret"]
        return secret


async def call(http: aiohttp.ClientSession, port: int, secret: str) -> int:
    body = orjson.dumps(
        {"model": "mock", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 10}
    )
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    async with http.post(f"http://127.0.0.1:{port}/v1/complete", data=body, headers=headers) as r:
        await r.read()
        return r.status


async def burst(ports: list[int], secret: str, total: int) -> list[int]:
    async with aiohttp.ClientSession() as http:
        return list(
            await asyncio.gather(*(call(http, ports[i % len(ports)], secret) for i in range(total)))
        )


async def test_three_replicas_admit_a_requests_limit_once_in_total(
    pg_database: str, redis_url: str, redis_prefix: str
) -> None:
    gateways = await replicas(3, DATABASE_URL=pg_database, REDIS_URL=redis_url)
    try:
        async with aiohttp.ClientSession() as http:
            secret = await create_key(http, gateways[0].http_port, requests_per_minute=60)
        statuses = await burst([g.http_port for g in gateways], secret, 180)
    finally:
        await asyncio.gather(*(g.stop() for g in gateways))
    admitted = statuses.count(200)
    assert 57 <= admitted <= 63
    assert set(statuses) == {200, 429}


async def test_three_replicas_admit_a_tokens_limit_once_in_total(
    pg_database: str, redis_url: str
) -> None:
    gateways = await replicas(3, DATABASE_URL=pg_database, REDIS_URL=redis_url)
    try:
        async with aiohttp.ClientSession() as http:
            secret = await create_key(http, gateways[0].http_port, tokens_per_minute=3000)
        statuses = await burst([g.http_port for g in gateways], secret, 150)
    finally:
        await asyncio.gather(*(g.stop() for g in gateways))
    tokens_each = 43 + 10  # prompt + completion (max_tokens) of every admitted call
    admitted_tokens = statuses.count(200) * tokens_each
    assert 3000 * 0.95 <= admitted_tokens <= 3000 * 1.05


async def test_with_redis_down_limits_fail_open_and_never_answer_429(
    pg_database: str, redis_url: str
) -> None:
    # Redis answers at start (an unreachable one stops the start, exit 5), then goes away.
    host, port = urlsplit(redis_url).hostname or "127.0.0.1", urlsplit(redis_url).port or 6379
    proxy = TcpProxy(host, port)
    await proxy.start()
    proxied = redis_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}", 1)
    [gateway] = await replicas(1, DATABASE_URL=pg_database, REDIS_URL=proxied)
    proxy.cut()
    try:
        async with aiohttp.ClientSession() as http:
            secret = await create_key(http, gateway.http_port, requests_per_minute=1000)
            statuses = [await call(http, gateway.http_port, secret) for _ in range(10)]
            async with http.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics") as r:
                metrics = await r.text()
    finally:
        await gateway.stop()
        await proxy.aclose()
    assert statuses == [200] * 10
    failures = [
        line for line in metrics.splitlines()
        if line.startswith("gateway_rate_limit_backend_failures_total ")
    ]  # fmt: skip
    assert float(failures[0].split()[1]) >= 10


async def test_postgres_down_for_30s_under_steady_traffic_loses_and_duplicates_no_row(
    pg_database: str,
) -> None:
    host_port = pg_database.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1) if ":" in host_port else (host_port, "5432")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    proxied = pg_database.replace(host_port, f"127.0.0.1:{proxy.port}")
    [gateway] = await replicas(1, DATABASE_URL=proxied)
    sent: list[int] = []
    try:
        async with aiohttp.ClientSession() as http:

            async def steady(seconds: float) -> None:
                for _ in range(int(seconds * 5)):
                    sent.append(await call(http, gateway.http_port, ""))
                    await asyncio.sleep(0.2)

            await steady(3)
            proxy.cut()  # PostgreSQL is gone for 30 s
            await steady(30)
            proxy.restore()
            await steady(3)
        assert await gateway.stop() == 0  # SIGTERM flushes what is still buffered
    finally:
        await proxy.aclose()
    assert set(sent) == {200}
    engine = create_engine(database_url(pg_database))
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(func.count()).select_from(requests))).one()
            distinct = (
                await connection.execute(select(func.count(func.distinct(requests.c.id))))
            ).one()
    finally:
        await engine.dispose()
    assert rows[0] == distinct[0] == len(sent)
