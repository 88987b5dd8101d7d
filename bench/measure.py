"""One measured run: a target, a mode, a concurrency; h2load plus the probe, and the tree's cost.

A run is: one real call (checks the answer, gives its size), a short h2load warm-up, then the
measured h2load run while the target's process tree is sampled. For streams at concurrency c
above 1, h2load drives c-1 connections and the probe is the c-th (its streams count in the
throughput and latencies, and its first-chunk times give TTFC); at c=1 h2load runs alone and
the probe runs by itself right after, so TTFC is measured on an otherwise idle target.

Delivered messages and bytes: h2load counts every response's body bytes; messages per stream
come from the probe's streams (under the same load at c>1), so messages per second are streams
per second times that mean.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bench import h2load
from bench.probe import ProbeResult, Reference, probe_streams, reference
from bench.proctree import TreeSampler
from bench.services import upstream_stats
from bench.stats import percentile
from bench.targets import Mode, Target

MB = 1024 * 1024
#: Below this share of a real answer's bytes, responses count as short (failed in disguise).
SHORT_RATIO = 0.97


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How long runs are."""

    seconds: float = 3.0
    warmup_seconds: float = 0.5
    probe_seconds: float = 1.0


@dataclass
class Measurement:
    """What one run measured (times in milliseconds, memory in MiB)."""

    target: str
    mode: str
    concurrency: int
    repeat: int = 0
    seconds: float = 0.0
    done: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ttfc_p50_ms: float | None = None
    #: Streams: the mean messages per stream the probe saw, and messages per second.
    messages_per_stream: float | None = None
    messages_per_second: float | None = None
    #: Body bytes delivered per second (h2load's and, at c>1, the probe's).
    bytes_per_second: float = 0.0
    #: The idle reference answer: its bytes and (streams) messages.
    reference_bytes: int = 0
    reference_messages: int = 0
    errors: int = 0
    #: 2xx answers smaller than a real one: gRPC errors (status in trailers), SSE error events.
    short_responses: int = 0
    #: Body bytes per response over a complete answer's (see `expected`).
    bytes_ratio: float = 0.0
    cpu_seconds: float = 0.0
    cpu_s_per_1k: float = 0.0
    peak_rss_mb: float = 0.0
    peak_rss_per_process_mb: list[float] = field(default_factory=list)
    upstream_calls: int | None = None
    #: Empty when the run happened; else why it did not (or what went wrong).
    failure: str = ""
    notes: list[str] = field(default_factory=list)


async def measure(
    h2: str, target: Target, mode: Mode, concurrency: int, options: RunOptions, repeat: int = 0
) -> Measurement:
    """Run `target` in `mode` at `concurrency`; failures are recorded, never raised."""
    result = Measurement(target.name, mode.value, concurrency, repeat)
    try:
        await _measure(h2, target, mode, concurrency, options, result)
    except Exception as exc:  # a failed run is a result too, never a crashed benchmark
        result.failure = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return result


async def _measure(
    h2: str,
    target: Target,
    mode: Mode,
    concurrency: int,
    options: RunOptions,
    result: Measurement,
) -> None:
    answer = await reference(target, mode)
    result.reference_bytes, result.reference_messages = answer.size, answer.messages
    endpoint = target.endpoints[mode]
    with_probe = mode.streams and concurrency > 1
    clients = concurrency - 1 if with_probe else concurrency

    def spec(seconds: float) -> h2load.LoadSpec:
        return h2load.LoadSpec(
            endpoint.url, endpoint.body, endpoint.headers, clients, endpoint.http1, seconds
        )

    await h2load.run(h2, spec(options.warmup_seconds))
    counted = bool(target.upstream_port)
    before = await upstream_stats(target.upstream_port) if counted else {}
    sampler = TreeSampler(target.pid)
    sampler.start()
    probe = ProbeResult()
    if with_probe:
        load, probe = await asyncio.gather(
            h2load.run(h2, spec(options.seconds)),
            probe_streams(target, mode, options.seconds),
        )
    else:
        load = await h2load.run(h2, spec(options.seconds))
    await sampler.stop()
    after = await upstream_stats(target.upstream_port) if counted else {}
    if mode.streams and not with_probe:
        probe = await probe_streams(target, mode, options.probe_seconds, max_streams=200)
    _fold(result, load, probe if with_probe else ProbeResult(), expected(answer, probe), sampler)
    if probe.ttfc_ms:
        result.ttfc_p50_ms = percentile(probe.ttfc_ms, 0.5)
    if probe.messages:
        result.messages_per_stream = sum(probe.messages) / len(probe.messages)
        result.messages_per_second = result.rps * result.messages_per_stream
    if not with_probe:
        result.errors += probe.errors  # the probe ran alone, after the measured run
    kind = "streams" if mode.streams else "unary"
    if counted and target.name != "direct":
        _check_upstream(result, after[kind] - before[kind], clients)


def expected(answer: Reference, probe: ProbeResult) -> int:
    """The body bytes a complete answer should carry in this run.

    For streams, the least a complete stream can carry (`Reference.floor`): a target that merges
    waiting deltas sends fewer, larger messages under load, and how many it merges depends on
    the load, so h2load's streams may carry fewer bytes than the probe's (which checks each of
    its own streams whole). Unary answers: the reference's size.
    """
    if not probe.bytes:
        return answer.size
    return answer.floor


def _fold(
    result: Measurement,
    load: h2load.LoadResult,
    probe: ProbeResult,
    answer_bytes: int,
    sampler: TreeSampler,
) -> None:
    result.seconds = load.seconds
    result.done = load.done + len(probe.total_ms)
    result.rps = result.done / load.seconds if load.seconds else 0.0
    delivered = load.data_bytes + sum(probe.bytes)
    result.bytes_per_second = delivered / load.seconds if load.seconds else 0.0
    latencies = [us / 1000 for us in load.latencies_us] + probe.total_ms
    result.p50_ms = percentile(latencies, 0.50)
    result.p99_ms = percentile(latencies, 0.99)
    result.errors = load.errors + probe.errors
    if load.done and answer_bytes:
        result.bytes_ratio = load.data_bytes / (load.done * answer_bytes)
        if result.bytes_ratio < SHORT_RATIO:
            result.short_responses = round(load.done * (1 - result.bytes_ratio))
            result.errors += result.short_responses
            result.notes.append(
                f"responses carry {result.bytes_ratio:.0%} of the bytes of a complete answer"
            )
    result.cpu_seconds = sampler.cpu_seconds
    result.cpu_s_per_1k = sampler.cpu_seconds / result.done * 1000 if result.done else 0.0
    result.peak_rss_mb = sampler.peak_rss_bytes / MB
    result.peak_rss_per_process_mb = sorted(
        (rss / MB for rss in sampler.peak_rss_by_pid.values()), reverse=True
    )


def _check_upstream(result: Measurement, calls: int, clients: int) -> None:
    """Every completed call must have reached the fake once.

    Calls in flight when h2load stopped (the warm-up's and the run's, one per connection each)
    may reach the fake too, so up to two per connection more is not a discrepancy.
    """
    result.upstream_calls = calls
    expected_low = result.done - result.errors
    if not expected_low <= calls <= result.done + 2 * (clients + 1):
        result.notes.append(f"upstream saw {calls} calls for {result.done} completed")
