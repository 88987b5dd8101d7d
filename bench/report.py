"""The report: one aligned table on stdout, the same as Markdown, everything as JSON.

`bench/results/bench-<timestamp>.json` holds every run, the summary rows, the scenarios and the
machine; `bench/results/latest.md` holds the Markdown tables, ready to paste into the README.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.matrix import Row
from bench.scenarios import MemoryResult, SlowStreamsResult

RESULTS = Path(__file__).resolve().parent / "results"

COLUMNS = (
    "target",
    "mode",
    "c",
    "req/s",
    "x relay",
    "msgs/s",
    "MB/s",
    "p50 ms",
    "p99 ms",
    "+p50 ms",
    "TTFC ms",
    "+TTFC ms",
    "TTFC-relay ms",
    "CPU s/1k",
    "RSS MB",
    "max/proc MB",
    "procs",
    "errors",
)


def machine() -> dict[str, Any]:
    """What the numbers were measured on (and with which versions)."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": load_average(),
        "gateway_commit": _git("rev-parse", "--short", "HEAD"),
        "gateway_tree_dirty": bool(_git("status", "--porcelain", "--", "gateway", "providers")),
    }


def load_average() -> list[str]:
    """The 1, 5 and 15 minute load averages (others' load on a shared machine shows here)."""
    return Path("/proc/loadavg").read_text().split()[:3]


def _git(*args: str) -> str:
    done = subprocess.run(  # noqa: S603 - fixed git commands
        ["git", *args],  # noqa: S607 - git from PATH
        capture_output=True,
        text=True,
        check=False,
        cwd=RESULTS.parent.parent,
    )
    return done.stdout.strip()


def _number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    """Milliseconds: three decimals below 1 ms (the direct rows), two above."""
    if value is None:
        return "-"
    return f"{value:,.3f}" if abs(value) < 1 else f"{value:,.2f}"


def _signed(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:+,.3f}" if abs(value) < 1 else f"{value:+,.2f}"


def cells(row: Row) -> list[str]:
    """A row's cells, in `COLUMNS` order."""
    head = [row.target, row.mode, str(row.concurrency)]
    if not row.runs:
        return [*head, *(["-"] * (len(COLUMNS) - 4)), "-"]
    return [
        *head,
        _number(row.rps, 0),
        _number(row.vs_relay, 2),
        _number(row.messages_per_second, 0),
        _number(row.mb_per_second, 1),
        _ms(row.p50_ms),
        _ms(row.p99_ms),
        _signed(row.added_p50_ms),
        _ms(row.ttfc_p50_ms),
        _signed(row.added_ttfc_ms),
        _signed(row.ttfc_over_relay_ms),
        _number(row.cpu_s_per_1k, 3),
        _number(row.peak_rss_mb, 0),
        _number(row.max_process_rss_mb, 0),
        str(row.processes),
        str(row.errors),
    ]


def text_table(rows: Sequence[Row]) -> str:
    """The aligned plain-text table, with notes under it."""
    body = [cells(row) for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in body)]) for i, c in enumerate(COLUMNS)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i < 2 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    out = [line(COLUMNS), line(["-" * w for w in widths])]
    previous = ""
    for row, values in zip(rows, body, strict=True):
        if previous and row.target != previous:
            out.append("")
        previous = row.target
        out.append(line(values))
    return "\n".join(out + _notes(rows))


def markdown_table(rows: Sequence[Row]) -> str:
    """The same table in Markdown."""
    align = ["---", "---", *(["---:"] * (len(COLUMNS) - 2))]
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(out + _notes(rows))


def _notes(rows: Sequence[Row]) -> list[str]:
    """One line per distinct note of a target, naming its rows unless it is about all of them."""
    grouped: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.note:
            grouped.setdefault((row.target, row.note), []).append(row)
    if not grouped:
        return []
    per_target = Counter(row.target for row in rows)
    lines = ["", "Notes:"]
    for (target, note), group in grouped.items():
        where = target
        if len(group) < per_target[target]:
            where += " " + ", ".join(f"{r.mode} c={r.concurrency}" for r in group)
        lines.append(f"- {where}: {note}")
    return lines


def memory_lines(result: MemoryResult) -> list[str]:
    """The memory scenario in a few lines."""
    if result.failure or not result.points:
        return [f"memory: failed: {result.failure or 'no samples'}"]
    out = [
        f"memory: {result.requests:,} JSON calls at c=64 in {result.seconds:.1f} s, "
        f"{result.errors} errors; RSS MB per process (tree total) after each 10,000:"
    ]
    for point in result.points:
        per = ", ".join(f"{mb:.1f}" for mb in point.rss_per_process_mb)
        out.append(f"  {point.requests:>7,}: {per}  ({point.rss_mb:.1f})")
    if len(result.points) < 2:
        return out
    per_growth = ", ".join(f"{mb:+.1f}" for mb in result.growth_last_half_per_process_mb)
    out.append(
        f"  growth over the last half: {result.growth_last_half_mb:+.1f} MB total"
        + (f" ({per_growth} per process)" if per_growth else "")
    )
    return out


def slow_lines(results: Sequence[SlowStreamsResult]) -> list[str]:
    """The slow-streams scenario in a few lines."""
    out = ["slow streams (upstream waits 500 ms), all started at once:"]
    for r in results:
        if r.failure:
            out.append(f"  {r.mode}: failed: {r.failure}")
            continue
        out.append(
            f"  {r.mode}: {r.completed}/{r.streams} completed, {r.errors} errors, "
            f"{r.seconds:.2f} s; p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms, "
            f"max {r.max_ms:.0f} ms; peak RSS {r.peak_rss_mb:.0f} MB, CPU {r.cpu_seconds:.1f} s"
        )
    return out


def _as_json(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"not serialisable: {type(value)}")


def save(payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write the JSON results and `latest.md`; their paths."""
    RESULTS.mkdir(exist_ok=True)
    json_path = RESULTS / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=_as_json) + "\n")
    md_path = RESULTS / "latest.md"
    md_path.write_text(markdown + "\n")
    return json_path, md_path
