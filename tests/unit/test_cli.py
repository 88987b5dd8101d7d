"""The command line as a user (or CI, or an init container) runs it: `python -m gateway ...`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

PASSWORD = "hunter2-not-for-output"


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m gateway <args>` with only `env` (and PATH) set, in `cwd`."""
    environ = {"PATH": os.environ.get("PATH", ""), **env}
    command = [sys.executable, "-m", "gateway", *args]
    return subprocess.run(  # noqa: S603 (our own program)
        command, env=environ, cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    done = run("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"ai-gateway {version('ai-gateway')}\n",
        "",
    )


def test_help_names_every_command_the_exit_statuses_and_the_settings_table(
    tmp_path: Path,
) -> None:
    done = run("--help", cwd=tmp_path)
    assert done.returncode == 0
    for word in ("serve", "check", "migrate", "--version", "README.md#configuration"):
        assert word in done.stdout
    for status in ("2", "3", "4", "5"):
        assert f"\n  {status} " in done.stdout


def test_check_on_defaults_prints_one_line_of_what_would_run_and_exits_0(
    tmp_path: Path,
) -> None:
    done = run("check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    [line] = done.stdout.splitlines()
    assert line.startswith("ai-gateway: configuration OK: ")
    for part in ("mock (mock)", "1 worker", "limits memory", "cache memory", "usage sqlite"):
        assert part in line
    assert not list(tmp_path.iterdir())  # no database file made, nothing started


def test_check_lists_the_yaml_deployments_models_and_aliases(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "providers:\n"
        "  vllm:\n"
        "    kind: openai\n"
        "    base_url: http://127.0.0.1:8000/v1\n"
        "    models: [llama-3.1-8b]\n"
        "models:\n"
        "  local: vllm/llama-3.1-8b\n"
    )
    done = run("check", cwd=tmp_path, GATEWAY_CONFIG=str(config))
    assert done.returncode == 0, done.stderr
    assert "vllm (llama-3.1-8b)" in done.stdout
    assert "1 alias" in done.stdout


def test_check_does_not_need_the_database_or_redis_and_prints_no_password(
    tmp_path: Path,
) -> None:
    done = run(
        "check",
        cwd=tmp_path,
        DATABASE_URL=f"postgresql://gw:{PASSWORD}@127.0.0.1:{closed_port()}/usage",
        REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/0",
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout
    assert "usage postgresql 127.0.0.1:" in done.stdout
    assert "limits redis" in done.stdout


def test_check_with_an_invalid_setting_prints_one_line_naming_it_and_exits_2(
    tmp_path: Path,
) -> None:
    done = run("check", cwd=tmp_path, WORKERS="0")
    assert (done.returncode, done.stdout) == (2, "")
    [line] = done.stderr.splitlines()
    assert "WORKERS" in line
