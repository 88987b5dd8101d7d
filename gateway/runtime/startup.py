"""What stops the gateway from starting: one line naming what failed and the setting to check.

Each class of failure has its own exit status, so an operator (or an orchestrator) can tell
them apart without reading logs:

    1  any other start-up failure (e.g. the database schema is behind: run `ai-gateway migrate`)
    2  invalid configuration (`ConfigError`, raised while loading the settings)
    3  a port cannot be had: another process serves it, or BIND_HOST/the port is not ours to use
    4  the database cannot be used: unreachable, unknown host, refused credentials, no such database
    5  Redis does not answer PING at start

The checks run once, in the process `ai-gateway serve` started (the supervisor, or the one
gateway process), before anything serves. Messages name hosts and ports, never a URL's password.

Ports: worker processes share their ports with SO_REUSEPORT, and so would a second gateway
started by the same user on the same ports, silently taking half of the connections. So before
binding, a port is probed with a socket that does not set SO_REUSEPORT, which the kernel refuses
while any other socket holds the port, and two supervisors starting at the same moment are
serialised by a lock per port: an abstract Unix socket, which exists exactly as long as the
process that bound it and, like the ports, per network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import sys
import time
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from gateway.runtime.redis import redis_client

log = logging.getLogger("gateway")

EXIT_STARTUP = 1
EXIT_CONFIG = 2
EXIT_PORT = 3
EXIT_DATABASE = 4
EXIT_REDIS = 5

#: How long the start-up PING may take before Redis counts as unreachable.
REDIS_PING_TIMEOUT_SECONDS = 2.0
MAX_REASON_CHARS = 200


class StartupError(Exception):
    """The gateway cannot start (one line says why); `exit_code` is the process's exit status."""

    exit_code = EXIT_STARTUP

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class PortUnavailableError(StartupError):
    """A port is served by another process, or cannot be bound here."""

    exit_code = EXIT_PORT


class DatabaseUnavailableError(StartupError):
    """The usage store's database cannot be reached or used."""

    exit_code = EXIT_DATABASE


class RedisUnavailableError(StartupError):
    """Redis does not answer at start."""

    exit_code = EXIT_REDIS


# Ports ----------------------------------------------------------------------------------------


def claim_port(host: str, port: int, setting: str) -> socket.socket | None:
    """Make sure no other process serves `port`; returns the lock to hold while we serve it.

    Port 0 needs no check (the kernel picks a port nobody uses) and returns None. Raises
    `PortUnavailableError` naming `setting`.
    """
    if port == 0:
        return None
    lock = _port_lock(port, setting)
    try:
        probe_port(host, port, setting)
    except BaseException:
        if lock is not None:
            lock.close()
        raise
    return lock


def probe_port(host: str, port: int, setting: str) -> None:
    """Bind `port` exclusively for a moment: refused while any other socket holds it."""
    with socket.socket(address_family(host), socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR lets connections of a previous run in TIME_WAIT pass; a listener or a
        # bound socket of another process still refuses the bind.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise port_error(setting, host, port, exc) from None


def port_error(setting: str, host: str, port: int, exc: OSError) -> PortUnavailableError:
    """The one-line error for a bind of `port` (configured by `setting`) that failed with `exc`."""
    if exc.errno == errno.EADDRINUSE:
        return PortUnavailableError(
            f"{setting} {port} on {host} is already in use by another process "
            f"(another gateway?); stop it or set {setting} to a free port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return PortUnavailableError(f"BIND_HOST {host} is not an address of this machine")
    reason = exc.strerror or type(exc).__name__
    return PortUnavailableError(f"cannot bind {setting} {port} on {host}: {reason}")


def _port_lock(port: int, setting: str) -> socket.socket | None:
    if not sys.platform.startswith("linux"):  # abstract Unix sockets are Linux's
        return None
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0ai-gateway/port/{port}")
    except OSError:
        lock.close()
        raise PortUnavailableError(
            f"{setting} {port} is already in use by another gateway on this host; "
            f"stop it or set {setting} to a free port"
        ) from None
    return lock


def address_family(host: str) -> socket.AddressFamily:
    """IPv6 for a host written with colons, else IPv4."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# The database ---------------------------------------------------------------------------------


@contextlib.contextmanager
def using_database(url: str) -> Iterator[None]:
    """Turn a failure to reach or use the database at `url` into `DatabaseUnavailableError`."""
    try:
        yield
    except (OSError, DBAPIError) as exc:
        raise DatabaseUnavailableError(
            f"cannot use the database ({describe_database(url)}): {_reason(exc, url)}; "
            "check DATABASE_URL"
        ) from None


def describe_database(url: str) -> str:
    """`postgresql db.internal:5432/usage` or `sqlite ai-gateway.db`: never the password."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return f"sqlite {parsed.database or ':memory:'}"
    return f"{backend} {parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


# Redis ------------------------------------------------------------------------------------------


async def check_redis(url: str) -> None:
    """PING Redis once; log that it answered, or raise `RedisUnavailableError`."""
    wait = REDIS_PING_TIMEOUT_SECONDS
    client = redis_client(url, timeout=wait, max_connections=1)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(wait * 2):  # connecting and answering are each bounded too
            await client.ping()
    except (RedisError, OSError) as exc:
        raise RedisUnavailableError(
            f"cannot reach Redis at {describe_redis(url)}: {_reason(exc, url)}; check REDIS_URL "
            "(limits and the cache are kept there; unset it to keep them in memory)"
        ) from None
    finally:
        await client.aclose()
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    log.info("Redis reachable", extra={"redis": describe_redis(url), "ping_ms": elapsed_ms})


def describe_redis(url: str) -> str:
    """`host:port/db` (or the socket path) of a Redis URL: never the password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    database = parts.path.strip("/") or "0"
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}/{database}"


# ------------------------------------------------------------------------------------------------


def _reason(exc: BaseException, url: str) -> str:
    """A short, password-free reason for `exc` (the first cause that says something clear)."""
    for cause in _chain(exc):
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, TimeoutError):
            return "no answer in time"
    if isinstance(exc, DBAPIError):
        text = str(exc.orig)
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    password = urlsplit(url).password
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, "***")
    return text[:MAX_REASON_CHARS]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
