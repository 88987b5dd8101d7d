"""Scenarios beyond the matrix: memory over 100,000 calls, and 1,000 slow streams at once.

- memory: JSON unary calls to the gateway at c=64 in batches of 10,000; after each batch the
  resident memory of every process of the tree is read. Growth over the last half is what a
  leak would show.
- slow streams: a fake that waits 500 ms before answering, a gateway in front of it, then
  1,000 concurrent SSE streams and 1,000 concurrent gRPC streams: do all complete, and when?
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import h2load
from bench.probe import reference
from bench.proctree import TreeSampler, rss_by_pid
from bench.services import start_gateway, start_upstream
from bench.targets import Bodies, Mode, Target, gateway_endpoints

MB = 1024 * 1024
MEMORY_BATCH = 10_000
MEMORY_CONCURRENCY = 64
SLOW_DELAY_MS = 500.0
SLOW_STREAMS = 1000
#: gRPC streams share a few HTTP/2 connections, as real clients do.
SLOW_GRPC_CONNECTIONS = 10


@dataclass
class MemoryPoint:
    """Resident memory after `requests` calls: the tree's sum and each process's."""

    requests: int
    rss_mb: float
    rss_per_process_mb: list[float]


@dataclass
class MemoryResult:
    """The memory scenario's samples and summary."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    points: list[MemoryPoint] = field(default_factory=list)
    growth_last_half_mb: float = 0.0
    growth_last_half_per_process_mb: list[float] = field(default_factory=list)
    failure: str = ""


async def memory(h2: str, gateway: Target, total: int) -> MemoryResult:
    """`total` JSON calls at c=64 in batches of 10,000, reading RSS after each batch."""
    result = MemoryResult()
    endpoint = gateway.endpoints[Mode.JSON]
    batches = max(1, total // MEMORY_BATCH)
    for _ in range(batches):
        spec = h2load.LoadSpec(
            endpoint.url,
            endpoint.body,
            endpoint.headers,
            MEMORY_CONCURRENCY,
            endpoint.http1,
            requests=MEMORY_BATCH,
        )
        try:
            load = await h2load.run(h2, spec)
        except RuntimeError as exc:
            result.failure = str(exc)
            break
        result.requests += load.done
        result.errors += load.errors
        result.seconds += load.seconds
        rss = rss_by_pid(gateway.pid)
        result.points.append(
            MemoryPoint(
                requests=result.requests,
                rss_mb=sum(rss.values()) / MB,
                rss_per_process_mb=[rss[pid] / MB for pid in sorted(rss)],
            )
        )
        print(
            f"memory: {result.requests:,} calls, RSS {sum(rss.values()) / MB:.1f} MB",
            file=sys.stderr,
            flush=True,
        )
    half = len(result.points) // 2
    if half and len(result.points) >= 2:
        middle, last = result.points[half - 1], result.points[-1]
        result.growth_last_half_mb = last.rss_mb - middle.rss_mb
        if len(middle.rss_per_process_mb) == len(last.rss_per_process_mb):
            result.growth_last_half_per_process_mb = [
                b - a
                for a, b in zip(middle.rss_per_process_mb, last.rss_per_process_mb, strict=True)
            ]
    return result


@dataclass
class SlowStreamsResult:
    """1,000 concurrent streams through a gateway whose upstream waits 500 ms."""

    mode: str
    streams: int
    completed: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    peak_rss_mb: float = 0.0
    cpu_seconds: float = 0.0
    failure: str = ""


async def slow_streams(
    h2: str, place: Path, bodies: Bodies, workers: int | None
) -> list[SlowStreamsResult]:
    """Start a slow fake and a gateway in front of it; 1,000 SSE then 1,000 gRPC streams."""
    fake, fake_port = await start_upstream(place, SLOW_DELAY_MS)
    results: list[SlowStreamsResult] = []
    try:
        service, ports = await start_gateway(place, fake_port, workers, tag="gateway-slow")
        try:
            target = Target(
                "gateway",
                pid=service.pid,
                endpoints=gateway_endpoints(bodies, http_port=ports.http, grpc_port=ports.grpc),
                grpc_port=ports.grpc,
                upstream_port=fake_port,
            )
            for mode in (Mode.SSE, Mode.GRPC_STREAM):
                results.append(await _slow_run(h2, target, mode))
        finally:
            await service.stop()
    finally:
        await fake.stop()
    return results


async def _slow_run(h2: str, target: Target, mode: Mode) -> SlowStreamsResult:
    result = SlowStreamsResult(mode.value, SLOW_STREAMS)
    endpoint = target.endpoints[mode]
    grpc = mode is Mode.GRPC_STREAM
    clients = SLOW_GRPC_CONNECTIONS if grpc else SLOW_STREAMS
    spec = h2load.LoadSpec(
        endpoint.url,
        endpoint.body,
        endpoint.headers,
        clients,
        endpoint.http1,
        requests=SLOW_STREAMS,
        streams_per_client=SLOW_STREAMS // clients if grpc else 1,
    )
    try:
        least = (await reference(target, mode)).floor
        sampler = TreeSampler(target.pid)
        sampler.start()
        load = await h2load.run(h2, spec)
        await sampler.stop()
    except Exception as exc:  # reported in the table, never a crashed benchmark
        result.failure = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return result
    answered = sum(n for status, n in load.statuses.items() if 200 <= status < 300)
    short = 0
    if answered and least and load.data_bytes < 0.97 * answered * least:
        short = round(answered - load.data_bytes / least)
    # Not answered 2xx, answered short (an error in the trailers or an SSE error event), or
    # never finished: all count as errors.
    result.completed = answered - short
    result.errors = SLOW_STREAMS - result.completed
    result.seconds = load.seconds
    result.p50_ms, result.p99_ms = load.p50_ms(), load.p99_ms()
    result.max_ms = max(load.latencies_us, default=0) / 1000
    result.peak_rss_mb = sampler.peak_rss_bytes / MB
    result.cpu_seconds = sampler.cpu_seconds
    print(
        f"slow streams {mode.value}: {result.completed}/{SLOW_STREAMS} in {result.seconds:.2f} s",
        file=sys.stderr,
        flush=True,
    )
    return result
