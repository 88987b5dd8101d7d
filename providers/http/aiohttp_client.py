"""`AiohttpClient`: the `UpstreamClient` protocol over aiohttp's `ClientSession`.

One session (one connection pool) serves every adapter. What it adds to aiohttp:

- aiohttp's exceptions become the protocol's (`_converted`, one function), so the endpoint's
  error boundary never sees a library type.
- `time_limit` is aiohttp's total timeout, never rounded up to a whole second.
- Proxies as `ProxyRoutes` say (read once at start-up, not on every request as `trust_env`
  would); TLS with the `ssl_context` given (the system's trust store, plus a custom CA bundle).
- A stale pooled connection is retried once (`_PoolConnector`): when the server closed a kept-
  alive connection just as it was reused — no byte of an answer arrived, the connection had
  served an earlier exchange, and it failed with a close or reset — the request goes again on a
  new connection. aiohttp retries only idempotent methods; a provider call is a POST, and in
  that state the server cannot have processed it. Never after an answer has begun.
- A large request body goes out in slices, each once the socket took the last (aiohttp hands
  a bytes body to the transport whole, to be buffered there).
- No cookies, no redirects, no `Accept-Encoding` (a vendor's answer, streams included, comes
  as sent; compressed ones are still decoded).
"""

from __future__ import annotations

import asyncio
import errno
import math
import ssl
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Final

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.payload import Payload
from aiohttp.tracing import Trace
from multidict import CIMultiDictProxy
from yarl import URL

from providers.http.client import (
    MAX_BODY_BYTES,
    ServerDisconnectedError,
    UpstreamResponse,
    iter_lines,
)
from providers.http.proxies import ProxyRoutes, ProxySettings
from providers.wire import MalformedReplyError

#: Answer heads longer than aiohttp's default (8 KiB a line) are still answers.
MAX_HEADER_LINE_BYTES: Final = 64 * 1024
#: A reset or broken pipe on a reused connection before any answer: the server had closed it.
_STALE_ERRNOS: Final = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})
_NO_TIME_LIMIT: Final = aiohttp.ClientTimeout(total=None)
_MAX_REMEMBERED_URLS: Final = 512
#: Request bodies up to this size are handed to aiohttp whole; larger ones go in slices.
_WRITE_SLICE: Final = 256 * 1024


class _Exchange:
    """What the pool says about one request's connection (read back by `_send`)."""

    __slots__ = ("fresh", "reused")

    def __init__(self) -> None:
        self.reused = False
        #: Only a new connection will do (the retry after a stale one).
        self.fresh = False


#: The exchange of the request being connected in this task (aiohttp hands the pool no more).
_EXCHANGE: ContextVar[_Exchange | None] = ContextVar("upstream_exchange", default=None)


class _PoolConnector(aiohttp.TCPConnector):
    """aiohttp's pool, which also tells whether a connection served before, and can refuse
    pooled ones for a request that needs a new connection."""

    def __init__(self, *, keepalive_timeout: float, ssl_context: ssl.SSLContext) -> None:
        super().__init__(
            limit=0,  # the gateway's admission bounds calls in flight; no second queue here
            keepalive_timeout=keepalive_timeout,
            ssl=ssl_context,
            timeout_ceil_threshold=math.inf,
        )
        self._served: weakref.WeakSet[ResponseHandler] = weakref.WeakSet()

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature, overridden)
    ) -> Connection:
        """A pooled or new connection for `req`, noting in the exchange which it is."""
        exchange = _EXCHANGE.get()
        while True:
            connection = await super().connect(req, traces, timeout)
            protocol = connection.protocol
            reused = protocol is not None and protocol in self._served
            if reused and exchange is not None and exchange.fresh:
                connection.close()  # likely closed by the server as well: not worth keeping
                continue
            if protocol is not None:
                self._served.add(protocol)
            if exchange is not None:
                exchange.reused = reused
            return connection


