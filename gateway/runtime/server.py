"""The running server: one core behind the gRPC server, the JSON app and the metrics endpoint.

`Server.start()` opens every resource once (the pooled upstream HTTP client, the providers,
three listeners) and reports ready; `Server.stop()` drains: health turns NOT_SERVING, new calls
are refused, calls in flight get `shutdown_grace_seconds` to finish, then everything closes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal

import grpc
from aiohttp import web
from grpc_health.v1.health import aio as health_aio
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from cache.layer import ResponseCache
from gateway.config.settings import Settings
from gateway.pipeline.drain import CUT_SECONDS
from gateway.pipeline.service import CompletionService
from gateway.runtime.assembly import (
    build_authenticator,
    build_cache,
    build_core,
    build_quotas,
    build_redis,
    build_upstream_client,
    open_store,
    upstream_ssl_context,
)
from gateway.runtime.startup import PortUnavailableError, check_redis, port_error, probe_port
from gateway.runtime.workers import WorkerLink
from gateway.store.writer import UsageWriter
from gateway.tenancy.admin import AdminCore
from gateway.tenancy.quotas import Quotas
from gateway.transports.grpc_server import create_server, set_serving
from gateway.transports.http_app import create_app
from gateway.transports.http_guard import HttpRunner
from gateway.transports.openai_http import OpenAIOptions, model_entries
from metrics import USAGE_PENDING
from metrics.endpoint import metrics_app
from providers.http.client import UpstreamClient
from providers.registry import ProviderRegistry

log = logging.getLogger("gateway")

#: How often a worker publishes its pending usage rows (callback gauges do not cross processes).
PENDING_REPORT_SECONDS = 1.0


class Server:
    """The gateway's process: its resources and listeners, started and stopped as one; the
    bound ports are known after `start()`.

    As one of several workers (`worker` given) it binds the shared ports with SO_REUSEPORT,
    leaves `/metrics` to the supervisor and tells it when it is ready.
    """

    def __init__(self, settings: Settings, worker: WorkerLink | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self.grpc_port = 0
        self.http_port = 0
        self.metrics_port = 0
        self._ready = False
        self._stopped = False
        self._cache: ResponseCache | None = None
        self._engine: AsyncEngine | None = None
        self._writer: UsageWriter | None = None
        self._quotas: Quotas | None = None
        self._redis: Redis | None = None
        self._session: UpstreamClient | None = None
        self._registry: ProviderRegistry | None = None
        self._core: CompletionService | None = None
        self._runners: list[web.AppRunner] = []
        self._grpc_server: grpc.aio.Server | None = None
        self._health: health_aio.HealthServicer | None = None
        self._pending_reporter: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Whether the gateway takes new calls (false while starting and draining)."""
        return self._ready

    async def start(self) -> None:
        """Open resources, bind the three ports, and turn health to SERVING."""
        await self.open()
        await self.mark_ready()

    async def open(self) -> None:
        """Open resources and bind the three ports; health says NOT_SERVING until `mark_ready`."""
        settings = self.settings
        # One TLS context (the trust store read once) for the providers and the image fetches.
        tls = upstream_ssl_context(settings.upstream.ca_bundle)
        self._session = build_upstream_client(settings.upstream, tls)
        self._registry = ProviderRegistry.from_settings(
            settings.providers,
            settings.aliases,
            self._session,
            key_cooldown=settings.key_cooldown_seconds,
        )
        self._engine, self._writer = await open_store(settings)
        authenticator = build_authenticator(settings, self._engine)
        self._redis = build_redis(settings)
        self._quotas = build_quotas(settings, self._redis)
        self._cache = build_cache(settings, self._redis)
        self._core = core = build_core(
            settings,
            self._registry,
            self._cache,
            authenticator=authenticator,
            quotas=self._quotas,
            usage=self._writer.record,
            redis=self._redis,
            ssl_context=tls,
        )
        admin = AdminCore(self._engine, authenticator)
        server, health = create_server(
            core,
            admin,
            max_message_bytes=settings.max_request_bytes,
            connections=settings.grpc,
            reuse_port=self.worker is not None,
            read_timeout=settings.body_read_timeout_seconds,
        )
        self._grpc_server, self._health = server, health
        await set_serving(health, False)
        try:
            self.grpc_port = server.add_insecure_port(
                _grpc_address(settings.bind_host, settings.grpc_port)
            )
        except RuntimeError:  # grpc says no more than "Failed to bind"
            raise PortUnavailableError(
                f"cannot bind GRPC_PORT {settings.grpc_port} on {settings.bind_host}: "
                "in use, or not an address of this machine"
            ) from None
        await server.start()
        shim = create_app(
            core,
            admin,
            max_request_bytes=settings.max_request_bytes,
            readiness=self,
            header_read_timeout=settings.header_read_timeout_seconds,
            body_read_timeout=settings.body_read_timeout_seconds,
            openai=OpenAIOptions(
                drop_unsupported_params=settings.drop_unsupported_params,
                models=model_entries(settings.providers, settings.aliases),
            ),
        )
        self.http_port = await self._listen(shim, settings.http_port, "HTTP_PORT")
        if self.worker is None:
            self.metrics_port = await self._listen(
                metrics_app(), settings.metrics_port, "METRICS_PORT"
            )

    async def mark_ready(self) -> None:
        """Start taking calls: readiness and gRPC health turn SERVING."""
        assert self._health is not None
        assert self._registry is not None
        assert self._core is not None
        self._core.open_for_calls()
        self._ready = True
        await set_serving(self._health, True)
        settings = self.settings
        if self.worker is not None:
            self._pending_reporter = asyncio.create_task(self._report_pending())
            log.info("worker listening", extra={"pid": os.getpid()})
            self.worker.announce_ready()
            return
        log.info(
            "gateway listening",
            extra={
                "grpc_port": self.grpc_port,
                "http_port": self.http_port,
                "metrics_port": self.metrics_port,
                "providers": [d.settings.name for d in self._registry.deployments],
                "auth": "token" if settings.auth_tokens else "off",
                "cache": self._cache.backend.name if self._cache is not None else "off",
            },
        )

    async def stop(self) -> None:
        """Drain and close: in-flight calls get the shutdown grace period to finish."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_seconds
        self._ready = False
        if self._core is not None:
            self._core.begin_drain()
        log.info("gateway draining", extra={"grace_seconds": grace})
        if self._health is not None:
            await set_serving(self._health, False)
        # The servers stop taking connections now and wait for their calls; the core cuts the
        # calls still open when the grace is over (each ends with UNAVAILABLE, SSE included),
        # so the servers' own deadline, later, finds nothing left to cut silently.
        stops = [self._core.drain(grace)] if self._core is not None else []
        if self._grpc_server is not None:
            stops.append(self._grpc_server.stop(grace + CUT_SECONDS))
        stops.extend(runner.cleanup() for runner in self._runners)
        await asyncio.gather(*stops)
        if self._pending_reporter is not None:
            self._pending_reporter.cancel()
        if self._core is not None:
            await self._core.aclose(wait=grace)
        if self._writer is not None:
            await self._writer.aclose(timeout=grace)  # flushes every usage row (or spills it)
        if self._quotas is not None:
            await self._quotas.aclose()
        if self._engine is not None:
            await self._engine.dispose()
        if self._registry is not None:
            await self._registry.aclose()
        if self._cache is not None:
            await self._cache.aclose()  # waits for the stores still under way
        if self._redis is not None:
            await self._redis.aclose()
        if self._session is not None:
            await self._session.close()
        log.info("gateway stopped")

    async def _report_pending(self) -> None:
        while self._writer is not None:
            USAGE_PENDING.set(self._writer.pending)
            await asyncio.sleep(PENDING_REPORT_SECONDS)

    async def _listen(self, app: web.Application, port: int, setting: str) -> int:
        runner = HttpRunner(
            app,
            handler_cancellation=True,  # a client that leaves cancels its handler (and upstream)
            shutdown_timeout=self.settings.shutdown_grace_seconds + CUT_SECONDS,
            access_log=None,
        )
        await runner.setup()
        self._runners.append(runner)
        host = self.settings.bind_host
        site = web.TCPSite(runner, host, port, reuse_port=self.worker is not None)
        try:
            await site.start()
        except OSError as exc:
            raise port_error(setting, host, port, exc) from None
        return int(runner.addresses[0][1])


async def serve(settings: Settings, worker: WorkerLink | None = None) -> None:
    """Run the gateway until SIGTERM or SIGINT (or, as a worker, its supervisor's exit)."""
    gateway = Server(settings, worker)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    orphaned = None
    if worker is not None:
        orphaned = asyncio.create_task(worker.supervisor_gone())
        orphaned.add_done_callback(lambda _: stop.set())
    try:
        if worker is None:  # a worker's supervisor has checked all this once
            check_ports_free(settings)
            if settings.redis_url:
                await check_redis(settings.redis_url)
        await gateway.open()
        settle_heap()
        await gateway.mark_ready()
        await stop.wait()
    finally:
        await gateway.stop()
        if orphaned is not None:
            orphaned.cancel()


#: Container allocations (net of frees) between young-generation collections; CPython's
#: default is 700. A served call allocates a few dozen, so 700 collected every ~20 calls, at
#: about 5% of a worker's CPU; 3,000 costs about 1%, each collection about a millisecond.
GC_YOUNG_THRESHOLD = 3000


def settle_heap() -> None:
    """Before taking calls: collect what start-up left, then freeze the rest (the modules,
    the providers, the apps) out of the collector's reach, so that a full collection walks
    only what calls allocate rather than the whole start-up heap (about 150,000 objects,
    ~45 ms a walk), and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def check_ports_free(settings: Settings) -> None:
    """Refuse, before binding any, ports that another process (another gateway?) serves."""
    for setting, port in (
        ("GRPC_PORT", settings.grpc_port),
        ("HTTP_PORT", settings.http_port),
        ("METRICS_PORT", settings.metrics_port),
    ):
        if port:
            probe_port(settings.bind_host, port, setting)


def _grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
