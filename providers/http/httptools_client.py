"""`HttptoolsClient`: a lean pooled HTTP/1.1 `UpstreamClient` on httptools' parser (opt-in).

`UPSTREAM_HTTP_CLIENT=httptools` picks it instead of `AiohttpClient`. It does only what a
provider call needs, without aiohttp's generic per-request machinery (a writer task, tracing
hooks, cookie and redirect handling, timeouts built per call), so it costs a fraction of the CPU
per call; bench/README.md says how the two are compared and when this one stays.

- `fetch()`: one POST, awaiting the whole answer (status, headers, body) in a single wait.
- `post()`: one POST as an async context manager that yields once the headers are in; the body
  then arrives as pieces (`content.iter_any()`), lines (`async for line in content`) or whole.
- Connections are pooled per (scheme, host, port), reused last-in first-out, and dropped when
  idle for `keepalive_timeout`, when the server closes them or says `Connection: close`, when a
  body was not read to its end, and on any error, timeout or cancellation.
- `time_limit` bounds the whole exchange, body included (like aiohttp's total timeout): one
  timer per call that fails the waiting reader with `TimeoutError` and drops the connection.
- Bodies framed by Content-Length, chunked, or by the server closing; `gzip` and `deflate`
  answers are decoded (we do not ask for them). 1xx interim answers are skipped.
- A large request body is written in slices, each after the socket took the last (the
  transport's back-pressure), never copied whole into the request.
- A pooled connection the server closed as it was reused (no byte of an answer on it, the
  connection served an earlier exchange) is retried once on a new connection.
- Proxies as `ProxyRoutes` say: http:// targets through the proxy in absolute form, https://
  targets through a CONNECT tunnel (TLS end to end). TLS with the `ssl_context` given.

Failures are plain: `OSError` subclasses for the network (`ServerDisconnectedError` when the
server goes away before the answer ended), `TimeoutError`, `MalformedReplyError` for bytes that
are not HTTP, `ValueError` for a header that would break the request framing. No redirects, no
cookies: a provider call needs neither.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Final, cast
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from providers.http.client import MAX_BODY_BYTES, ServerDisconnectedError, iter_lines
from providers.http.proxies import Proxy, ProxyRoutes, ProxySettings
from providers.wire import MalformedReplyError

#: The most header bytes an answer may have.
MAX_HEADER_BYTES: Final = 64 * 1024
#: Unread stream bytes beyond which the client stops reading from the socket until they are taken.
_HIGH_WATER: Final = 256 * 1024
#: Request bodies up to this size go out in one write with the head; larger ones in slices.
_WRITE_SLICE: Final = 256 * 1024
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_MAX_URL_CACHE: Final = 512

PoolKey = tuple[str, str, int]


class _Target:
    """A parsed URL: where to connect (directly or through `proxy`) and the request's head."""

    __slots__ = ("authority", "head", "key", "proxy")

    def __init__(self, url: str, proxy: Proxy | None) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL (scheme {scheme!r})")
        host = parts.hostname
        port = parts.port or _DEFAULT_PORTS[scheme]
        self.key: PoolKey = (scheme, host, port)
        authority = f"[{host}]" if ":" in host else host
        if port != _DEFAULT_PORTS[scheme]:
            authority = f"{authority}:{port}"
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        _check_token(path, "request target", spaces=False)
        self.authority = authority
        self.proxy = proxy
        proxy_lines = ""
        if proxy is not None and scheme == "http":  # absolute form, to the proxy itself
            path = f"http://{authority}{path}"
            proxy_lines = "".join(f"{name}: {value}\r\n" for name, value in proxy.headers.items())
        head = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n{proxy_lines}"
        self.head = head.encode("latin-1")


