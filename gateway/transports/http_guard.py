"""The JSON port's connections: request heads and bodies bounded in time, errors in one line.

aiohttp waits for a request's head as long as the connection stays open (its keep-alive timer
is for idle connections, an hour by default) and reads a body as slowly as it is sent, so a
client announcing 1,000 body bytes and sending 10 held a connection, and a file descriptor,
indefinitely. Here:

- a request's head must be complete within `header_timeout` of its first byte (or of the
  connection's opening): each connection's protocol is wrapped (`HttpRunner`) to note when a
  head starts, the request's handler notes when it arrived, and a sweep a few times a second
  closes the connections whose head is overdue. An idle keep-alive connection is not a head
  in progress: it stays until aiohttp's keep-alive timeout.
- a body must be read within the body timeout (the shim reads it under `asyncio.timeout`; see
  `http_shim`), and is answered 408 and closed when it is not.

Each cut is counted (`gateway_request_reads_cut_total{transport="http"}`) and logged as one line
through a `LogBudget`. aiohttp's own errors about malformed requests go through the same kind of
budget, in one line without a traceback, and no response names the server's software versions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web, web_response

from gateway.transports.log_budget import LogBudget
from metrics import REQUEST_READS_CUT, labeled

log = logging.getLogger("gateway.http")

#: What every response says in `Server` (aiohttp's default names Python's and its own version).
SERVER_NAME = "ai-gateway"


class ConnectionGuard:
    """Tracks each connection of one listener and cuts those whose request head is overdue."""

    def __init__(self, header_timeout: float) -> None:
        self.header_timeout = header_timeout
        self.budget = LogBudget(log)
        self._connections: dict[object, _Connection] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """What a listener makes each connection's protocol with, instead of `server` alone."""
        return lambda: _Connection(server(), self)

    def request_started(self, request: web.BaseRequest) -> None:
        """The request's head has arrived: its connection is no longer waiting for one."""
        connection = self._connections.get(request.protocol)
        if connection is not None:
            connection.head_since = None
            connection.busy = True

    def request_ended(self, request: web.BaseRequest) -> None:
        """The request has been handled: the connection's next bytes start the next head."""
        connection = self._connections.get(request.protocol)
        if connection is not None:
            connection.busy = False

    def body_cut(self, request: web.BaseRequest, seconds: float) -> None:
        """Count and log a body that did not arrive within `seconds`."""
        labeled(REQUEST_READS_CUT, "http", "body").inc()
        self.budget.warning(
            "request cut: body not received in time",
            path=request.path,
            content_length=request.content_length,
            seconds=seconds,
            peer=request.remote,
        )

    async def aclose(self) -> None:
        """Stop sweeping (the listener is closing)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.wait([self._sweeper])
            self._sweeper = None

    def _opened(self, connection: _Connection) -> None:
        self._connections[connection.handler] = connection
        if self._sweeper is None:
            self._loop = asyncio.get_running_loop()
            self._sweeper = self._loop.create_task(self._sweep())

    def _closed(self, connection: _Connection) -> None:
        self._connections.pop(connection.handler, None)

    def now(self) -> float:
        """The event loop's clock."""
        assert self._loop is not None
        return self._loop.time()

    async def _sweep(self) -> None:
        period = min(0.25, self.header_timeout / 4)
        while True:
            await asyncio.sleep(period)
            overdue = self.now() - self.header_timeout
            for connection in list(self._connections.values()):
                since = connection.head_since
                if since is not None and since <= overdue:
                    self._cut(connection)

    def _cut(self, connection: _Connection) -> None:
        connection.head_since = None
        labeled(REQUEST_READS_CUT, "http", "head").inc()
        transport = connection.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        self.budget.warning(
            "request cut: head not received in time",
            seconds=self.header_timeout,
            peer=peer[0] if isinstance(peer, tuple) else None,
        )
        if transport is not None:
            transport.close()


class _Connection(asyncio.Protocol):
    """aiohttp's protocol for one connection, noting when a request head starts."""

    __slots__ = ("_guard", "busy", "handler", "head_since", "transport")

    def __init__(self, handler: Any, guard: ConnectionGuard) -> None:
        self.handler = handler
        self._guard = guard
        self.transport: asyncio.Transport | None = None
        #: When the head under way started (None: none under way, or it has arrived).
        self.head_since: float | None = None
        #: A request is being handled (its body's bytes are not a new head).
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP server's: a Transport
        self._guard._opened(self)
        self.head_since = self._guard.now()  # a new connection is there to send a request
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.head_since is None and not self.busy:
            self.head_since = self._guard.now()
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard._closed(self)
        self.transport = None
        self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()


GUARD_KEY = web.AppKey("connection_guard", ConnectionGuard)


class HttpRunner(web.AppRunner):
    """An `AppRunner` whose listeners hand each connection to the app's `ConnectionGuard`.

    aiohttp's protocol-level errors (malformed requests) are logged in one line each, through
    a budget, and aiohttp's default `Server` header is replaced by `SERVER_NAME`.
    """

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        hide_server_software()
        kwargs.setdefault("logger", _protocol_logger())
        super().__init__(app, **kwargs)
        self._guard = app.get(GUARD_KEY)

    @property
    def server(self) -> web.Server | None:
        """What sites create connections with: aiohttp's server, or the guard's wrapper."""
        inner = super().server
        if inner is None or self._guard is None:
            return inner
        return self._guard.protocol_factory(inner)  # type: ignore[return-value]  # a factory is all sites use

    async def cleanup(self) -> None:
        """Close the listener, then stop its guard's sweep."""
        await super().cleanup()
        if self._guard is not None:
            await self._guard.aclose()


def hide_server_software() -> None:
    """Send `Server: ai-gateway` by default, also on the pages aiohttp makes itself."""
    # aiohttp reads this module global when it fills in a response's default headers; its own
    # error pages (malformed requests) never reach our response hook.
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]


class _OneLine(logging.Filter):
    """Lets a budget of aiohttp's protocol errors through, each as one line without traceback."""

    def __init__(self) -> None:
        super().__init__()
        self._budget = LogBudget(log)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.error = f"{type(error).__name__}: {str(error)[:120]}"
            record.exc_info = None
            record.exc_text = None
        skipped = self._budget.take()
        if skipped is None:
            return False
        if skipped:
            record.skipped_before = skipped
        return True


def _protocol_logger() -> logging.Logger:
    protocol_log = logging.getLogger("gateway.http.protocol")
    if not protocol_log.filters:
        protocol_log.addFilter(_OneLine())
    return protocol_log
