"""`/metrics` of the real program: Prometheus may scrape it from the moment its port is bound."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile

import aiohttp

from tests.redis_support import silent_url_fixture  # noqa: F401  (pytest registers imported fixtures)

EXIT_REDIS = 5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_supervisor_answers_a_scrape_while_it_is_still_starting(
    silent_url: str,
) -> None:
    # The supervisor binds METRICS_PORT first, then checks Redis (here: until its PING times
    # out) and the store before any worker runs: a scrape in that window gets an answer.
    place = tempfile.mkdtemp(prefix="aigw-metrics-")
    metrics_port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "WORKERS": "2",
        "DATABASE_URL": f"sqlite:///{place}/usage.db",
        "USAGE_SPILL_PATH": f"{place}/usage.spill.jsonl",
        "BIND_HOST": "127.0.0.1",
        "GRPC_PORT": "0",
        "HTTP_PORT": "0",
        "METRICS_PORT": str(metrics_port),
        "REDIS_URL": silent_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(10):
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as reply:
                        status, content_type = reply.status, reply.content_type
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)  # not bound yet
        assert process.returncode is None  # still waiting for Redis: the window was hit
        assert (status, content_type) == (200, "text/plain")
        assert await asyncio.wait_for(process.wait(), 30) == EXIT_REDIS
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
