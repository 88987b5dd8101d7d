"""`python -m bench` (`make bench`): the gateway against its ceiling, the upstream, and peers.

Starts a fast fake OpenAI upstream, the ceiling references (a bare aiohttp relay, a bare
grpc.aio relay and a grpc.aio servicer with fixed answers), the gateway in front of the fake
(and, unless `--no-peers`, LiteLLM's proxy and Portkey's gateway in front of the same fake),
drives each alone with h2load over JSON, gRPC, SSE and gRPC streams (unpaced and paced) at
several concurrencies, and prints one table. Every load loop is bounded in count and time and
targets 127.0.0.1 only. Results go to `bench/results/bench-<timestamp>.json` and
`bench/results/latest.md`. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import h2load, matrix, report, scenarios
from bench.lineup import Choice, Setup, start_targets
from bench.measure import Measurement, RunOptions
from bench.services import DEFAULT_CLIENT
from bench.targets import Mode, write_bodies
from gateway.runtime.cpus import available_cpus


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _modes(text: str) -> list[Mode]:
    try:
        return [Mode(name) for name in _names(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; modes: {', '.join(Mode)}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per run")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up time per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds at c=1")
    parser.add_argument("--concurrency", type=_ints, default=[1, 16, 64], help="e.g. 1,16,64")
    parser.add_argument(
        "--workers",
        type=int,
        default=available_cpus(),
        help="the gateway's WORKERS (default: one per usable CPU; the gateway's own default "
        "without Redis is 1)",
    )
    parser.add_argument("--no-peers", action="store_true", help="skip LiteLLM and Portkey")
    parser.add_argument(
        "--no-ceiling", action="store_true", help="skip relay-http, relay-grpc and grpc-fixed"
    )
    parser.add_argument(
        "--targets", type=_names, default=None, help="only these, e.g. gateway,relay-grpc"
    )
    parser.add_argument(
        "--modes", type=_modes, default=None, help="only these, e.g. grpc,grpc-stream-paced"
    )
    parser.add_argument(
        "--pace-ms",
        type=float,
        default=1.0,
        help="gap between the fake's chunks in the paced modes (0: no paced rows)",
    )
    parser.add_argument(
        "--litellm-workers",
        type=_ints,
        default=list(dict.fromkeys([cores, 1])),
        help=f"LiteLLM --num_workers values, one instance each (default: {cores},1)",
    )
    parser.add_argument(
        "--upstream-clients",
        type=_names,
        default=[DEFAULT_CLIENT],
        help="the gateway's UPSTREAM_HTTP_CLIENT values, one gateway target each "
        f"(e.g. {DEFAULT_CLIENT},httptools: rows 'gateway' and 'gateway-httptools')",
    )
    parser.add_argument("--matrix", action="store_true", help="run the matrix")
    parser.add_argument("--memory", action="store_true", help="run the memory scenario")
    parser.add_argument("--slow-streams", action="store_true", help="run 1,000 slow streams")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--cache-hits", action="store_true", help="the older cache-hit bench")
    args = parser.parse_args(argv)
    if not (args.matrix or args.memory or args.slow_streams):
        args.matrix = args.memory = args.slow_streams = True
    return args


@dataclass
class Outcome:
    """Everything measured in one invocation."""

    results: list[Measurement] = field(default_factory=list)
    memory: scenarios.MemoryResult | None = None
    slow: list[scenarios.SlowStreamsResult] = field(default_factory=list)


def choice(args: argparse.Namespace) -> Choice:
    """What the options ask to start and measure (without the matrix: only the gateway)."""
    return Choice(
        workers=args.workers,
        default_workers=available_cpus(),
        ceiling=args.matrix and not args.no_ceiling,
        litellm_workers=None if args.no_peers or not args.matrix else args.litellm_workers,
        names=args.targets if args.matrix else ["gateway"],
        modes=args.modes if args.matrix else None,
        paced=args.pace_ms > 0,
        upstream_clients=tuple(args.upstream_clients),
    )


async def measure_all(args: argparse.Namespace, h2: str, setup: Setup) -> Outcome:
    """Start the line-up, run the chosen scenarios, stop everything."""
    outcome = Outcome()
    options = RunOptions(seconds=args.seconds, warmup_seconds=args.warmup)
    try:
        await start_targets(setup, choice(args))
        for target in setup.targets:
            if target.error:
                print(f"bench: {target.name}: {target.error}", file=sys.stderr, flush=True)
        if args.matrix:
            outcome.results = await matrix.run(
                h2, setup.targets, args.concurrency, args.repeats, options, setup.focus
            )
        gateway = next((t for t in setup.targets if t.name == "gateway"), None)
        if args.memory and gateway is not None and not gateway.error:
            await setup.focus(gateway)
            outcome.memory = await scenarios.memory(h2, gateway, args.memory_requests)
    finally:
        await setup.stop()
    if args.slow_streams:
        # Its own fake and gateway, started once the others are gone.
        outcome.slow = await scenarios.slow_streams(h2, setup.place, setup.bodies, args.workers)
    return outcome


def publish(args: argparse.Namespace, setup: Setup, outcome: Outcome, info: dict[str, Any]) -> None:
    """Print the table and the scenarios; save the JSON and the Markdown."""
    rows = matrix.rows(setup.targets, args.concurrency, outcome.results) if args.matrix else []
    extra = report.memory_lines(outcome.memory) if outcome.memory else []
    extra += report.slow_lines(outcome.slow) if outcome.slow else []
    header, legend = _header(info, setup, args), _legend(args)
    print("\n".join([*header, "", report.text_table(rows), "", legend, "", *extra]))
    markdown = [f"**{header[0]}**", "", *(f"- {line}" for line in header[1:]), ""]
    markdown += [report.markdown_table(rows), "", legend]
    if extra:
        markdown += ["", "```", *extra, "```"]
    payload: dict[str, Any] = {
        "arguments": vars(args),
        "machine": {**info, **setup.versions},
        "targets": [
            {"name": t.name, "version": t.version, "error": t.error} for t in setup.targets
        ],
        "rows": rows,
        "runs": outcome.results,
        "memory": outcome.memory,
        "slow_streams": outcome.slow,
        "seconds": info["seconds"],
    }
    json_path, md_path = report.save(payload, "\n".join(markdown))
    print(f"\nsaved {json_path} and {md_path}; took {info['seconds']:.0f} s")


async def run(args: argparse.Namespace, h2: str) -> int:
    """Everything: start, measure, stop, report. The exit status."""
    began = time.monotonic()
    place = Path(tempfile.mkdtemp(prefix="bench-"))
    setup = Setup(place, write_bodies(place, args.pace_ms))
    setup.versions["h2load"] = h2load.version(h2)
    info = report.machine()
    try:
        outcome = await measure_all(args, h2, setup)
    except BaseException:
        print(f"bench: failed; the services' logs are in {place}", file=sys.stderr)
        raise
    info["load_average_end"] = report.load_average()
    info["seconds"] = time.monotonic() - began
    publish(args, setup, outcome, info)
    shutil.rmtree(place, ignore_errors=True)
    return 0


def _header(info: dict[str, Any], setup: Setup, args: argparse.Namespace) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in setup.versions.items())
    workers = args.workers
    modified = " (with uncommitted changes)" if info["gateway_tree_dirty"] else ""
    paced = f"paced streams: a chunk every {args.pace_ms:g} ms" if args.pace_ms > 0 else ""
    ceiling = [
        f"{t.name} ({t.version})" for t in setup.targets if t.name.startswith(("relay", "grpc"))
    ]
    lines = [
        f"ai-gateway bench, {time.strftime('%Y-%m-%d %H:%M')}, {args.seconds:g} s runs",
        f"machine: {info['cpu_model']}, {info['cores']} cores, Linux {info['kernel']}, "
        f"Python {info['python']}, load average at start {' '.join(info['load_average'])}",
        f"gateway {info['gateway_commit']}{modified}, WORKERS {workers}; {versions}",
    ]
    if ceiling or paced:
        lines.append("; ".join(filter(None, [", ".join(ceiling), paced])))
    return lines


def _legend(args: argparse.Namespace) -> str:
    return (
        "Each target runs alone (the others are paused). req/s: completed calls (streams in "
        "stream modes) per second; x relay: req/s over the same-run relay's at the same mode "
        "and c (relay-http for json/sse, relay-grpc for grpc); msgs/s: stream messages "
        "delivered per second (req/s times the probe's messages per stream); MB/s: body bytes "
        "delivered per second; +p50 and +TTFC: over calling the fake directly at the same c "
        "(gRPC rows against direct HTTP, paced rows against direct sse-paced); TTFC-relay: TTFC "
        f"over the relay's; c=1 rows: median of {args.repeats} interleaved runs (paced rows run "
        "at c>1 only); CPU s/1k: CPU seconds of the target's process tree per 1,000 calls; RSS "
        "MB: peak of the tree's summed RSS (max/proc: its largest process); errors: non-2xx, "
        "failed, or 2xx answers short of a complete one's bytes. Every call through the "
        "gateway, a relay or a peer is also counted at the fake (a mismatch is noted)."
    )


def raise_fd_limit() -> None:
    """1,000 streams need more descriptors than the usual 1,024 (children inherit this)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main() -> int:
    """Parse options and run."""
    args = parse_args()
    if args.cache_hits:
        from bench import cache_hits

        return cache_hits.main()
    raise_fd_limit()
    h2 = h2load.ensure_installed()
    import uvloop

    return uvloop.run(run(args, h2))


sys.exit(main())
