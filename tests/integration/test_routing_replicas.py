"""Members' capacity across three real gateway processes sharing Redis, over JSON."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from pathlib import Path
from uuid import uuid4

import aiohttp
import orjson

from tests.processes import GatewayProcess, spawn
from tests.redis_support import redis_url_fixture  # noqa: F401  (pytest registers imported fixtures)

CONFIG = """
providers:
  {quota}: {{kind: mock, models: [m], latency_ms: 2}}
  {overflow}: {{kind: mock, models: [m], latency_ms: 2}}
groups:
  chat:
    deployments:
      - {{deployment: {quota}, model: m, weight: 3, rpm: 60}}
      - {{deployment: {overflow}, model: m}}
"""
BODY = orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})


async def test_three_gateway_processes_sharing_redis_keep_a_60_rpm_deployment_to_its_rate(
    redis_url: str, tmp_path: Path
) -> None:
    # Scaled in time, not in rate: 60 rpm is paced as 3 calls every 3-s slice (`pace_of`), so
    # two whole slices (6 s) must hold 6 calls to it, the overflow going to the other member.
    suffix = uuid4().hex[:8]  # the capacity keys are the members': unique to this run
    quota, overflow = f"quota-{suffix}", f"overflow-{suffix}"
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG.format(quota=quota, overflow=overflow), encoding="utf-8")
    env = {
        "GATEWAY_CONFIG": str(config),
        "REDIS_URL": redis_url,
        "RATE_LIMIT_REDIS_TIMEOUT_MS": "2000",  # a loaded machine must not fail open
    }
    gateways: list[GatewayProcess] = list(await asyncio.gather(*(spawn(**env) for _ in range(3))))
    statuses: Counter[int] = Counter()
    answered: Counter[str] = Counter()
    try:
        async with aiohttp.ClientSession() as http:
            calls = 0

            async def worker(until: float) -> None:
                nonlocal calls
                while time.time() < until:
                    port = gateways[calls % 3].http_port
                    calls += 1
                    url = f"http://127.0.0.1:{port}/v1/complete"
                    async with http.post(url, data=BODY) as response:
                        statuses[response.status] += 1
                        if response.status == 200:
                            answered[orjson.loads(await response.read())["provider"]] += 1

            start = math.ceil(time.time() / 3) * 3 + 0.05  # the start of a slice
            await asyncio.sleep(start - time.time())
            await asyncio.gather(*(worker(start + 5.9) for _ in range(6)))
    finally:
        for gateway in gateways:
            await gateway.stop()

    assert statuses.keys() == {200}  # nobody sees a 429 while the other member has room
    assert 6 <= answered[quota] <= 7  # a call begun in the last instant may take the next slice
    assert answered[overflow] >= 60
