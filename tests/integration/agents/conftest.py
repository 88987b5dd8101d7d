"""One gateway per test module serving every provider's fake, and the parametrisation over them.

The fakes and the gateway (its cache off, so every request reaches its fake) live as long as a
module; a test is parametrised over the rows (`row`), both transports (`client`) and unary or
streamed (`ask`); `fake` is the row's fake, emptied of what earlier tests scripted, sent and had
refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import aiohttp
import grpc
import pytest
import pytest_asyncio

from gateway.runtime.server import Server
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.conftest import test_settings
from tests.fakes.base import VendorFake
from tests.integration.agents.client import Client, GrpcClient, Json, JsonClient, Reply
from tests.integration.agents.rows import ROWS, Row


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fakes() -> AsyncIterator[dict[str, VendorFake]]:
    """Every row's fake, by kind."""
    async with AsyncExitStack() as stack:
        yield {row.kind: await stack.enter_async_context(row.make_fake()) for row in ROWS}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clients(
    fakes: dict[str, VendorFake], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Client]]:
    """A gateway serving every row's deployment, and a client for each transport."""
    place = tmp_path_factory.mktemp("gateway")
    server = Server(
        test_settings(
            providers=tuple(row.settings(fakes[row.kind]) for row in ROWS),
            cache_backend="off",
            database_url=f"sqlite:///{place / 'usage.db'}",
            usage_spill_path=str(place / "usage.spill.jsonl"),
        )
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    http = aiohttp.ClientSession()
    try:
        yield {
            "grpc": GrpcClient(pb_grpc.GatewayServiceStub(channel)),
            "json": JsonClient(http, f"http://127.0.0.1:{server.http_port}"),
        }
    finally:
        await http.close()
        await channel.close()
        await server.stop()


@pytest.fixture(params=ROWS, ids=str)
def row(request: pytest.FixtureRequest) -> Row:
    """Each provider in turn (a test may narrow it with its own `parametrize`)."""
    row: Row = request.param
    return row


@pytest.fixture(params=["grpc", "json"])
def client(request: pytest.FixtureRequest, clients: dict[str, Client]) -> Client:
    """The gateway over gRPC, then over JSON."""
    return clients[request.param]


@pytest.fixture(params=["unary", "stream"])
def ask(request: pytest.FixtureRequest, client: Client) -> Callable[[Json], Awaitable[Reply]]:
    """The client's unary or streamed call."""
    return client.complete if request.param == "unary" else client.stream


@pytest.fixture
def fake(row: Row, fakes: dict[str, VendorFake]) -> VendorFake:
    """The row's fake with nothing scripted, received or refused yet."""
    served = fakes[row.kind]
    served.answers.clear()
    served.requests.clear()
    served.rejections.clear()
    return served
