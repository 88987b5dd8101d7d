"""CPU time and memory of a process and all its descendants, read from /proc (Linux only).

A target may be one process (the fake, Portkey) or a supervisor with workers (the gateway with
`WORKERS`, LiteLLM with `--num_workers`), so every figure is over the whole tree: the root and
every process whose parent chain leads to it, found by scanning `/proc/*/stat` for parent ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """One process at one moment: its parent, CPU seconds so far and resident bytes."""

    pid: int
    ppid: int
    cpu_seconds: float
    rss_bytes: int


def read_stat(pid: int) -> ProcStat | None:
    """Read `/proc/<pid>/stat`; None if the process is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = raw[raw.rindex(b")") + 2 :].split()
    # After the name: state(0) ppid(1) ... utime(11) stime(12) ... rss(21), in pages.
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        cpu_seconds=(int(fields[11]) + int(fields[12])) / _TICKS,
        rss_bytes=int(fields[21]) * _PAGE,
    )


def tree(root: int) -> dict[int, ProcStat]:
    """`root` and every live descendant, by pid (empty if `root` is gone)."""
    stats: dict[int, ProcStat] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                stats[stat.pid] = stat
    if root not in stats:
        return {}
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: dict[int, ProcStat] = {}
    pending = [root]
    while pending:
        pid = pending.pop()
        found[pid] = stats[pid]
        pending.extend(children.get(pid, ()))
    return found


@dataclass
class TreeSampler:
    """Samples a process tree while a run goes on: CPU used and peak memory.

    `start()` takes the first sample and begins sampling every `interval` seconds; `stop()`
    takes the last. CPU is summed per pid (a process born during the run counts from zero);
    the peak is the largest summed RSS seen, and each process's own largest RSS.
    """

    root: int
    interval: float = 0.2
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    peak_rss_by_pid: dict[int, int] = field(default_factory=dict)
    _first: dict[int, ProcStat] = field(default_factory=dict)
    _last: dict[int, ProcStat] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def sample(self) -> dict[int, ProcStat]:
        """Take one sample now and fold it into the peaks."""
        now = tree(self.root)
        self.peak_rss_bytes = max(self.peak_rss_bytes, sum(s.rss_bytes for s in now.values()))
        for pid, stat in now.items():
            self.peak_rss_by_pid[pid] = max(self.peak_rss_by_pid.get(pid, 0), stat.rss_bytes)
        for pid, stat in now.items():
            self._last[pid] = stat
        return now

    def start(self) -> None:
        """First sample, then sample in the background."""
        self._first = self.sample()

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval)
                self.sample()

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        """Stop sampling, take the last sample and compute the CPU used since `start()`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()
        self.cpu_seconds = sum(
            stat.cpu_seconds - (self._first[pid].cpu_seconds if pid in self._first else 0.0)
            for pid, stat in self._last.items()
        )

    @property
    def processes(self) -> int:
        """How many processes the tree had at any point of the run."""
        return len(self.peak_rss_by_pid)


def rss_by_pid(root: int) -> dict[int, int]:
    """Resident bytes of each process of the tree now."""
    return {pid: stat.rss_bytes for pid, stat in tree(root).items()}
