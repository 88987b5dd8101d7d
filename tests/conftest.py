"""Shared fixtures: an in-process gateway on loopback ports, and clients for both transports."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc

from gateway.config.settings import Settings
from gateway.runtime.server import Server
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from providers.base import ProviderSettings

# Shared fixtures of real services, available to every test: Redis, PostgreSQL, a fresh store.
from tests.databases import pg_database_fixture, store_url_fixture  # noqa: F401
from tests.postgres_support import postgres_schema_url_fixture, postgres_url_fixture  # noqa: F401
from tests.redis_support import redis_prefix_fixture, redis_url_fixture  # noqa: F401

MOCK = ProviderSettings(name="mock", kind="mock", models=("mock",))


@dataclass
class RunningGateway:
    """A started gateway and a client for each transport."""

    gateway: Server
    channel: grpc.aio.Channel
    stub: pb_grpc.GatewayServiceStub
    health: health_pb2_grpc.HealthStub
    http: aiohttp.ClientSession

    @property
    def http_url(self) -> str:
        """Base URL of the JSON shim."""
        return f"http://127.0.0.1:{self.gateway.http_port}"

    @property
    def metrics_url(self) -> str:
        """URL of the Prometheus endpoint."""
        return f"http://127.0.0.1:{self.gateway.metrics_port}/metrics"


StartGateway = Callable[..., Awaitable[RunningGateway]]


def test_settings(**overrides: Any) -> Settings:
    """Settings for a gateway on free loopback ports serving the mock provider."""
    base = Settings(
        bind_host="127.0.0.1",
        grpc_port=0,
        http_port=0,
        metrics_port=0,
        shutdown_grace_seconds=5.0,
        providers=(MOCK,),
    )
    return dataclasses.replace(base, **overrides)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture
async def start_gateway() -> AsyncIterator[StartGateway]:
    """Start gateways with `test_settings(**overrides)`; all are stopped after the test."""
    running: list[RunningGateway] = []
    places: list[Path] = []

    async def start(**overrides: Any) -> RunningGateway:
        place = Path(tempfile.mkdtemp(prefix="aigw-test-"))
        places.append(place)
        overrides.setdefault("database_url", f"sqlite:///{place / 'usage.db'}")
        overrides.setdefault("usage_spill_path", str(place / "usage.spill.jsonl"))
        gateway = Server(test_settings(**overrides))
        await gateway.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}")
        started = RunningGateway(
            gateway=gateway,
            channel=channel,
            stub=pb_grpc.GatewayServiceStub(channel),
            health=health_pb2_grpc.HealthStub(channel),
            http=aiohttp.ClientSession(),
        )
        running.append(started)
        return started

    yield start
    for started in running:
        await started.http.close()
        await started.channel.close()
        await started.gateway.stop()
    for place in places:
        shutil.rmtree(place, ignore_errors=True)


@pytest.fixture
async def gw(start_gateway: StartGateway) -> RunningGateway:
    """A gateway with default test settings (mock provider, no auth)."""
    return await start_gateway()
