"""The peers measured next to the gateway: LiteLLM's proxy and Portkey's gateway.

Each is installed on first use into `bench/.peers/` (ignored by git) from the pins in
`bench/peers/`, and reinstalled only when those pins change. Both are started in front of the
same fake upstream the gateway uses, with telemetry and update checks turned off.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from bench.services import (
    UPSTREAM_KEY,
    Service,
    free_port,
    http_ok,
    spawn,
    wait_ready,
)

HERE = Path(__file__).resolve().parent
PINS = HERE / "peers"
INSTALLS = HERE / ".peers"
LITELLM_VENV = INSTALLS / "litellm-venv"
PORTKEY_DIR = INSTALLS / "portkey"
PORTKEY_PACKAGE = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway"
MODEL = "gpt-4o-mini"
CHAT_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}]})
INSTALL_TIMEOUT = 900


class InstallError(RuntimeError):
    """A peer could not be installed; the message says why."""


def _fingerprint(*files: Path) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _installed(marker: Path, fingerprint: str) -> bool:
    return marker.exists() and marker.read_text().strip() == fingerprint


def _run(argv: list[str], cwd: Path | None = None) -> None:
    print(f"bench: $ {' '.join(argv)}", flush=True)
    try:
        done = subprocess.run(  # noqa: S603 - fixed commands on our own files
            argv, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "WARNING: Location" not in line]
        raise InstallError(f"{' '.join(argv[:3])}... failed: " + " | ".join(errors[-3:]))


def install_litellm() -> str:
    """Install the pinned LiteLLM proxy into its own venv (once); its version."""
    requirements = PINS / "litellm-requirements.txt"
    constraints = PINS / "litellm-constraints.txt"
    marker = LITELLM_VENV / ".bench-installed"
    fingerprint = _fingerprint(requirements, constraints)
    if not _installed(marker, fingerprint):
        print("bench: installing the LiteLLM proxy (first use; a minute or two)", flush=True)
        shutil.rmtree(LITELLM_VENV, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(LITELLM_VENV)])
        pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        _run([*pip, "--disable-pip-version-check", "-r", str(requirements), "-c", str(constraints)])
        marker.write_text(fingerprint)
    probe = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run(  # noqa: S603
        [str(LITELLM_VENV / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def install_portkey() -> str:
    """Install the pinned Portkey gateway with npm (once); its version."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise InstallError("node and npm are not installed")
    files = [PINS / "portkey" / "package.json", PINS / "portkey" / "package-lock.json"]
    marker = PORTKEY_DIR / ".bench-installed"
    fingerprint = _fingerprint(*files)
    if not _installed(marker, fingerprint):
        print("bench: installing the Portkey gateway (first use)", flush=True)
        shutil.rmtree(PORTKEY_DIR, ignore_errors=True)
        PORTKEY_DIR.mkdir(parents=True)
        for file in files:
            shutil.copy(file, PORTKEY_DIR / file.name)
        # As in the Makefile: `npm ci` rejects a lock file that lacks other platforms' optional
        # binaries; `npm install --no-save` installs the locked versions and changes nothing.
        _run(
            ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error"],
            PORTKEY_DIR,
        )
        marker.write_text(fingerprint)
    package = json.loads((PORTKEY_PACKAGE / "package.json").read_text())
    return str(package["version"])


def node_version() -> str:
    """`node --version`, or "none"."""
    node = shutil.which("node")
    if node is None:
        return "none"
    done = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    return done.stdout.strip()


def _base_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        # Nothing a peer does during the benchmark needs the network beyond loopback.
        "NO_PROXY": "*",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
    }


async def start_litellm(place: Path, upstream_port: int, workers: int) -> tuple[Service, int, str]:
    """Start the LiteLLM proxy with `workers` workers; the service, its port and its key."""
    port = free_port()
    master_key = "sk-bench-" + secrets.token_hex(16)
    config = place / f"litellm-{workers}w.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    env = {
        **_base_env(),
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
        "DISABLE_ADMIN_UI": "True",
    }
    argv = [
        str(LITELLM_VENV / "bin" / "litellm"),
        *("--config", str(config), "--host", "127.0.0.1", "--port", str(port)),
        *("--num_workers", str(workers)),
    ]
    service = await spawn(
        f"litellm ({workers} worker{'s' if workers != 1 else ''})",
        argv,
        env,
        place / f"litellm-{workers}w.log",
        cwd=place,
    )
    headers = {"authorization": f"Bearer {master_key}", "content-type": "application/json"}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        await wait_ready(
            service, lambda: http_ok(url, body=CHAT_BODY.encode(), headers=headers, times=4)
        )
    except BaseException:
        await service.stop()
        raise
    return service, port, master_key


def portkey_headers(upstream_port: int) -> dict[str, str]:
    """What a Portkey caller sends to reach an OpenAI-compatible server at the fake."""
    return {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"http://127.0.0.1:{upstream_port}/v1",
        "authorization": f"Bearer {UPSTREAM_KEY}",
        "content-type": "application/json",
    }


async def start_portkey(place: Path, upstream_port: int) -> tuple[Service, int]:
    """Start the Portkey gateway (one Node.js process); the service and its port."""
    port = free_port()
    argv = [
        shutil.which("node") or "node",
        str(PORTKEY_PACKAGE / "build" / "start-server.js"),
        f"--port={port}",
        "--headless",
    ]
    service = await spawn("portkey", argv, _base_env(), place / "portkey.log", cwd=place)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = portkey_headers(upstream_port)
    try:
        await wait_ready(
            service, lambda: http_ok(url, body=CHAT_BODY.encode(), headers=headers, times=4)
        )
    except BaseException:
        await service.stop()
        raise
    return service, port