class AiohttpClient:
    """The `UpstreamClient` over one aiohttp `ClientSession` (see the module docstring).

    Make it inside a running event loop; `close()` it once.
    """

    def __init__(
        self,
        *,
        keepalive_timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        proxies: ProxySettings | None = None,
    ) -> None:
        connector = _PoolConnector(
            keepalive_timeout=keepalive_timeout,
            ssl_context=ssl_context or ssl.create_default_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=_NO_TIME_LIMIT,
            skip_auto_headers=("Accept-Encoding",),
            max_line_size=MAX_HEADER_LINE_BYTES,
            max_field_size=MAX_HEADER_LINE_BYTES,
        )
        self._proxies = ProxyRoutes(proxies or ProxySettings())
        self._targets: dict[str, URL] = {}

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._session.closed

    async def fetch(
        self, url: str, body: bytes, headers: Mapping[str, str], *, time_limit: float | None
    ) -> UpstreamResponse:
        """POST `body` and wait for the whole answer; its body is read (`await read()`)."""
        response = _Response(await self._send(url, body, headers, time_limit))
        await response.read()
        return response

    @asynccontextmanager
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, time_limit: float | None
    ) -> AsyncIterator[UpstreamResponse]:
        """POST `body`; yield the answer once its headers are in (the body still to read).

        Leaving the block once the whole answer has arrived (read or not) returns the connection
        to the pool; leaving it before drops the connection.
        """
        answer = await self._send(url, body, headers, time_limit)
        try:
            yield _Response(answer)
        finally:
            answer.release()  # to the pool if the answer ended, else the connection is closed

    async def close(self) -> None:
        """Close every connection; later calls raise `RuntimeError`."""
        await self._session.close()

    async def _send(
        self, url: str, body: bytes, headers: Mapping[str, str], time_limit: float | None
    ) -> aiohttp.ClientResponse:
        if self._session.closed:
            raise RuntimeError("the upstream client is closed")
        target = self._targets.get(url)
        if target is None:
            target = self._target(url)
        loop = asyncio.get_running_loop()
        deadline = None if time_limit is None else loop.time() + time_limit
        exchange = _Exchange()
        token = _EXCHANGE.set(exchange)
        try:
            try:
                return await self._post_once(target, body, headers, time_limit)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if not (exchange.reused and _nothing_answered(exc)):
                    raise _converted(exc) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _converted(exc) from exc
            exchange.fresh = True
            remaining = None if deadline is None else deadline - loop.time()
            try:
                return await self._post_once(target, body, headers, remaining)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _converted(exc) from exc
        finally:
            _EXCHANGE.reset(token)

    def _target(self, url: str) -> URL:
        try:
            target = URL(url)
        except ValueError:
            raise ValueError("not an http(s) URL") from None
        if len(self._targets) >= _MAX_REMEMBERED_URLS:
            self._targets.clear()
        self._targets[url] = target
        return target

    async def _post_once(
        self, target: URL, body: bytes, headers: Mapping[str, str], time_limit: float | None
    ) -> aiohttp.ClientResponse:
        proxy = self._proxies.for_url(target) if self._proxies else None
        if proxy is not None and proxy.headers and target.scheme == "http":
            headers = {**headers, **proxy.headers}  # the request itself goes to the proxy
        return await self._session.post(
            target,
            data=body if len(body) <= _WRITE_SLICE else _SlicedBody(body),
            headers=headers,
            timeout=_timeout(time_limit),
            allow_redirects=False,
            proxy=proxy.url if proxy is not None else None,
            proxy_headers=proxy.headers if proxy is not None else None,
        )


class _SlicedBody(Payload):
    """A large request body, written in slices: aiohttp's writer waits for the transport to
    drain after each slice that leaves more than its limit buffered (back-pressure)."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self._body = body
        self._size = len(body)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The body as text."""
        return self._body.decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        """Write the whole body."""
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        """Write the body, or its first `content_length` bytes."""
        view = memoryview(self._body)
        if content_length is not None:
            view = view[:content_length]
        for start in range(0, len(view), _WRITE_SLICE):
            await writer.write(view[start : start + _WRITE_SLICE])


def _timeout(seconds: float | None) -> aiohttp.ClientTimeout:
    if seconds is None:
        return _NO_TIME_LIMIT
    if seconds <= 0:
        raise TimeoutError("the upstream call ran out of time")
    return aiohttp.ClientTimeout(total=seconds, ceil_threshold=math.inf)


