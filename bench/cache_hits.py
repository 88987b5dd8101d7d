"""Cache-hit latency over gRPC and JSON: a gateway process, one warmed answer, N callers.

Every request is the same deterministic completion, so after the warm-up every one is a cache
hit: the time measured is the gateway's own hot path (parse, validate, route, key, lookup,
render) plus the transport. The load generator is asyncio in this process; its own cost is
reported by running the same loop against a trivial aiohttp endpoint (`baseline`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
import orjson
from aiohttp import web

from bench.stats import Summary, summarize
from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.processes import GatewayProcess, spawn

MESSAGES = [{"role": "user", "content": "What does the cache save?"}]
BODY = orjson.dumps({"model": "mock", "messages": MESSAGES, "temperature": 0})
REQUEST = pb.CompleteRequest(
    model="mock",
    messages=[pb.Message(role=m["role"], content=m["content"]) for m in MESSAGES],
    temperature=0,
)

Call = Callable[[], Awaitable[None]]
CONCURRENCY = 16
REQUESTS = 5000
TIME_LIMIT = 20.0


def main() -> int:
    """`python -m bench --cache-hits`: run, print one table, save the results as JSON."""
    results = asyncio.run(run(CONCURRENCY, REQUESTS, TIME_LIMIT))
    print(f"cache hits, {CONCURRENCY} concurrent callers (mock provider, memory cache)")
    print(f"{'path':<10}{'req/s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, s in results.items():
        print(
            f"{name:<10}{s.rps:>10.0f}{s.p50_ms:>10.2f}{s.p90_ms:>10.2f}{s.p99_ms:>10.2f}{s.errors:>8}"
        )
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"cache_hits-{time.strftime('%Y%m%dT%H%M%S')}.json"
    payload = {name: {**dataclasses.asdict(s), "rps": s.rps} for name, s in results.items()}
    out.write_text(json.dumps({"results": payload}, indent=2))
    print(f"saved {out}")
    return 0


async def drive(call: Call, *, concurrency: int, requests: int, time_limit: float) -> Summary:
    """Run `requests` calls over `concurrency` workers (bounded also by `time_limit` seconds)."""
    latencies: list[float] = []
    errors = 0
    remaining = requests
    stop_at = time.perf_counter() + time_limit

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.perf_counter() < stop_at:
            remaining -= 1
            started = time.perf_counter()
            try:
                await call()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarize(latencies, errors, time.perf_counter() - started)


async def run(concurrency: int, requests: int, time_limit: float) -> dict[str, Summary]:
    """Measure JSON and gRPC cache hits, and the load generator's own floor."""
    # Access logs stay on (INFO): a gateway is measured as it runs, and the harness reads them.
    env = {"CACHE_BACKEND": os.environ.get("BENCH_CACHE", "memory")}
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    gateway: GatewayProcess = await spawn(**env)
    results: dict[str, Summary] = {}
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http,
            grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel,
        ):
            url = f"http://127.0.0.1:{gateway.http_port}/v1/complete"
            stub = pb_grpc.GatewayServiceStub(channel)

            async def json_call() -> None:
                async with http.post(url, data=BODY) as reply:
                    body = await reply.read()
                    if reply.status != 200 or b'"cached":true' not in body:
                        raise RuntimeError(f"not a cache hit: {reply.status}")

            async def grpc_call() -> None:
                response = await stub.Complete(REQUEST)
                if not response.cached:
                    raise RuntimeError("not a cache hit")

            await stub.Complete(REQUEST)  # the one miss: warms the cache
            await asyncio.sleep(0.2)
            for name, call in (("json", json_call), ("grpc", grpc_call)):
                await drive(call, concurrency=concurrency, requests=200, time_limit=5)  # warm-up
                results[name] = await drive(
                    call, concurrency=concurrency, requests=requests, time_limit=time_limit
                )
        results["baseline"] = await baseline(concurrency, requests, time_limit)
    finally:
        await gateway.stop()
    return results


async def baseline(concurrency: int, requests: int, time_limit: float) -> Summary:
    """The same client loop against an aiohttp handler that only answers: the floor."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"cached":true}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

            async def call() -> None:
                async with http.post(f"http://127.0.0.1:{port}/", data=BODY) as reply:
                    await reply.read()

            return await drive(
                call, concurrency=concurrency, requests=requests, time_limit=time_limit
            )
    finally:
        await runner.cleanup()
