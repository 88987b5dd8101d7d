"""Several worker processes behind the same ports (how many: `gateway.runtime.cpus.plan_workers`).

The supervisor (the process `ai-gateway serve` started) binds nothing that serves calls. It
claims the gRPC and HTTP ports (refusing ports another process serves, and resolving port 0
once, so every worker binds the same one), checks Redis, applies the store's migrations (or
checks them) once, then starts `WORKERS` copies of itself, each a complete gateway that binds
both ports with `SO_REUSEPORT`: the kernel spreads new connections over them.
It serves `/metrics` itself, summing what the workers write (prometheus_client multiprocess
mode), restarts a worker that dies, and on SIGTERM/SIGINT asks every worker to drain and waits.

Each worker talks to the supervisor over one socket pair: it writes `ready` once it takes
calls, and when the supervisor dies (even by SIGKILL) the worker reads end-of-file and drains.

What stays per worker, as it stays per replica: circuit breakers, the retry budget, admission
slots, the in-memory cache and, without Redis, rate limits and budgets (set `REDIS_URL` for
limits that hold across workers and replicas). Each worker writes its own usage spill file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from gateway.config.settings import Settings
from gateway.runtime.assembly import prepare_store
from gateway.runtime.cpus import WorkerPlan
from gateway.runtime.startup import (
    EXIT_DATABASE,
    EXIT_PORT,
    EXIT_REDIS,
    StartupError,
    address_family,
    check_redis,
    claim_port,
    port_error,
)
from gateway.store.spill import merge_orphan_spills, worker_spill_path
from metrics import forget_worker
from metrics.endpoint import metrics_app

log = logging.getLogger("gateway.workers")

READY = b"ready\n"
START_TIMEOUT_SECONDS = 60.0
RESTART_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
#: A worker that served this long before dying is restarted without waiting.
STABLE_SECONDS = 30.0
KILL_AFTER_GRACE_SECONDS = 5.0


def announce_plan(plan: WorkerPlan) -> None:
    """Log the plan: one line saying how many workers and why."""
    log.info(plan.line, extra={"workers": plan.count, "why": plan.why})


@dataclass
class WorkerLink:
    """A worker's end of its socket pair with the supervisor."""

    index: int
    sock: socket.socket

    @classmethod
    def from_fd(cls, index: int, fd: int) -> WorkerLink:
        """The link inherited as file descriptor `fd`."""
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        return cls(index, sock)

    def announce_ready(self) -> None:
        """Tell the supervisor this worker takes calls."""
        self.sock.send(READY)

    async def supervisor_gone(self) -> None:
        """Return when the supervisor has exited (its end of the pair closed)."""
        loop = asyncio.get_running_loop()
        while await loop.sock_recv(self.sock, 64):
            pass


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process
    link: socket.socket
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts, watches, restarts and stops the worker processes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.count = settings.workers
        self.grpc_port = 0
        self.http_port = 0
        self.metrics_port = 0
        #: The ports' reservations and locks, held while the supervisor runs.
        self._reserved: list[socket.socket] = []
        self._metrics_dir = ""
        self._migrated = False
        self._workers: dict[int, _Worker] = {}
        self._stopping = asyncio.Event()
        self._stopped = False
        self._metrics_runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Claim the ports, check Redis and the store, start every worker and wait for all."""
        settings = self.settings
        self.grpc_port = self._reserve(settings.grpc_port, "GRPC_PORT")
        self.http_port = self._reserve(settings.http_port, "HTTP_PORT")
        self._metrics_dir = tempfile.mkdtemp(prefix="ai-gateway-metrics-")
        self.metrics_port = await self._serve_metrics()
        if settings.redis_url:
            await check_redis(settings.redis_url)
        self._migrated = await prepare_store(settings)  # once here, not racing in every worker
        for name in merge_orphan_spills(Path(settings.usage_spill_path), self.count):
            log.info("usage spill file of a removed worker merged", extra={"file": name})
        if not settings.redis_url:
            log.warning(
                "without REDIS_URL, rate limits, budgets and the cache are per worker",
                extra={"workers": self.count},
            )
        starting = [self._spawn(index) for index in range(self.count)]
        workers = await asyncio.gather(*starting)
        results = await asyncio.gather(*(self._until_ready(w) for w in workers))
        if not all(results):
            await self.stop()
            failed = [w for w, ready in zip(workers, results, strict=True) if not ready]
            # A worker that met one of the start-up failures the supervisor checks (a race)
            # passes its exit status on; anything else is status 1.
            codes = {w.process.returncode for w in failed}
            known = sorted(code for code in (EXIT_PORT, EXIT_DATABASE, EXIT_REDIS) if code in codes)
            raise StartupError(
                "a worker process failed to start (its log says why)",
                exit_code=known[0] if known else None,
            )

    async def run(self) -> None:
        """Watch the workers until `request_stop`, restarting any that dies."""
        log.info(
            "gateway listening",
            extra={
                "grpc_port": self.grpc_port,
                "http_port": self.http_port,
                "metrics_port": self.metrics_port,
                "workers": self.count,
                "worker_pids": [w.process.pid for w in self._workers.values()],
            },
        )
        watchers = [asyncio.create_task(self._watch(index)) for index in range(self.count)]
        await self._stopping.wait()
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    def request_stop(self) -> None:
        """Begin draining (from a signal handler)."""
        self._stopping.set()

    async def stop(self) -> None:
        """Ask every worker to drain, wait for them (killing stragglers), and clean up."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        log.info("gateway draining", extra={"grace_seconds": self.settings.shutdown_grace_seconds})
        workers = list(self._workers.values())
        for worker in workers:
            _signal(worker.process, signal.SIGTERM)
        deadline = self.settings.shutdown_grace_seconds + KILL_AFTER_GRACE_SECONDS
        await asyncio.gather(*(self._reap(w, deadline) for w in workers))
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        for sock in self._reserved:
            sock.close()
        if self._metrics_dir:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        log.info("gateway stopped")

    def _reserve(self, port: int, setting: str) -> int:
        """Claim the port, then bind (not listen) a SO_REUSEPORT socket for the workers to join.

        The reservation fixes port 0 and holds the port between worker restarts.
        """
        host = self.settings.bind_host
        lock = claim_port(host, port, setting)
        if lock is not None:
            self._reserved.append(lock)
        sock = socket.socket(address_family(host), socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise port_error(setting, host, port, exc) from None
        self._reserved.append(sock)
        return int(sock.getsockname()[1])

    async def _serve_metrics(self) -> int:
        app = metrics_app(self._metrics_dir)
        self._metrics_runner = runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.bind_host, self.settings.metrics_port)
        try:
            await site.start()
        except OSError as exc:
            host, port = self.settings.bind_host, self.settings.metrics_port
            raise port_error("METRICS_PORT", host, port, exc) from None
        return int(runner.addresses[0][1])

    async def _spawn(self, index: int) -> _Worker:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        environment = {
            **os.environ,  # the workers read the same configuration, with these set for them:
            "WORKERS": "1",
            "GRPC_PORT": str(self.grpc_port),
            "HTTP_PORT": str(self.http_port),
            "USAGE_SPILL_PATH": str(worker_spill_path(Path(self.settings.usage_spill_path), index)),
            "PROMETHEUS_MULTIPROC_DIR": self._metrics_dir,
        }
        if self._migrated:
            environment["AUTO_MIGRATE"] = "false"
        command = [sys.executable, "-m", "gateway", "serve"]
        command += ["--worker-index", str(index), "--supervisor-fd", str(theirs.fileno())]
        try:
            process = await asyncio.create_subprocess_exec(
                *command, env=environment, pass_fds=(theirs.fileno(),)
            )
        finally:
            theirs.close()
        worker = _Worker(index, process, ours)
        self._workers[index] = worker
        log.debug("worker process started", extra={"worker": index, "pid": process.pid})
        return worker

    async def _until_ready(self, worker: _Worker) -> bool:
        """Whether the worker said `ready` (False when it exited or took too long)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                said = await loop.sock_recv(worker.link, len(READY))
        except TimeoutError:
            log.error("worker did not start in time", extra={"worker": worker.index})
            return False
        return said == READY

    async def _watch(self, index: int) -> None:
        failures = 0
        while True:
            worker = self._workers[index]
            code = await worker.process.wait()
            self._forget(worker)
            if self._stopping.is_set():
                return
            # A worker that dies again soon after starting is restarted ever more slowly.
            served = time.monotonic() - worker.started_at
            failures = 0 if served >= STABLE_SECONDS else failures + 1
            pause = _restart_pause(failures)
            log.error(
                "worker exited; restarting it",
                extra={
                    "worker": index,
                    "pid": worker.process.pid,
                    "exit_code": code,
                    "restart_in_seconds": pause,
                },
            )
            await asyncio.sleep(pause)
            restarted = await self._spawn(index)
            if await self._until_ready(restarted):
                log.info("worker restarted", extra={"worker": index, "pid": restarted.process.pid})
            else:
                _signal(restarted.process, signal.SIGKILL)

    async def _reap(self, worker: _Worker, deadline: float) -> None:
        try:
            async with asyncio.timeout(deadline):
                await worker.process.wait()
        except TimeoutError:
            log.error("worker did not drain in time; killing it", extra={"worker": worker.index})
            _signal(worker.process, signal.SIGKILL)
            await worker.process.wait()
        self._forget(worker)

    def _forget(self, worker: _Worker) -> None:
        worker.link.close()
        if self._metrics_dir and worker.process.pid:
            forget_worker(self._metrics_dir, worker.process.pid)


def _restart_pause(failures: int) -> float:
    if failures == 0:
        return 0.0
    return RESTART_BACKOFF_SECONDS[min(failures, len(RESTART_BACKOFF_SECONDS)) - 1]


class _WorkerTag(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def tag_worker_logs(index: int) -> None:
    """Put `"worker": index` on every log line this worker writes."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerTag(index))


def _signal(process: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)


async def supervise(settings: Settings) -> None:
    """Run the workers until SIGTERM or SIGINT, then drain them and return."""
    supervisor = Supervisor(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, supervisor.request_stop)
    try:
        await supervisor.start()
        await supervisor.run()
    finally:
        await supervisor.stop()
