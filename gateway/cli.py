"""The command line: `ai-gateway serve` (also `python -m gateway`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Coroutine
from typing import Any

from gateway.app import serve
from gateway.assembly import StartupError
from gateway.config import ConfigError, Settings, load_settings
from gateway.logs import configure_logging
from gateway.store.engine import database_url
from gateway.store.migrate import upgrade
from gateway.workers import WorkerLink, supervise, tag_worker_logs
from metrics.tracing import configure_tracing


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run it; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="ai-gateway", description="An LLM gateway.")
    commands = parser.add_subparsers(dest="command")
    serve_command = commands.add_parser("serve", help="run the gRPC and JSON servers (the default)")
    # Set by the supervisor for the worker processes it starts; not for people.
    serve_command.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    serve_command.add_argument("--supervisor-fd", type=int, help=argparse.SUPPRESS)
    commands.add_parser("migrate", help="apply the usage store's schema migrations")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"ai-gateway: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return _migrate(settings)
    worker = None
    if getattr(args, "supervisor_fd", None) is not None:
        worker = WorkerLink.from_fd(args.worker_index or 0, args.supervisor_fd)
    return _serve(settings, worker)


def _migrate(settings: Settings) -> int:
    url = database_url(settings.database_url)
    revision = asyncio.run(upgrade(url))
    print(f"ai-gateway: the usage store is at revision {revision}")
    return 0


def _serve(settings: Settings, worker: WorkerLink | None) -> int:
    configure_logging(settings.log_level)
    if worker is not None:
        tag_worker_logs(worker.index)
    _raise_open_files_limit()
    main: Coroutine[Any, Any, None]
    if worker is None and settings.workers > 1:
        main = supervise(settings)  # serves no calls: no tracing here
    else:
        if settings.tracing_enabled and settings.tracing_export:
            # Without an exporter the API's no-op tracer stays: spans nobody reads cost ~20% of
            # throughput; a caller's traceparent still flows upstream and into the logs.
            configure_tracing(export=True)
        main = serve(settings, worker)
    try:
        _run(main)
    except StartupError as exc:
        print(f"ai-gateway: cannot start: {exc}", file=sys.stderr)
        return 1
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
