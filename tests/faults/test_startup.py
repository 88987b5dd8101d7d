"""Start-up failures of the real program: one line on stderr naming the setting, a distinct exit.

Each test starts `python -m gateway` as an operator would and breaks one thing: a port another
gateway (or program) already serves, a database or Redis that cannot be reached. The exit
statuses are the README's: 3 a port, 4 the database, 5 Redis.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from tests.processes import GatewayProcess, spawn

PASSWORD = "hunter2-not-for-logs"
EXIT_PORT, EXIT_DATABASE, EXIT_REDIS = 3, 4, 5
StartGateway = Callable[..., Awaitable[GatewayProcess]]
BODY = orjson.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]})


@dataclass
class Exited:
    """A gateway process that ended on its own: its status and what it printed."""

    code: int
    stderr: str
    logs: list[dict[str, Any]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def loopback_env(**env: str) -> dict[str, str]:
    place = tempfile.mkdtemp(prefix="aigw-startup-")
    return {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": f"sqlite:///{place}/usage.db",
        "USAGE_SPILL_PATH": f"{place}/usage.spill.jsonl",
        "BIND_HOST": "127.0.0.1",
        "GRPC_PORT": "0",
        "HTTP_PORT": "0",
        "METRICS_PORT": "0",
        **env,
    }


async def run_until_exit(**env: str) -> Exited:
    """Start a gateway that is expected to give up; fail if it is still running after 30 s."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        env=loopback_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.kill()
        await process.communicate()
        pytest.fail("the gateway started instead of refusing to")
    assert process.returncode is not None
    return Exited(process.returncode, err.decode(), [orjson.loads(x) for x in out.splitlines()])


def assert_one_line(exited: Exited, *words: str) -> str:
    """The process said one line on stderr, naming every word, with no traceback or password."""
    assert "Traceback" not in exited.stderr
    assert PASSWORD not in exited.stderr + repr(exited.logs)
    lines = exited.stderr.splitlines()
    assert len(lines) == 1, exited.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


async def serves_a_call(gateway: GatewayProcess) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{gateway.http_port}/v1/complete", data=BODY) as reply,
    ):
        return reply.status


@pytest.fixture
async def running() -> AsyncIterator[StartGateway]:
    """Gateways started by the test on fixed ports; all stopped afterwards."""
    started: list[GatewayProcess] = []

    async def start(**env: str) -> GatewayProcess:
        gateway = await spawn(**env)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


@pytest.mark.parametrize(
    ("first_workers", "second_workers"), [("2", "2"), ("1", "2"), ("2", "1"), ("1", "1")]
)
async def test_a_second_gateway_on_the_same_grpc_port_exits_3_and_the_first_keeps_serving(
    running: StartGateway, first_workers: str, second_workers: str
) -> None:
    port = free_port()
    first = await running(WORKERS=first_workers, GRPC_PORT=str(port))

    second = await run_until_exit(WORKERS=second_workers, GRPC_PORT=str(port))

    assert second.code == EXIT_PORT
    assert_one_line(second, f"GRPC_PORT {port}", "in use")
    assert await serves_a_call(first) == 200


@pytest.mark.parametrize("setting", ["HTTP_PORT", "METRICS_PORT"])
async def test_a_second_gateway_sharing_only_the_http_or_metrics_port_exits_3(
    running: StartGateway, setting: str
) -> None:
    port = free_port()
    await running(WORKERS="2", **{setting: str(port)})

    second = await run_until_exit(WORKERS="2", **{setting: str(port)})

    assert second.code == EXIT_PORT
    assert_one_line(second, f"{setting} {port}", "in use")


async def test_a_port_another_program_listens_on_is_refused_with_exit_3() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        exited = await run_until_exit(WORKERS="2", HTTP_PORT=str(port))

    assert exited.code == EXIT_PORT
    assert_one_line(exited, f"HTTP_PORT {port}")


@pytest.mark.parametrize(("workers", "auto_migrate"), [("1", "true"), ("2", "false")])
async def test_postgresql_on_a_closed_port_exits_4_naming_database_url(
    workers: str, auto_migrate: str
) -> None:
    url = f"postgresql://gateway:{PASSWORD}@127.0.0.1:{free_port()}/usage"

    exited = await run_until_exit(WORKERS=workers, DATABASE_URL=url, AUTO_MIGRATE=auto_migrate)

    assert exited.code == EXIT_DATABASE
    line = assert_one_line(exited, "DATABASE_URL", "connection refused")
    assert "127.0.0.1" in line


async def test_a_database_host_that_does_not_resolve_exits_4() -> None:
    url = f"postgresql://gateway:{PASSWORD}@no-such-host.invalid/usage"

    exited = await run_until_exit(WORKERS="1", DATABASE_URL=url)

    assert exited.code == EXIT_DATABASE
    assert_one_line(exited, "DATABASE_URL", "no-such-host.invalid")


async def test_a_database_that_does_not_exist_exits_4(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database_here"

    exited = await run_until_exit(WORKERS="1", DATABASE_URL=missing)

    assert exited.code == EXIT_DATABASE
    assert_one_line(exited, "DATABASE_URL", "no_such_database_here")


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_redis_on_a_closed_port_exits_5_naming_redis_url(workers: str) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"

    exited = await run_until_exit(WORKERS=workers, REDIS_URL=url)

    assert exited.code == EXIT_REDIS
    assert_one_line(exited, "REDIS_URL", "127.0.0.1")


async def test_a_reachable_redis_is_reported_at_start(
    running: StartGateway, redis_url: str
) -> None:
    gateway = await running(REDIS_URL=redis_url)

    reports = [e for e in gateway.logs if e.get("msg") == "Redis reachable"]

    assert len(reports) == 1
    assert reports[0]["redis"].startswith("127.0.0.1:")
