"""Worker processes: how many start by default, and `WORKERS=2` (one supervisor, two workers)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import aiohttp
import grpc
import orjson

from gateway.runtime.cpus import available_cpus
from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.processes import GatewayProcess, spawn

BODY = orjson.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]})
CACHEABLE = orjson.dumps(
    {"model": "mock", "messages": [{"role": "user", "content": "same"}], "temperature": 0}
)


async def spawn_on_defaults(**env: str) -> GatewayProcess:
    """`python -m gateway` as `make run` starts it: no WORKERS, no REDIS_URL, no DATABASE_URL.

    Only the ports (free ones, on loopback) differ; the SQLite file and the spill file land in a
    fresh working directory.
    """
    place = tempfile.mkdtemp(prefix="aigw-defaults-")
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "BIND_HOST": "127.0.0.1",
        "GRPC_PORT": "0",
        "HTTP_PORT": "0",
        "METRICS_PORT": "0",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=environ, cwd=place, stdout=asyncio.subprocess.PIPE
    )
    started = GatewayProcess(process, environ)
    try:
        await started.start()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return started


def database_of(gateway: GatewayProcess) -> Path:
    return Path(gateway.environment["DATABASE_URL"].removeprefix("sqlite:///"))


def worker_pids(gateway: GatewayProcess) -> dict[int, int]:
    """Worker index -> pid, from the `worker listening` lines (the latest per index)."""
    return {e["worker"]: e["pid"] for e in gateway.logs if e.get("msg") == "worker listening"}


async def spawn_workers(count: int, **env: str) -> GatewayProcess:
    """`spawn(WORKERS=count)`, once every worker's `worker listening` line has been read.

    The supervisor says `gateway listening` once every worker said it is ready, but each process
    writes its own lines: a worker's may reach the shared stdout after the supervisor's.
    """
    gateway = await spawn(WORKERS=str(count), **env)
    await wait_for(lambda: len(worker_pids(gateway)) == count)
    return gateway


async def call_on_new_connections(port: int, count: int) -> list[tuple[int, str]]:
    """`count` JSON calls, each on its own connection; (status, request id) of each."""
    results = []
    for _ in range(count):
        # A new session is a new connection: the kernel picks the worker.
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{port}/v1/complete", data=BODY) as response,
        ):
            await response.read()
            results.append((response.status, response.headers["x-request-id"]))
    return results


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll `condition` (state in another process: there is nothing to wait on) for 15 s."""
    async with asyncio.timeout(15):
        while not condition():  # noqa: ASYNC110 (polling another process's state)
            await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def post_on_new_connections(port: int, body: bytes, count: int) -> list[dict[str, object]]:
    """`count` JSON calls of `body`, each on its own connection: (status and reply) of each."""
    replies = []
    for _ in range(count):
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{port}/v1/complete", data=body) as response,
        ):
            replies.append({"status": response.status, **orjson.loads(await response.read())})
    return replies


async def test_on_defaults_a_3_per_minute_limit_admits_exactly_3_calls() -> None:
    # 12 connections: spread over two workers with their own counters, 4+ would be admitted
    # unless all 12 landed on one worker (a 1 in 2048 chance).
    gateway = await spawn_on_defaults(REQUESTS_PER_MINUTE="3")
    try:
        replies = await post_on_new_connections(gateway.http_port, BODY, 12)
    finally:
        assert await gateway.stop() == 0
    assert [reply["status"] for reply in replies] == [200] * 3 + [429] * 9


async def test_on_defaults_a_repeated_cacheable_call_is_answered_from_the_cache() -> None:
    gateway = await spawn_on_defaults()
    try:
        replies = await post_on_new_connections(gateway.http_port, CACHEABLE, 9)
    finally:
        assert await gateway.stop() == 0
    assert [(reply["status"], reply.get("cached", False)) for reply in replies] == [
        (200, False)
    ] + [(200, True)] * 8


def worker_choice(gateway: GatewayProcess) -> dict[str, object]:
    """The one start-up line saying how many workers run and why."""
    [choice] = [e for e in gateway.logs if "why" in e]
    return choice


