"""The pieces of worker start-up that need no process: CPU count and the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.settings import ConfigError, load_settings
from gateway.runtime.cpus import available_cpus, cgroup_cpu_quota, plan_workers


def test_a_cgroup_v2_quota_caps_the_cpu_count(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    assert available_cpus(tmp_path) <= 2


def test_a_quota_below_one_cpu_still_gives_one_worker(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("20000 100000\n")
    assert available_cpus(tmp_path) == 1


def test_no_quota_leaves_the_affinity_count(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    assert available_cpus(tmp_path) >= 1


def test_a_cgroup_v1_quota_is_read_too(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_cpu_quota(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cgroup_cpu_quota(tmp_path) is None


def test_workers_unset_is_zero_and_zero_is_rejected() -> None:
    assert load_settings({}).workers == 0  # chosen at start: plan_workers
    assert load_settings({"WORKERS": "3"}).workers == 3
    with pytest.raises(ConfigError, match="WORKERS"):
        load_settings({"WORKERS": "0"})


def test_without_redis_and_workers_unset_one_worker_runs() -> None:
    plan = plan_workers(load_settings({}), cpus=8)
    assert plan.count == 1
    assert plan.line == (
        "1 worker: no REDIS_URL, so limits and cache live in this process; set WORKERS to override"
    )


def test_with_redis_and_workers_unset_one_worker_per_cpu_runs() -> None:
    plan = plan_workers(load_settings({"REDIS_URL": "redis://127.0.0.1:6379/0"}), cpus=8)
    assert plan.count == 8
    assert "sharing rate limits, budgets and the cache through REDIS_URL" in plan.line
    assert plan_workers(load_settings({"REDIS_URL": "redis://r"})).count == available_cpus()


def test_with_redis_and_a_memory_cache_the_plan_does_not_claim_a_shared_cache() -> None:
    environ = {"REDIS_URL": "redis://127.0.0.1:6379/0", "CACHE_BACKEND": "memory"}
    assert "sharing rate limits and budgets through" in plan_workers(load_settings(environ)).why


def test_an_explicit_workers_setting_is_honoured_with_or_without_redis() -> None:
    assert plan_workers(load_settings({"WORKERS": "4"}), cpus=8).line == "4 workers: WORKERS=4"
    with_redis = load_settings({"WORKERS": "1", "REDIS_URL": "redis://r"})
    assert plan_workers(with_redis, cpus=8).count == 1
