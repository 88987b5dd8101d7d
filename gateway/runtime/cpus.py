"""How many worker processes to run (`plan_workers`), and how many CPUs this process may use.

Unless `WORKERS` says otherwise, one process serves when there is no Redis: rate limits,
budgets and the memory cache are process state, and several workers would each keep their own
(a 3-per-minute limit admitting 3 per worker, a cached answer found by one worker in two). With
`REDIS_URL` those are shared, and the default is one worker per CPU we may use.

`os.cpu_count()` counts the machine's cores, but a container limited to two CPUs on a 64-core
node must not start 64 workers: the affinity mask and the cgroup (v2 `cpu.max`, v1
`cpu.cfs_quota_us`/`cpu.cfs_period_us`) quota both cap the answer.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.config.settings import Settings

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class WorkerPlan:
    """How many worker processes to run, and why (said in one line at start)."""

    count: int
    why: str

    @property
    def line(self) -> str:
        """`1 worker: no REDIS_URL, ...`."""
        return f"{self.count} worker{'' if self.count == 1 else 's'}: {self.why}"


def plan_workers(settings: Settings, cpus: int | None = None) -> WorkerPlan:
    """`WORKERS` when set; else one per CPU with Redis to share state, one without it."""
    if settings.workers:
        return WorkerPlan(settings.workers, f"WORKERS={settings.workers}")
    if not settings.redis_url:
        return WorkerPlan(
            1, "no REDIS_URL, so limits and cache live in this process; set WORKERS to override"
        )
    shared = "rate limits and budgets"
    if settings.cache_backend in ("auto", "redis"):
        shared = "rate limits, budgets and the cache"
    count = available_cpus() if cpus is None else cpus
    return WorkerPlan(
        count,
        f"one per CPU available, sharing {shared} through REDIS_URL; set WORKERS to override",
    )


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process can run on, capped by its cgroup's quota; at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The cgroup's CPU quota in CPUs (e.g. 1.5), or None when there is none or it is unreadable."""
    v2 = _read(cgroup_root / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        return _ratio(quota, period)
    quota_v1 = _read(cgroup_root / "cpu" / "cpu.cfs_quota_us")
    period_v1 = _read(cgroup_root / "cpu" / "cpu.cfs_period_us")
    if quota_v1 is None or period_v1 is None:
        return None
    return _ratio(quota_v1, period_v1)


def _ratio(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no limit
        return None
    if quota_us <= 0 or period_us <= 0:  # v1 says -1 for no limit
        return None
    return quota_us / period_us


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
