"""The processes a benchmark runs against: the fake upstream, the gateway and the ceiling
references (`bench.ceiling`), each on loopback.

Every process starts in its own session (so stopping it stops its workers too), writes its
output to a log file in the run's scratch directory, and is waited for until it really answers.
A service not being measured can be paused (SIGSTOP to its whole tree) so that it takes no CPU
from the one that is, and resumed (SIGCONT) before its own runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.proctree import tree

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
#: After resuming a paused tree's workers, and again after its root: time to catch up.
RESUME_SETTLE = 0.05
GATEWAY_TOKEN = "bench-token"  # noqa: S105 - a loopback-only benchmark credential
UPSTREAM_KEY = "sk-bench"
#: The gateway's default upstream HTTP client (`UPSTREAM_HTTP_CLIENT`).
DEFAULT_CLIENT = "httptools"


class StartError(RuntimeError):
    """A service did not start or never became ready; the message says why."""


@dataclass
class Service:
    """A started process (and its process group) with the log it writes."""

    name: str
    process: asyncio.subprocess.Process
    log: Path
    paused: bool = False

    @property
    def pid(self) -> int:
        """The root of the service's process tree."""
        return self.process.pid

    def log_tail(self, lines: int = 15) -> str:
        """The end of the service's output, for error messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def pause(self) -> None:
        """Stop every process of the tree (SIGSTOP): the root first, so a supervisor never sees
        its workers stopped while it runs (uvicorn's, for one, restarts a worker that misses a
        ping)."""
        if self.paused or self.process.returncode is not None:
            return
        self.paused = True
        pids = list(tree(self.pid))
        for pid in pids:
            self._kill(pid, signal.SIGSTOP)
        self._signal(signal.SIGSTOP)  # anything in the group that left the tree

    async def resume(self) -> None:
        """Continue the tree (SIGCONT): the workers first, then, once they caught up, the root."""
        if not self.paused:
            return
        self.paused = False
        for pid in list(tree(self.pid))[::-1]:
            if pid != self.pid:
                self._kill(pid, signal.SIGCONT)
        await asyncio.sleep(RESUME_SETTLE)
        self._kill(self.pid, signal.SIGCONT)
        self._signal(signal.SIGCONT)  # anything in the group that left the tree
        await asyncio.sleep(RESUME_SETTLE)

    async def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it has not exited in time."""
        if self.paused:
            await self.resume()  # a stopped process would not act on SIGTERM
        if self.process.returncode is None:
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self._signal(signal.SIGKILL)
                await self.process.wait()
        # Workers that outlived their parent go too: the group is ours alone.
        self._signal(signal.SIGKILL)

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    @staticmethod
    def _kill(pid: int, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for services that must be told their port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def spawn(
    name: str, argv: list[str], env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> Service:
    """Start `argv` in a new session, its stdout and stderr going to `log`."""
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, process, log)


async def wait_ready(
    service: Service, check: Callable[[], Awaitable[bool]], limit: float = START_TIMEOUT
) -> float:
    """Poll `check` until it passes; the seconds it took. Raises `StartError` on exit/timeout."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if service.process.returncode is not None:
            raise StartError(
                f"{service.name} exited with status {service.process.returncode}:\n"
                f"{service.log_tail()}"
            )
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            if await check():
                took = time.monotonic() - started
                print(f"bench: {service.name} ready after {took:.1f} s", file=sys.stderr)
                return took
        await asyncio.sleep(0.25)
    raise StartError(f"{service.name} not ready after {limit:.0f} s:\n{service.log_tail()}")


async def http_ok(
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    times: int = 1,
) -> bool:
    """Whether `times` requests in a row, each on a new connection, answer 2xx."""
    timeout = aiohttp.ClientTimeout(total=10)
    for _ in range(times):
        async with aiohttp.ClientSession(timeout=timeout) as session:
            method = "POST" if body is not None else "GET"
            async with session.request(method, url, data=body, headers=headers) as reply:
                await reply.read()
                if not 200 <= reply.status < 300:
                    return False
    return True


async def start_upstream(place: Path, delay_ms: float = 0.0) -> tuple[Service, int]:
    """Start `python -m bench.upstream` on a free port; the service and its port.

    Its streams are sent in one write unless a request asks for a pace (`[pace G ms]`).
    """
    argv = [sys.executable, "-m", "bench.upstream", "--port", "0", "--delay-ms", str(delay_ms)]
    return await _start_announcing(
        f"fake upstream ({delay_ms:g} ms)", argv, place / f"upstream-{delay_ms:g}ms.log"
    )


async def start_ceiling(
    place: Path, kind: str, workers: int, upstream_port: int
) -> tuple[Service, int]:
    """Start a ceiling reference (`python -m bench.ceiling KIND`); the service and its port."""
    argv = [sys.executable, "-m", "bench.ceiling", kind, "--workers", str(workers)]
    argv += ["--upstream-port", str(upstream_port)]
    return await _start_announcing(kind, argv, place / f"{kind}.log")


async def _start_announcing(name: str, argv: list[str], log: Path) -> tuple[Service, int]:
    """Start a bench module that prints `{"port": P}` as its first line once it listens."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    service = await spawn(name, argv, env, log, cwd=REPO)
    port = 0

    async def listening() -> bool:
        nonlocal port
        first = (await asyncio.to_thread(log.read_text)).splitlines()[:1]
        if first and first[0].startswith("{"):
            port = int(json.loads(first[0])["port"])
        return port > 0

    try:
        await wait_ready(service, listening, limit=60)
    except BaseException:
        await service.stop()
        raise
    return service, port


async def upstream_stats(port: int) -> dict[str, int]:
    """The fake's counters: completions served (unary, streams) and connections."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://127.0.0.1:{port}/stats") as reply,
    ):
        stats: dict[str, int] = await reply.json()
        return stats


@dataclass(frozen=True, slots=True)
class GatewayPorts:
    """Where a started gateway listens."""

    grpc: int
    http: int
    metrics: int


async def start_gateway(
    place: Path,
    upstream_port: int,
    workers: int | None,
    tag: str = "gateway",
    upstream_client: str = DEFAULT_CLIENT,
) -> tuple[Service, GatewayPorts]:
    """Start `ai-gateway serve` in front of the fake, with access logs on, and wait for it."""
    ports = GatewayPorts(free_port(), free_port(), free_port())
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
        "GRPC_PORT": str(ports.grpc),
        "HTTP_PORT": str(ports.http),
        "METRICS_PORT": str(ports.metrics),
        "BIND_HOST": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{place}/{tag}.db",
        "USAGE_SPILL_PATH": str(place / f"{tag}.spill.jsonl"),
        "LOG_LEVEL": "INFO",
        "INTERNAL_AUTH_TOKEN": GATEWAY_TOKEN,
        "UPSTREAM_HTTP_CLIENT": upstream_client,
    }
    if workers is not None:
        env["WORKERS"] = str(workers)
    executable = Path(sys.executable).parent / "ai-gateway"
    service = await spawn(tag, [str(executable), "serve"], env, place / f"{tag}.log", cwd=place)
    ready = f"http://127.0.0.1:{ports.http}/readyz"
    try:
        # Several workers share the port: ask on fresh connections until every answer is ready.
        await wait_ready(service, lambda: http_ok(ready, times=8))
    except BaseException:
        await service.stop()
        raise
    return service, ports
