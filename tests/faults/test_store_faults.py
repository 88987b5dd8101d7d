"""The store's faults under real gateway processes: PostgreSQL cut off, workers killed outright.

API keys are looked up in PostgreSQL, reached here through a proxy we control. While it cannot
answer, keys the gateway already knows keep working (each call bounded in time), an unknown key
gets 503 with Retry-After, and a key revoked while the store was up is refused as soon as the
store answers again.

A gateway (or a worker) killed with SIGKILL right after answering loses no ledger row of a call
it answered: the restarted process stores what its predecessor had not.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from gateway.store.engine import create_engine
from gateway.store.models import requests
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


# A worker killed outright (SIGKILL, the OOM killer) right after answering.


async def answer_calls(port: int, count: int, concurrency: int = 16) -> list[str]:
    """`count` JSON calls (every fourth a stream); the request ids of those answered in full."""
    answered: list[str] = []
    slots = asyncio.Semaphore(concurrency)
    stream_body = orjson.dumps({**orjson.loads(BODY), "stream": True})

    async def one(http: aiohttp.ClientSession, number: int) -> None:
        streaming = number % 4 == 0
        async with (
            slots,
            http.post(
                f"http://127.0.0.1:{port}/v1/complete", data=stream_body if streaming else BODY
            ) as reply,
        ):
            body = await reply.read()
            if reply.status == 200 and (not streaming or body.endswith(b"data: [DONE]\n\n")):
                answered.append(reply.headers["x-request-id"])

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)  # spread over workers
    async with aiohttp.ClientSession(connector=connector) as http, asyncio.TaskGroup() as group:
        for number in range(count):
            group.create_task(one(http, number))
    return answered


async def recorded_ids(database_url: str) -> set[str]:
    """The request ids in the ledger."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(requests.c.request_id))).all()
    finally:
        await engine.dispose()
    return {row[0] for row in rows}


async def until_recorded(database_url: str, answered: list[str]) -> set[str]:
    """The ledger's request ids once every answered call is there (or after 20 s)."""
    deadline = time.monotonic() + 20
    recorded = await recorded_ids(database_url)
    while not set(answered) <= recorded and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        recorded = await recorded_ids(database_url)
    return recorded


def worker_pids(gateway: GatewayProcess) -> dict[int, int]:
    """Worker index -> pid, from the latest `worker listening` line of each."""
    return {e["worker"]: e["pid"] for e in gateway.logs if e.get("msg") == "worker listening"}


async def test_a_killed_gateway_loses_no_row_of_an_answered_call(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'usage.db'}",
        "USAGE_SPILL_PATH": str(tmp_path / "usage.spill.jsonl"),
    }
    first = await spawn(**env)
    answered = await answer_calls(first.http_port, 300)
    first.process.kill()  # right after the answers: nothing flushed since the last batch
    assert await first.wait_exit() == -signal.SIGKILL
    assert len(answered) == 300

    second = await spawn(**env)  # a restart, as a Deployment or systemd would do
    try:
        recorded = await until_recorded(env["DATABASE_URL"], answered)
    finally:
        await second.stop()
    assert sorted(set(answered) - recorded) == []


async def test_killed_workers_lose_no_row_of_an_answered_call(pg_database: str) -> None:
    gateway = await spawn(WORKERS="2", DATABASE_URL=pg_database)
    try:
        before = worker_pids(gateway)
        assert sorted(before) == [0, 1]
        answered = await answer_calls(gateway.http_port, 300)
        for pid in before.values():
            os.kill(pid, signal.SIGKILL)
        assert len(answered) == 300
        # The supervisor restarts each worker, which stores what its killed predecessor left.
        recorded = await until_recorded(pg_database, answered)
        restarted = worker_pids(gateway)
    finally:
        await gateway.stop()
    assert set(restarted.values()).isdisjoint(before.values())
    assert sorted(set(answered) - recorded) == []
