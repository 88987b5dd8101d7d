"""The matrix: every target, mode and concurrency, c=1 repeated in interleaved rounds.

Runs at c=1 are repeated (`repeats` rounds, each round visiting every target and mode once, so
slow drifts of a shared machine touch every target alike) and summarised by medians; "added"
latency is the median over rounds of (target - direct) from the same round. Higher
concurrencies run once each; paced streams run only there (at c=1 they measure the pace).
Runs go mode by mode, and before each run `focus` pauses every other target, so each is
measured alone.

A row of the gateway (or a peer) is also read against the ceiling reference of its mode
(`relay-http` for JSON and SSE, `relay-grpc` for gRPC) at the same concurrency: its req/s as a
share of the relay's, and its time to first chunk over the relay's.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bench import h2load
from bench.measure import Measurement, RunOptions, measure
from bench.stats import median
from bench.targets import RELAY_GRPC, RELAY_HTTP, Mode, Target

REPEATED_CONCURRENCY = 1
PRIME_CLIENTS = 4
#: Targets whose rows are not read against a relay: the floor and the references themselves.
_UNRELATED = frozenset({"direct", RELAY_HTTP, RELAY_GRPC})

Focus = Callable[[Target], Awaitable[None]]


@dataclass
class Row:
    """One line of the table: a target, a mode and a concurrency, over its runs."""

    target: str
    mode: str
    concurrency: int
    runs: int = 0
    rps: float = 0.0
    #: req/s over the same-run relay's at the same mode and concurrency.
    vs_relay: float | None = None
    messages_per_second: float | None = None
    messages_per_stream: float | None = None
    mb_per_second: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    added_p50_ms: float | None = None
    ttfc_p50_ms: float | None = None
    added_ttfc_ms: float | None = None
    #: TTFC minus the same-run relay's at the same mode and concurrency.
    ttfc_over_relay_ms: float | None = None
    cpu_s_per_1k: float = 0.0
    peak_rss_mb: float = 0.0
    max_process_rss_mb: float = 0.0
    processes: int = 0
    errors: int = 0
    note: str = ""


def modes_of(target: Target) -> list[Mode]:
    """The modes a target is measured in, in table order."""
    return list(target.modes)


def runs_at(mode: Mode, concurrency: int) -> bool:
    """Whether `mode` is measured at `concurrency` (paced streams: not alone, at c=1)."""
    return not (mode.paced and concurrency == REPEATED_CONCURRENCY)


async def run(
    h2: str,
    targets: Sequence[Target],
    concurrencies: Sequence[int],
    repeats: int,
    options: RunOptions,
    focus: Focus,
) -> list[Measurement]:
    """Measure every runnable target, each alone; c=1 first, in `repeats` interleaved rounds.

    Within a concurrency (and a round), runs go mode by mode, so a row and the relay it is read
    against are measured back to back and a shared machine's drifts touch both alike.
    """
    by_target = [(t, m) for t in targets if not t.error for m in modes_of(t)]
    order = list(Mode)
    pairs = sorted(by_target, key=lambda pair: order.index(pair[1]))  # stable: targets in order
    plan: list[tuple[Target, Mode, int, int]] = []
    if REPEATED_CONCURRENCY in concurrencies:
        for repeat in range(repeats):
            plan += [
                (t, m, REPEATED_CONCURRENCY, repeat)
                for t, m in pairs
                if runs_at(m, REPEATED_CONCURRENCY)
            ]
    for concurrency in concurrencies:
        if concurrency != REPEATED_CONCURRENCY:
            plan += [(t, m, concurrency, 0) for t, m in pairs if runs_at(m, concurrency)]
    for target, mode in by_target:
        await focus(target)
        await prime(h2, target, mode)
    results: list[Measurement] = []
    for number, (target, mode, concurrency, repeat) in enumerate(plan, 1):
        await focus(target)
        result = await measure(h2, target, mode, concurrency, options, repeat)
        results.append(result)
        _progress(number, len(plan), result)
    return results


async def prime(h2: str, target: Target, mode: Mode) -> None:
    """A second of load before anything is measured: lazy imports, JIT, pools and caches.

    LiteLLM, for one, takes most of a second over its first call after start-up.
    """
    endpoint = target.endpoints[mode]
    spec = h2load.LoadSpec(
        endpoint.url, endpoint.body, endpoint.headers, PRIME_CLIENTS, endpoint.http1, 1.0
    )
    try:
        await h2load.run(h2, spec)
    except RuntimeError as exc:  # the measured runs will fail and say why
        print(f"priming {target.name} {mode}: {exc}", file=sys.stderr, flush=True)


def _progress(number: int, total: int, m: Measurement) -> None:
    head = f"[{number}/{total}] {m.target} {m.mode} c={m.concurrency}"
    if m.failure:
        print(f"{head}: FAILED {m.failure}", file=sys.stderr, flush=True)
        return
    ttfc = f", TTFC {m.ttfc_p50_ms:.2f} ms" if m.ttfc_p50_ms is not None else ""
    per = f" ({m.messages_per_stream:.1f} msgs each)" if m.messages_per_stream else ""
    print(
        f"{head}: {m.rps:,.0f}/s{per}, p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms{ttfc}, "
        f"{m.errors} errors",
        file=sys.stderr,
        flush=True,
    )


def rows(
    targets: Sequence[Target], concurrencies: Sequence[int], results: Sequence[Measurement]
) -> list[Row]:
    """Summarise runs into table rows (targets that could not run get rows saying why)."""
    table: list[Row] = []
    for target in targets:
        for mode in modes_of(target):
            for concurrency in concurrencies:
                if not runs_at(mode, concurrency):
                    continue
                row = Row(target.name, mode.value, concurrency)
                if target.error:
                    row.note = f"not run: {target.error}"
                else:
                    runs = [
                        r
                        for r in results
                        if (r.target, r.mode, r.concurrency)
                        == (target.name, mode.value, concurrency)
                    ]
                    _summarise(row, runs, results, mode)
                table.append(row)
    _against_relays(table)
    return table


def _against_relays(table: list[Row]) -> None:
    """Fill each row's ratio to (and TTFC over) its mode's relay at the same concurrency."""
    relays = {
        (r.mode, r.concurrency): r for r in table if r.runs and r.target == Mode(r.mode).relay
    }
    for row in table:
        relay = relays.get((row.mode, row.concurrency))
        if row.target in _UNRELATED or not row.runs or relay is None:
            continue
        row.vs_relay = row.rps / relay.rps if relay.rps else None
        if row.ttfc_p50_ms is not None and relay.ttfc_p50_ms is not None:
            row.ttfc_over_relay_ms = row.ttfc_p50_ms - relay.ttfc_p50_ms


def _summarise(
    row: Row, runs: list[Measurement], everything: Sequence[Measurement], mode: Mode
) -> None:
    good = [r for r in runs if not r.failure]
    row.runs = len(good)
    failures = sorted({r.failure for r in runs if r.failure})
    notes = sorted({note for r in good for note in r.notes})
    row.note = "; ".join([*(f"failed: {f}" for f in failures), *notes])
    if not good:
        return
    row.rps = median([r.rps for r in good])
    row.mb_per_second = median([r.bytes_per_second for r in good]) / 1e6
    per_stream = [r.messages_per_stream for r in good if r.messages_per_stream is not None]
    if per_stream:
        row.messages_per_stream = median(per_stream)
        row.messages_per_second = row.rps * row.messages_per_stream
    row.p50_ms = median([r.p50_ms for r in good])
    row.p99_ms = median([r.p99_ms for r in good])
    ttfcs = [r.ttfc_p50_ms for r in good if r.ttfc_p50_ms is not None]
    row.ttfc_p50_ms = median(ttfcs) if ttfcs else None
    row.cpu_s_per_1k = median([r.cpu_s_per_1k for r in good])
    row.peak_rss_mb = max(r.peak_rss_mb for r in good)
    row.max_process_rss_mb = max(max(r.peak_rss_per_process_mb, default=0.0) for r in good)
    row.processes = max(len(r.peak_rss_per_process_mb) for r in good)
    row.errors = sum(r.errors for r in runs)
    direct = {
        (r.repeat): r
        for r in everything
        if r.target == "direct"
        and r.mode == mode.direct_peer.value
        and r.concurrency == row.concurrency
        and not r.failure
    }
    if row.target == "direct":
        return  # the baseline itself: nothing added
    added = [r.p50_ms - direct[r.repeat].p50_ms for r in good if r.repeat in direct]
    row.added_p50_ms = median(added) if added else None
    added_ttfc = [
        r.ttfc_p50_ms - d.ttfc_p50_ms
        for r in good
        if (d := direct.get(r.repeat)) is not None
        and r.ttfc_p50_ms is not None
        and d.ttfc_p50_ms is not None
    ]
    row.added_ttfc_ms = median(added_ttfc) if added_ttfc else None
