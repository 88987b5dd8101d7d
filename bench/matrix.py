"""The matrix: every target, mode and concurrency, c=1 repeated in interleaved rounds.

Runs at c=1 are repeated (`repeats` rounds, each round visiting every target and mode once, so
slow drifts of a shared machine touch every target alike) and summarised by medians; "added"
latency is the median over rounds of (target - direct) from the same round. Higher
concurrencies run once each.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from bench import h2load
from bench.measure import Measurement, RunOptions, measure
from bench.stats import median
from bench.targets import Mode, Target

REPEATED_CONCURRENCY = 1
PRIME_CLIENTS = 4


@dataclass
class Row:
    """One line of the table: a target, a mode and a concurrency, over its runs."""

    target: str
    mode: str
    concurrency: int
    runs: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    added_p50_ms: float | None = None
    ttfc_p50_ms: float | None = None
    added_ttfc_ms: float | None = None
    cpu_s_per_1k: float = 0.0
    peak_rss_mb: float = 0.0
    max_process_rss_mb: float = 0.0
    processes: int = 0
    errors: int = 0
    note: str = ""


def modes_of(target: Target) -> list[Mode]:
    """The modes a target is measured in, in table order."""
    return list(target.modes)


async def run(
    h2: str,
    targets: Sequence[Target],
    concurrencies: Sequence[int],
    repeats: int,
    options: RunOptions,
) -> list[Measurement]:
    """Measure every runnable target; c=1 first, in `repeats` interleaved rounds."""
    pairs = [(t, m) for t in targets if not t.error for m in modes_of(t)]
    plan: list[tuple[Target, Mode, int, int]] = []
    if REPEATED_CONCURRENCY in concurrencies:
        for repeat in range(repeats):
            plan += [(t, m, REPEATED_CONCURRENCY, repeat) for t, m in pairs]
    for concurrency in concurrencies:
        if concurrency != REPEATED_CONCURRENCY:
            plan += [(t, m, concurrency, 0) for t, m in pairs]
    for target, mode in pairs:
        await prime(h2, target, mode)
    results: list[Measurement] = []
    for number, (target, mode, concurrency, repeat) in enumerate(plan, 1):
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
    print(
        f"{head}: {m.rps:,.0f}/s, p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms{ttfc}, "
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
    return table


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