def _check_token(text: str, what: str, *, spaces: bool = True) -> None:
    # The message never repeats the text: a header value may be a credential.
    if "\r" in text or "\n" in text or "\0" in text or (not spaces and " " in text):
        raise ValueError(f"{what} has a character that would break the HTTP request")


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """`headers` as request header lines; `ValueError` for a name or value that breaks framing."""
    lines = []
    for name, value in headers.items():
        _check_token(name, "header name", spaces=False)
        if not name or ":" in name:
            raise ValueError(f"not a header name: {name!r}")
        _check_token(value, f"header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class HttptoolsResponse:
    """An answer: `status` and `headers` are in; the body arrives through `content` or `read`."""

    __slots__ = ("_body", "_connection", "content", "headers", "status")

    def __init__(
        self, connection: _Connection, status: int, headers: CIMultiDictProxy[str]
    ) -> None:
        self.status = status
        self.headers = headers
        self.content = _Body(self)
        # Ours until the exchange ends: then None, as the connection may serve another call.
        self._connection: _Connection | None = connection
        self._body: bytes | None = None

    async def read(self) -> bytes:
        """The whole body (what is left of it)."""
        if self._body is None:
            connection = self._connection
            self._body = b"" if connection is None else await connection.read_all()
        return self._body

    def close(self) -> None:
        """Drop the connection if this exchange still holds it (not once it went back whole)."""
        if self._connection is not None:
            self._connection.abandon()


class _Body:
    """The body of one answer, as pieces or lines."""

    __slots__ = ("_response",)

    def __init__(self, response: HttptoolsResponse) -> None:
        self._response = response

    async def iter_any(self) -> AsyncIterator[bytes]:
        """Each piece of the body as it arrives (de-chunked, decoded)."""
        response = self._response
        while True:
            connection = response._connection
            if connection is None:
                return
            piece = await connection.next_piece()
            if not piece:
                return
            yield piece

    async def read(self) -> bytes:
        """The whole body (what is left of it)."""
        return await self._response.read()

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Whole lines, each with its b"\\n" (a last line without one comes as it is)."""
        return iter_lines(self.iter_any())


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to a server: one exchange at a time."""

    def __init__(self, pool: HttptoolsClient, key: PoolKey) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        #: Exchanges this connection served to their end (a reused one has at least one).
        self.served = 0
        #: Whether any byte of an answer arrived in the current exchange.
        self.answered = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._loop = asyncio.get_running_loop()
        self._reset()

    def _reset(self) -> None:
        self._busy = False
        self._reusable = False
        self._header_list: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._status = 0
        self._head_waiter: asyncio.Future[HttptoolsResponse] | None = None
        self._response: HttptoolsResponse | None = None
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._body_waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._until_eof = False
        self._error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._decoder: zlib._Decompress | None = None
        self._paused = False
        self._rejected: MalformedReplyError | None = None

    def _reject(self, reason: str) -> MalformedReplyError:
        """The error a parser callback raises (httptools wraps it; `data_received` unwraps)."""
        self._rejected = MalformedReplyError(reason)
        return self._rejected

    # -- the exchange, as the client drives it ---------------------------------------------

    def send(self, data: bytes, deadline: float | None) -> asyncio.Future[HttptoolsResponse]:
        """Write a request (or its start); the future resolves with the response once its
        headers are in."""
        assert self.transport is not None
        self._busy = True
        self.answered = False
        waiter = self._head_waiter = self._loop.create_future()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._time_out)
        self.transport.write(data)
        return waiter

    async def send_body(self, body: bytes) -> None:
        """Write `body` in slices, each once the transport has room (the rest of a request whose
        head `send` wrote). Stops early if the connection ended: the head's waiter says why."""
        view = memoryview(body)
        for start in range(0, len(view), _WRITE_SLICE):
            if self.closed or self.transport is None:
                return
            self.transport.write(view[start : start + _WRITE_SLICE])
            if self._write_paused:
                waiter = self._drain_waiter = self._loop.create_future()
                try:
                    await waiter
                finally:
                    self._drain_waiter = None

    async def next_piece(self) -> bytes:
        """The next piece of body, or b"" at its end; raises what failed the exchange."""
        while True:
            if self._pieces:
                pieces, self._pieces = self._pieces, []
                self._buffered = 0
                if self._paused and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return pieces[0] if len(pieces) == 1 else b"".join(pieces)
            if self._error is not None:
                self.abandon()
                raise self._error
            if self._complete:
                self.finish()
                return b""
            waiter = self._body_waiter = self._loop.create_future()
            try:
                await waiter
            except BaseException:
                self.abandon()
                raise
            finally:
                self._body_waiter = None

    async def read_all(self) -> bytes:
        """The rest of the body, whole."""
        while not self._complete and self._error is None:
            if self._buffered > MAX_BODY_BYTES:
                self.abandon()
                raise MalformedReplyError(f"answer body larger than {MAX_BODY_BYTES} bytes")
            waiter = self._body_waiter = self._loop.create_future()
            if self._paused and self.transport is not None:
                self._paused = False
                self.transport.resume_reading()
            try:
                await waiter
            except BaseException:
                self.abandon()
                raise
            finally:
                self._body_waiter = None
        if self._error is not None:
            self.abandon()
            raise self._error
        body = b"".join(self._pieces)
        self._pieces = []
        self._buffered = 0
        self.finish()
        return body

    def finish(self) -> None:
        """The caller is done: back to the pool if the answer ended cleanly, else dropped."""
        if not self._busy:
            return
        if self._complete and self._error is None and not self.closed and self._reusable:
            if self._timer is not None:
                self._timer.cancel()
            if self._response is not None:
                self._response._connection = None
            self._reset()
            self.served += 1
            self._pool.release(self)
        else:
            self.abandon()

    def abandon(self) -> None:
        """Drop this connection (an unfinished or failed exchange); a waiting reader is told."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy and not self._complete and self._error is None:
            self._error = ServerDisconnectedError("the connection was dropped mid-answer")
        self._wake(self._error)
        self._busy = False
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                # A clean end (the answer was whole) closes politely; anything else resets.
                if self._complete:
                    self.transport.close()
                else:
                    self.transport.abort()

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self._complete:
            self._error = error
        self._wake(error)

    def _wake(self, error: BaseException | None = None) -> None:
        head = self._head_waiter
        if head is not None and not head.done():
            if error is not None:
                head.set_exception(error)
            elif self._response is not None:
                head.set_result(self._response)
        body = self._body_waiter
        if body is not None and not body.done():
            body.set_result(None)
        drain = self._drain_waiter
        if drain is not None and not drain.done() and (error is not None or self.closed):
            drain.set_result(None)

    def _time_out(self) -> None:
        self._timer = None
        self._fail(TimeoutError("the upstream call ran out of time"))
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport, but are one).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._complete:
            self._reusable = False  # bytes after the answer: not a connection to reuse
            return
        if not self._busy:
            # Bytes nobody asked for (or a close notice) on an idle connection: drop it.
            self.abandon()
            self._pool.forget(self)
            return
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(MalformedReplyError("the server switched protocols"))
            self.abandon()
        except httptools.HttpParserError as exc:
            # A callback's own error (too many header bytes...) comes wrapped: say that one.
            cause = self._rejected or MalformedReplyError(f"not a valid HTTP answer ({exc})")
            self._fail(cause)
            self.abandon()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._busy and not self._complete:
            if self._until_eof and self._response is not None:
                self._flush_decoder()
                self._complete = True
                self._reusable = False
                self._wake()
            else:
                error = ServerDisconnectedError("the server closed the connection mid-answer")
                if exc is not None:
                    error.__cause__ = exc
                self._fail(error)
        if self._timer is not None and not self._busy:
            self._timer.cancel()
        self._pool.forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEADER_BYTES:
            raise self._reject(f"answer headers larger than {MAX_HEADER_BYTES} bytes")
        if name:
            self._header_list.append((name.decode("latin-1"), value.decode("latin-1")))
        elif self._header_list:  # the rest of a value split across reads
            last_name, last_value = self._header_list[-1]
            self._header_list[-1] = (last_name, last_value + value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        if self._complete:
            raise self._reject("a second answer to one request")
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._header_list = []  # interim answer (103 Early Hints...): the real one follows
            return
        headers = CIMultiDictProxy(CIMultiDict(self._header_list))
        self._status = status
        self._reusable = self._parser.should_keep_alive()
        self._until_eof = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, by header
        elif encoding not in ("identity", ""):
            raise self._reject(f"answer in an encoding we did not ask for: {encoding!r}")
        self._response = HttptoolsResponse(self, status, headers)
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._status < 200:
            return
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                raise self._reject(f"answer body does not decode ({exc})") from None
            if not body:
                return
        self._pieces.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self._head_waiter is not None:
            head = self._head_waiter
            # A stream whose reader lags: stop reading until it catches up (never for fetch).
            if head.done() and self._body_waiter is None and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        if self._status < 200:
            self._status = 0
            return
        self._flush_decoder()
        self._complete = True
        self._wake()

    def _flush_decoder(self) -> None:
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._pieces.append(rest)
                self._buffered += len(rest)


class HttptoolsClient:
    """Pooled HTTP/1.1 connections to provider servers (see the module docstring)."""

    def __init__(
        self,
        *,
        keepalive_timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: ProxySettings | None = None,
        max_idle_per_host: int = 256,
    ) -> None:
        self._keepalive = keepalive_timeout
        self._ssl = ssl_context
        self._proxies = ProxyRoutes(proxies or ProxySettings())
        self._max_idle = max_idle_per_host
        self._idle: dict[PoolKey, list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._targets: dict[str, _Target] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    async def fetch(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str] | bytes,
        *,
        time_limit: float | None,
    ) -> HttptoolsResponse:
        """POST `body` and wait for the whole answer; its body is read (`await read()`)."""
        response = await self._request(url, body, headers, time_limit)
        await response.read()
        return response

    @asynccontextmanager
    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str] | bytes,
        *,
        time_limit: float | None,
    ) -> AsyncIterator[HttptoolsResponse]:
        """POST `body`; yield the answer once its headers are in (the body still to read).

        Leaving the block once the whole answer has arrived (read or not) returns the connection
        to the pool; leaving it before, or with the exchange failed, drops the connection.
        """
        response = await self._request(url, body, headers, time_limit)
        try:
            yield response
        finally:
            # Still attached: the body was not read through to its end (or the block raised).
            connection = response._connection
            if connection is not None:
                connection.finish()  # back to the pool only if the answer had ended cleanly

    async def close(self) -> None:
        """Close every connection; later calls raise `RuntimeError`."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for connection in idle:
                connection.abandon()
        self._idle.clear()
        for connection in list(self._busy):
            connection.abandon()
        self._busy.clear()

    # -- the pool --------------------------------------------------------------------------------

    async def _request(
        self, url: str, body: bytes, headers: Mapping[str, str] | bytes, time_limit: float | None
    ) -> HttptoolsResponse:
        if self._closed:
            raise RuntimeError("the upstream client is closed")
        target = self._targets.get(url)
        if target is None:
            target = self._target(url)
        block = headers if isinstance(headers, bytes) else encode_headers(headers)
        loop = asyncio.get_running_loop()
        deadline = None if time_limit is None else loop.time() + time_limit
        connection = self._idle_connection(target.key)
        if connection is None:
            connection = await self._connect(target, deadline)
        try:
            return await self._exchange(connection, target.head + block, body, deadline)
        except ServerDisconnectedError:
            # Closed by the server as it was reused, before any answer: it cannot have
            # processed the request, so it goes again, once, on a new connection.
            if connection.served == 0 or connection.answered:
                raise
        connection = await self._connect(target, deadline)
        return await self._exchange(connection, target.head + block, body, deadline)

    def _target(self, url: str) -> _Target:
        proxy = self._proxies.for_url(URL(url)) if self._proxies else None
        target = _Target(url, proxy)
        if len(self._targets) >= _MAX_URL_CACHE:
            self._targets.clear()
        self._targets[url] = target
        return target

    async def _exchange(
        self, connection: _Connection, head: bytes, body: bytes, deadline: float | None
    ) -> HttptoolsResponse:
        """Send one request on `connection`; its answer once the headers are in."""
        self._busy.add(connection)
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        try:
            if len(body) <= _WRITE_SLICE:
                return await connection.send(head + body, deadline)
            waiter = connection.send(head, deadline)
            await connection.send_body(body)
            return await waiter
        except BaseException:
            connection.abandon()
            raise

    def _idle_connection(self, key: PoolKey) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_usable = time.monotonic() - self._keepalive
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since > oldest_usable:
                return connection
            connection.abandon()
        return None

    async def _connect(self, target: _Target, deadline: float | None) -> _Connection:
        """A new connection for `target`: direct, to its http proxy, or tunnelled (https)."""
        scheme, host, port = target.key
        loop = asyncio.get_running_loop()
        proxy = target.proxy
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._ssl or _default_ssl_context()
        try:
            async with asyncio.timeout_at(deadline):
                if proxy is not None and context is not None:
                    _, connection = await loop.create_connection(
                        lambda: _Connection(self, target.key),
                        sock=await _tunnel(proxy, target.authority),
                        ssl=context,
                        server_hostname=host,
                    )
                else:
                    address = (host, port) if proxy is None else _proxy_address(proxy)
                    _, connection = await loop.create_connection(
                        lambda: _Connection(self, target.key),
                        *address,
                        ssl=context,
                        server_hostname=host if context is not None else None,
                    )
        except TimeoutError:
            raise TimeoutError(f"connecting to {host}:{port} ran out of time") from None
        if self._closed:
            connection.abandon()
            raise RuntimeError("the upstream client is closed")
        return connection

    def release(self, connection: _Connection) -> None:
        """Take back a connection whose exchange ended cleanly."""
        self._busy.discard(connection)
        idle = self._idle.setdefault(connection.key, [])
        if self._closed or len(idle) >= self._max_idle:
            connection.abandon()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self._keepalive, self._sweep)

    def forget(self, connection: _Connection) -> None:
        """A connection closed: out of the pool."""
        self._busy.discard(connection)
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    def _sweep(self) -> None:
        self._sweeper = None
        oldest_usable = time.monotonic() - self._keepalive
        for key, idle in list(self._idle.items()):
            fresh = [c for c in idle if not c.closed and c.idle_since > oldest_usable]
            for connection in idle:
                if connection not in fresh:
                    connection.abandon()
            if fresh:
                self._idle[key] = fresh
            else:
                del self._idle[key]
        if self._idle and not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(self._keepalive, self._sweep)