def _nothing_answered(exc: aiohttp.ClientError) -> bool:
    """Whether `exc` (a failure before the answer's head) came with no byte of an answer."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return isinstance(exc.message, str)  # its default text; else a partly parsed head
    if isinstance(exc, aiohttp.ClientConnectorError):
        return False  # never connected: not a pooled connection
    return isinstance(exc, aiohttp.ClientOSError) and exc.errno in _STALE_ERRNOS


class _Response:
    """An aiohttp answer seen through the protocol: its failures converted, reads bounded."""

    __slots__ = ("_answer", "_body", "content")

    def __init__(self, answer: aiohttp.ClientResponse) -> None:
        self._answer = answer
        self._body: bytes | None = None
        self.content = _Body(answer)

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self._answer.status

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The answer's headers."""
        return self._answer.headers

    async def read(self) -> bytes:
        """The whole body (what is left of it); `MalformedReplyError` past `MAX_BODY_BYTES`."""
        if self._body is None:
            answer = self._answer
            try:
                length = answer.content_length
                if length is not None and length > MAX_BODY_BYTES:
                    raise MalformedReplyError(f"answer body larger than {MAX_BODY_BYTES} bytes")
                if length is not None:
                    self._body = await answer.read()
                else:
                    self._body = await _read_bounded(answer.content)
            except (aiohttp.ClientError, TimeoutError) as exc:
                answer.close()
                raise _converted(exc) from exc
            except BaseException:
                answer.close()
                raise
        return self._body

    def close(self) -> None:
        """Drop the connection now."""
        self._answer.close()


async def _read_bounded(content: aiohttp.StreamReader) -> bytes:
    pieces = []
    size = 0
    while piece := await content.readany():
        size += len(piece)
        if size > MAX_BODY_BYTES:
            raise MalformedReplyError(f"answer body larger than {MAX_BODY_BYTES} bytes")
        pieces.append(piece)
    return b"".join(pieces)


class _Body:
    """The body of an aiohttp answer, as pieces or lines."""

    __slots__ = ("_answer",)

    def __init__(self, answer: aiohttp.ClientResponse) -> None:
        self._answer = answer

    async def iter_any(self) -> AsyncIterator[bytes]:
        """Each piece of the body as it arrives."""
        content = self._answer.content
        while True:
            try:
                piece = await content.readany()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _converted(exc) from exc
            if not piece:
                return
            yield piece

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Whole lines, each with its b"\\n" (a last line without one comes as it is)."""
        return iter_lines(self.iter_any())


def _converted(exc: aiohttp.ClientError | TimeoutError) -> Exception:
    """aiohttp's failure `exc` as the protocol's (`providers.http.client`): the one place."""
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts included
        return TimeoutError("the upstream call ran out of time")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ssl.SSLCertVerificationError("the server's TLS certificate was not trusted")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_error(exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ServerDisconnectedError("the server closed the connection mid-answer")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _payload_error(exc)
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return ConnectionRefusedError(f"the proxy refused the tunnel (status {exc.status})")
    if isinstance(exc, aiohttp.ClientResponseError):  # the answer's head did not parse
        return MalformedReplyError(f"not a valid HTTP answer ({exc.message})")
    if isinstance(exc, aiohttp.InvalidURL):
        return ValueError("not an http(s) URL")
    if isinstance(exc, aiohttp.ClientOSError):
        return _os_error(exc)
    return ConnectionError(f"the upstream call failed ({type(exc).__name__})")


def _os_error(error: OSError) -> OSError:
    """A plain `OSError` of `error`'s kind (ConnectionRefusedError...), free of aiohttp's types."""
    if error.errno is None:
        return ConnectionError(str(error))
    return OSError(error.errno, error.strerror)


def _payload_error(exc: aiohttp.ClientPayloadError) -> Exception:
    """A body cut short is a disconnect; a body that does not decode, a malformed reply."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.http_exceptions.ContentEncodingError):
        return MalformedReplyError("answer body does not decode")
    if isinstance(cause, aiohttp.http_exceptions.TransferEncodingError) and (
        "Not enough data" not in str(cause)
    ):
        return MalformedReplyError("answer body framing is broken")
    return ServerDisconnectedError("the server closed the connection mid-answer")
