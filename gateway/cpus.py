"""How many CPUs this process may use: the default number of worker processes.

`os.cpu_count()` counts the machine's cores, but a container limited to two CPUs on a 64-core
node must not start 64 workers: the affinity mask and the cgroup (v2 `cpu.max`, v1
`cpu.cfs_quota_us`/`cpu.cfs_period_us`) quota both cap the answer.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


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
