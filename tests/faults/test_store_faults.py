"""The store failing under a real gateway process: PostgreSQL cut off behind a proxy we control.

API keys are looked up in PostgreSQL. While it cannot answer, keys the gateway already knows keep
working (each call bounded in time), an unknown key gets 503 with Retry-After, and a key revoked
while the store was up is refused as soon as the store answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy.engine import make_url

from tests.processes import GatewayProcess, spawn
from tests.store.tcp_proxy import TcpProxy

ADMIN = "fault-admin-token"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
BODY = orjson.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]})
LOOKUP_TIMEOUT_SECONDS = 1.0
#: Generous: the lookup's bound plus a call's own work, far below the 15 s one call hung for.
CALL_BOUND_SECONDS = LOOKUP_TIMEOUT_SECONDS + 2.0
#: Longer than the key cache (2 s): every call in the outage needs the store, and cannot have it.
OUTAGE_SECONDS = 4.0


@pytest.fixture
async def proxy(pg_database: str) -> AsyncIterator[TcpProxy]:
    target = make_url(pg_database)
    tcp = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await tcp.start()
    yield tcp
    await tcp.aclose()


@pytest.fixture
async def gateway(pg_database: str, proxy: TcpProxy) -> AsyncIterator[GatewayProcess]:
    through_proxy = make_url(pg_database).set(host="127.0.0.1", port=proxy.port)
    started = await spawn(
        DATABASE_URL=through_proxy.render_as_string(hide_password=False),
        ADMIN_TOKEN=ADMIN,
        KEY_LOOKUP_TIMEOUT_SECONDS=str(LOOKUP_TIMEOUT_SECONDS),
        SHUTDOWN_GRACE_SECONDS="2",
    )
    yield started
    await started.stop()


async def admin(http: aiohttp.ClientSession, gw: GatewayProcess, path: str, body: Any) -> Any:
    url = f"http://127.0.0.1:{gw.http_port}{path}"
    async with http.post(url, data=orjson.dumps(body), headers=ADMIN_HEADERS) as reply:
        assert reply.status == 200, await reply.text()
        return orjson.loads(await reply.read())


async def call(
    http: aiohttp.ClientSession, gw: GatewayProcess, secret: str
) -> tuple[int, float, str | None]:
    """(status, seconds taken, Retry-After) of one JSON call with `secret`."""
    started = time.monotonic()
    async with http.post(
        f"http://127.0.0.1:{gw.http_port}/v1/complete",
        data=BODY,
        headers={"Authorization": f"Bearer {secret}"},
    ) as reply:
        await reply.read()
        return reply.status, time.monotonic() - started, reply.headers.get("Retry-After")


@pytest.mark.parametrize("fault", ["cut", "stall"])
async def test_known_keys_ride_out_a_store_outage_and_revocations_hold_after_it(
    gateway: GatewayProcess, proxy: TcpProxy, fault: str
) -> None:
    async with aiohttp.ClientSession() as http:
        kept = (await admin(http, gateway, "/v1/admin/keys", {"tenant": "kept"}))["secret"]
        doomed = await admin(http, gateway, "/v1/admin/keys", {"tenant": "doomed"})
        for secret in (kept, doomed["secret"]):
            assert (await call(http, gateway, secret))[0] == 200
        revoke = f"/v1/admin/keys/{doomed['api_key']['id']}:revoke"
        await admin(http, gateway, revoke, {})

        proxy.cut() if fault == "cut" else proxy.stall()  # PostgreSQL is gone
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        kept_results = []
        while time.monotonic() < outage_ends:
            kept_results.append(await call(http, gateway, kept))
            await asyncio.sleep(0.2)
        unknown = await call(http, gateway, "aigw_never_issued_by_anyone")
        proxy.restore()

        assert [status for status, _, _ in kept_results] == [200] * len(kept_results)
        slowest = max(seconds for _, seconds, _ in kept_results)
        assert slowest < CALL_BOUND_SECONDS, kept_results
        status, seconds, retry_after = unknown
        assert (status, retry_after) == (503, "1")
        assert seconds < CALL_BOUND_SECONDS

        # The store answers again: the revoked key is refused within a few seconds, for good.
        refused_after = time.monotonic()
        statuses = []
        while time.monotonic() - refused_after < 10 and 401 not in statuses:
            statuses.append((await call(http, gateway, doomed["secret"]))[0])
            await asyncio.sleep(0.2)
        assert statuses[-1] == 401, statuses
        assert (await call(http, gateway, doomed["secret"]))[0] == 401
        assert (await call(http, gateway, kept))[0] == 200