_SSL_CONTEXT: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    """The system's trust store, made once (building one reads every CA file)."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


def _proxy_address(proxy: Proxy) -> tuple[str, int]:
    return proxy.url.raw_host or "", proxy.url.port or 80


async def _tunnel(proxy: Proxy, authority: str) -> socket.socket:
    """A socket to `proxy` on which it agreed (CONNECT) to carry bytes to `authority`."""
    loop = asyncio.get_running_loop()
    host, port = _proxy_address(proxy)
    family, kind, protocol, _, address = (
        await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    )[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        auth = "".join(f"{name}: {value}\r\n" for name, value in proxy.headers.items())
        request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n"
        await loop.sock_sendall(sock, request.encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            piece = await loop.sock_recv(sock, 4096)
            if not piece:
                raise ServerDisconnectedError("the proxy closed the connection")
            answer += piece
            if len(answer) > MAX_HEADER_BYTES:
                raise MalformedReplyError("the proxy's answer to CONNECT is too long")
        status_line = answer.split(b"\r\n", 1)[0].split(b" ")
        if len(status_line) < 2 or not status_line[1].startswith(b"2"):
            status = status_line[1].decode("latin-1", "replace") if len(status_line) > 1 else "?"
            raise ConnectionRefusedError(f"the proxy refused the tunnel (status {status})")
        if not answer.endswith(b"\r\n\r\n"):
            raise MalformedReplyError("the proxy sent bytes after its answer to CONNECT")
    except BaseException:
        sock.close()
        raise
    return sock