async def test_on_defaults_one_worker_is_started_and_the_log_says_why() -> None:
    gateway = await spawn_on_defaults()
    assert await gateway.stop() == 0
    choice = worker_choice(gateway)
    assert choice["workers"] == 1
    assert choice["msg"] == (
        "1 worker: no REDIS_URL, so limits and cache live in this process; set WORKERS to override"
    )
    assert not worker_pids(gateway)  # served by the process itself, no supervisor


async def test_with_redis_and_no_workers_setting_one_worker_per_cpu_is_started(
    redis_url: str,
) -> None:
    gateway = await spawn_on_defaults(REDIS_URL=redis_url)
    assert await gateway.stop() == 0
    choice = worker_choice(gateway)
    assert choice["workers"] == available_cpus()
    assert "REDIS_URL" in str(choice["msg"])


async def test_an_explicit_workers_setting_is_honoured_and_warned_about_without_redis() -> None:
    gateway = await spawn_on_defaults(WORKERS="2")
    assert await gateway.stop() == 0
    assert sorted(worker_pids(gateway)) == [0, 1]
    assert worker_choice(gateway)["msg"] == "2 workers: WORKERS=2"
    warning = "without REDIS_URL, rate limits, budgets and the cache are per worker"
    assert warning in [e["msg"] for e in gateway.logs]


async def test_two_workers_share_both_ports_and_every_call_is_counted_and_recorded() -> None:
    gateway = await spawn_workers(2)
    try:
        assert sorted(worker_pids(gateway)) == [0, 1]
        results = await call_on_new_connections(gateway.http_port, 40)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            message = pb.Message(role="user", content="x")
            request = pb.CompleteRequest(model="mock", messages=[message])
            answers = [await stub.Complete(request) for _ in range(5)]
        metrics_url = f"http://127.0.0.1:{gateway.metrics_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(metrics_url) as response:
            metrics = await response.text()
    finally:
        code = await gateway.stop()
    assert code == 0
    assert [status for status, _ in results] == [200] * 40
    assert all(answer.finish_reason == "stop" for answer in answers)
    # Both workers served: 40 connections all landing on one would be a 1 in 2^39 chance.
    served_by = {e["worker"] for e in gateway.logs if e.get("msg") == "request finished"}
    assert served_by == {0, 1}
    # The supervisor's /metrics sums the workers.
    assert 'gateway_requests_total{code="OK",rpc="Complete",transport="http"} 40.0' in metrics
    assert 'gateway_requests_total{code="OK",rpc="Complete",transport="grpc"} 5.0' in metrics
    with sqlite3.connect(database_of(gateway)) as db:
        recorded = {row[0] for row in db.execute("select request_id from requests")}
    assert {request_id for _, request_id in results} <= recorded
    assert len(recorded) == 45


async def test_a_worker_that_dies_is_restarted_and_calls_keep_succeeding() -> None:
    gateway = await spawn_workers(2)
    try:
        before = worker_pids(gateway)
        os.kill(before[1], signal.SIGKILL)
        await wait_for(lambda: worker_pids(gateway)[1] != before[1])
        results = await call_on_new_connections(gateway.http_port, 20)
        restarted = worker_pids(gateway)[1]
    finally:
        code = await gateway.stop()
    assert code == 0
    assert [status for status, _ in results] == [200] * 20
    assert alive(restarted) is False
    exits = [e for e in gateway.logs if e.get("msg") == "worker exited; restarting it"]
    assert [(e["worker"], e["exit_code"]) for e in exits] == [(1, -signal.SIGKILL)]


async def test_workers_drain_and_exit_when_the_supervisor_is_killed() -> None:
    gateway = await spawn_workers(2)
    pids = list(worker_pids(gateway).values())
    gateway.process.kill()
    await gateway.wait_exit()
    await wait_for(lambda: not any(alive(pid) for pid in pids))


async def test_sigterm_lets_a_call_in_flight_on_a_worker_finish() -> None:
    gateway = await spawn_workers(2, MOCK_LATENCY_MS="1000")
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{gateway.http_port}/v1/complete"
        async with asyncio.TaskGroup() as group:
            call = group.create_task(http.post(url, data=BODY))
            await asyncio.sleep(0.3)
            gateway.process.terminate()
        response = call.result()
        assert response.status == 200
        assert orjson.loads(await response.read())["finish_reason"] == "stop"
    assert await gateway.wait_exit() == 0
    assert not any(alive(pid) for pid in worker_pids(gateway).values())
