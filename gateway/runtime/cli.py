"""The command line: `ai-gateway serve` (also `python -m gateway`), `check`, `migrate`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from gateway.config.settings import ConfigError, Settings, load_settings
from gateway.runtime.cpus import plan_workers
from gateway.runtime.logs import configure_logging
from gateway.runtime.server import serve
from gateway.runtime.startup import (
    EXIT_CONFIG,
    StartupError,
    describe_database,
    describe_redis,
    using_database,
)
from gateway.runtime.workers import WorkerLink, announce_plan, supervise, tag_worker_logs
from gateway.store.engine import database_url
from gateway.store.migrate import upgrade
from metrics.tracing import configure_tracing

EPILOG = """\
Settings are environment variables, plus an optional YAML file named by GATEWAY_CONFIG; every
one is in the settings table of the README: README.md#configuration.

exit status:
  0  serve: stopped by SIGTERM/SIGINT after draining; check, migrate: done
  1  another start-up failure (the line on stderr says which)
  2  invalid configuration (the line names the setting)
  3  a port is in use or cannot be bound (GRPC_PORT, HTTP_PORT, METRICS_PORT, BIND_HOST)
  4  the database cannot be reached or used (DATABASE_URL)
  5  Redis does not answer at start (REDIS_URL)
"""


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run it; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"ai-gateway: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check":
        print(f"ai-gateway: configuration OK: {describe_configuration(settings)}")
        return 0
    doing = "migrate" if args.command == "migrate" else "start"
    try:
        if args.command == "migrate":
            return _migrate(settings)
        worker = None
        if getattr(args, "supervisor_fd", None) is not None:
            worker = WorkerLink.from_fd(args.worker_index or 0, args.supervisor_fd)
        return _serve(settings, worker)
    except StartupError as exc:
        print(f"ai-gateway: cannot {doing}: {exc}", file=sys.stderr)
        return exc.exit_code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ai-gateway",
        description="An LLM gateway: one gRPC API (and the same calls as JSON) over many model\n"
        "providers. With no command: serve.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ai-gateway {_version()}")
    commands = parser.add_subparsers(dest="command", title="commands")
    serve_command = commands.add_parser("serve", help="run the gRPC and JSON servers (the default)")
    # Set by the supervisor for the worker processes it starts; not for people.
    serve_command.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    serve_command.add_argument("--supervisor-fd", type=int, help=argparse.SUPPRESS)
    commands.add_parser(
        "check",
        help="load the environment and the YAML file, print one line of what would run, exit "
        "(0, or 2 with the error); connects to nothing",
    )
    commands.add_parser("migrate", help="apply the usage store's schema migrations")
    return parser


def _version() -> str:
    try:
        return version("ai-gateway")
    except PackageNotFoundError:  # running from a tree that was never installed
        return "unknown"


def describe_configuration(settings: Settings) -> str:
    """One line: deployments and their models, aliases, groups, workers, backends, auth, ports."""
    deployments = ", ".join(
        f"{p.name} ({', '.join(p.models) or 'any model'})" for p in settings.providers
    )
    cache = settings.cache_backend
    if cache == "auto":
        cache = "redis" if settings.redis_url else "memory"
    limits = f"redis {describe_redis(settings.redis_url)}" if settings.redis_url else "memory"
    workers = plan_workers(settings).line.split(":", 1)[0]
    groups = list(settings.routing.groups)
    parts = [
        f"deployments {deployments or 'none'}",
        _count(len(settings.aliases), "alias", "aliases"),
        _count(len(settings.fallbacks), "fallback chain", "fallback chains"),
        _count(len(groups), "model group", "model groups")
        + (f" ({', '.join(groups)})" if groups else ""),
        _count(len(settings.routing.routes), "route", "routes"),
        workers,
        f"limits {limits}",
        f"cache {cache}",
        f"usage {describe_database(database_url(settings.database_url))}",
        f"auth {_auth(settings)}",
        f"ports gRPC {settings.grpc_port}, HTTP {settings.http_port}, "
        f"metrics {settings.metrics_port} on {settings.bind_host}",
    ]
    return "; ".join(parts)


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _auth(settings: Settings) -> str:
    ways = []
    if settings.auth_tokens:
        ways.append("tokens")
    if settings.jwt_secret or settings.jwt_jwks_url:
        ways.append("JWT")
    if settings.require_api_key:
        ways.append("API keys required")
    return ", ".join(ways) or "off"


def _migrate(settings: Settings) -> int:
    url = database_url(settings.database_url)
    with using_database(url):
        revision = asyncio.run(upgrade(url))
    print(f"ai-gateway: the usage store is at revision {revision}")
    return 0


def _serve(settings: Settings, worker: WorkerLink | None) -> int:
    configure_logging(settings.log_level, settings.log_level_third_party)
    if worker is not None:
        tag_worker_logs(worker.index)
    else:
        plan = plan_workers(settings)
        announce_plan(plan)
        settings = dataclasses.replace(settings, workers=plan.count)
    _raise_open_files_limit()
    main: Coroutine[Any, Any, None]
    if worker is None and settings.workers > 1:
        main = supervise(settings)  # serves no calls: no tracing here
    else:
        if settings.tracing_enabled and settings.tracing_export:
            # Without an exporter the API's no-op tracer stays (spans nobody reads still cost
            # time); a caller's traceparent still flows upstream and into the logs.
            configure_tracing(export=True)
        main = serve(settings, worker)
    _run(main)
    return 0


def _raise_open_files_limit() -> None:
    """Lift the soft open-files limit to the hard one: each call may hold two sockets."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (a faster event loop), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
