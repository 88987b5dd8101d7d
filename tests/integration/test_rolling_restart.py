"""A rolling update on this machine: three gateways behind a balancer, restarted one at a time.

Under steady unary and streaming gRPC load, each gateway in turn is taken out of the balancer
(as Kubernetes removes a terminating pod's endpoint during its preStop pause), sent SIGTERM,
awaited, and replaced by a new process. A client with the retry policy the README recommends
sees no failed unary call, every stream ends with its result or an explicit UNAVAILABLE, and
every answered call has its row in the shared PostgreSQL ledger.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
from sqlalchemy import select

from gateway.config.settings import GrpcSettings
from gateway.store.engine import create_engine, database_url
from gateway.store.models import requests
from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.conftest import StartGateway
from tests.processes import GatewayProcess, spawn
from tests.roundrobin_proxy import RoundRobinProxy

#: The client retry policy the README recommends: UNAVAILABLE is retried with backoff.
RETRY_POLICY = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "gateway.v1.GatewayService"}],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)
MESSAGES = [pb.Message(role="user", content="one two three four five six seven eight")]


async def test_rolling_restart_fails_no_unary_call_ends_every_stream_and_loses_no_row(
    pg_database: str, redis_url: str
) -> None:
    env = {
        "DATABASE_URL": pg_database,
        "REDIS_URL": redis_url,
        "MOCK_TOKENS_PER_SECOND": "30",  # a stream takes about half a second
        "SHUTDOWN_GRACE_SECONDS": "10",
    }
    gateways: list[GatewayProcess] = list(await asyncio.gather(*(spawn(**env) for _ in range(3))))
    proxy = RoundRobinProxy([g.grpc_port for g in gateways])
    await proxy.start()
    unary_ok: list[str] = []
    unary_failed: list[str] = []
    streams: list[str] = []
    stop = asyncio.Event()
    options = [("grpc.service_config", RETRY_POLICY), ("grpc.enable_retries", 1)]

    async def unary_load(channel: grpc.aio.Channel) -> None:
        stub = pb_grpc.GatewayServiceStub(channel)
        while not stop.is_set():
            request_id = uuid.uuid4().hex
            try:
                await stub.Complete(
                    pb.CompleteRequest(model="mock", messages=MESSAGES),
                    metadata=(("x-request-id", request_id),),
                    timeout=15,
                )
                unary_ok.append(request_id)
            except grpc.aio.AioRpcError as exc:
                unary_failed.append(f"{exc.code().name}: {exc.details()}")
            await asyncio.sleep(0.02)

    async def stream_load(channel: grpc.aio.Channel) -> None:
        stub = pb_grpc.GatewayServiceStub(channel)
        while not stop.is_set():
            call = stub.StreamComplete(
                pb.StreamCompleteRequest(model="mock", messages=MESSAGES), timeout=15
            )
            try:
                messages = [m async for m in call]
                streams.append("ok" if messages and messages[-1].finish_reason else "silent")
            except grpc.aio.AioRpcError as exc:
                streams.append(exc.code().name)

    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{proxy.port}", options=options) for _ in range(4)
    ]
    load = [asyncio.create_task(unary_load(c)) for c in channels[:2]]
    load += [asyncio.create_task(stream_load(c)) for c in channels[2:] for _ in range(2)]
    try:
        await asyncio.sleep(1.5)
        for index in range(3):
            old = gateways[index]
            proxy.backends.remove(old.grpc_port)  # the endpoint leaves the Service first
            await asyncio.sleep(0.3)
            assert await old.stop() == 0
            new = await spawn(**env)
            gateways[index] = new
            proxy.backends.append(new.grpc_port)
            await asyncio.sleep(1.0)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.gather(*load, return_exceptions=True)
        for channel in channels:
            await channel.close()
        await proxy.aclose()
        codes = await asyncio.gather(*(g.stop() for g in gateways))
    assert list(codes) == [0, 0, 0]
    assert unary_failed == []
    assert len(unary_ok) > 20
    assert set(streams) <= {"ok", "UNAVAILABLE"}
    assert streams.count("ok") > 10

    engine = create_engine(database_url(pg_database))
    try:
        async with engine.connect() as connection:
            recorded = set(
                (
                    await connection.execute(
                        select(requests.c.request_id).where(requests.c.status == "OK")
                    )
                ).scalars()
            )
    finally:
        await engine.dispose()
    assert set(unary_ok) <= recorded


async def test_an_old_grpc_connection_is_closed_so_the_client_rebalances(
    start_gateway: StartGateway,
) -> None:
    gw = await start_gateway(
        grpc=GrpcSettings(max_connection_age=1.0, max_connection_age_grace=1.0)
    )
    proxy = RoundRobinProxy([gw.gateway.grpc_port])
    await proxy.start()
    options = [("grpc.service_config", RETRY_POLICY), ("grpc.enable_retries", 1)]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{proxy.port}", options=options) as ch:
            stub = pb_grpc.GatewayServiceStub(ch)
            for _ in range(16):
                await stub.Complete(pb.CompleteRequest(model="mock", messages=MESSAGES))
                await asyncio.sleep(0.25)
    finally:
        await proxy.aclose()
    assert proxy.connections >= 2  # the aged connection was replaced; no call failed
