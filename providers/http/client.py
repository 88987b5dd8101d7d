"""What a provider adapter needs from HTTP: the `UpstreamClient` protocol and its failures.

Every provider call is one POST of a JSON body to a vendor, answered with a JSON body or an
event stream, so the protocol has two calls:

- `fetch()`: one POST, returning once the whole answer (status, headers, body) is in.
- `post()`: one POST as an async context manager that yields once the headers are in; the body
  then arrives as pieces (`content.iter_any()`), lines (`async for line in content`) or whole
  (`read()`). Leaving the block before the body ended drops the connection (it is never handed
  to another call with unread bytes on it); cancelling the task aborts the request.

`time_limit` bounds the whole exchange, body included; None leaves it unbounded. A pooled
connection the server closed just before it was reused is retried once on a new connection
when nothing of the request can have been processed (see the implementation's docstring).

Failures are plain, whichever implementation: `OSError` subclasses for the network
(`ServerDisconnectedError` when the server went away before its answer ended), `TimeoutError`
when `time_limit` ran out, `MalformedReplyError` for bytes that are not an HTTP answer, and
`ValueError` for a URL or header that would break the request. Nothing else escapes, so
`providers.http.endpoint.UpstreamErrorBoundary` maps every failure at one place.

Implementations: `providers.http.aiohttp_client.AiohttpClient` (the default) and
`providers.http.httptools_client.HttptoolsClient` (`UPSTREAM_HTTP_CLIENT=httptools`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol

from multidict import CIMultiDictProxy

from providers.wire import MalformedReplyError

#: The largest whole body `read` accepts (and the longest line `content` yields).
MAX_BODY_BYTES: Final = 64 * 1024 * 1024


class ServerDisconnectedError(ConnectionError):
    """The server closed the connection before its answer ended."""


class ResponseBody(Protocol):
    """The body of one answer, as it arrives."""

    def iter_any(self) -> AsyncIterator[bytes]:
        """Each piece of the body as it arrives (de-chunked, decoded)."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Whole lines, each with its b"\\n" (a last line without one comes as it is)."""
        ...


class UpstreamResponse(Protocol):
    """An answer: `status` and `headers` are in; the body arrives through `content` or `read`."""

    @property
    def status(self) -> int:
        """The HTTP status code."""
        ...

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The answer's headers (case-insensitive, repeated names kept)."""
        ...

    @property
    def content(self) -> ResponseBody:
        """The body, as pieces or lines."""
        ...

    async def read(self) -> bytes:
        """The whole body (what is left of it)."""
        ...

    def close(self) -> None:
        """Drop the connection now, whatever is left of the answer."""
        ...


class UpstreamClient(Protocol):
    """Pooled HTTP/1.1 connections to provider servers, shared by every adapter (see above)."""

    async def fetch(
        self, url: str, body: bytes, headers: Mapping[str, str], *, time_limit: float | None
    ) -> UpstreamResponse:
        """POST `body` and wait for the whole answer (its body already read)."""
        ...

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, time_limit: float | None
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        """POST `body`; yield the answer once its headers are in (the body still to read)."""
        ...

    async def close(self) -> None:
        """Close every connection; later calls raise `RuntimeError`."""
        ...

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        ...


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse (`ValueError`) a header name or value that would break the request's framing.

    The message never repeats the value: a header value may be a credential.
    """
    for name, value in headers.items():
        if not name or any(c in name for c in ":\r\n\0 \t"):
            raise ValueError("a header name has a character that would break the HTTP request")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"header {name!r} has a character that would break the HTTP request")


async def iter_lines(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Whole lines of a body given as pieces split anywhere, each with its b"\\n"."""
    partial = b""
    async for piece in pieces:
        lines = piece.split(b"\n")
        lines[0] = partial + lines[0]
        partial = lines.pop()
        if len(partial) > MAX_BODY_BYTES:
            raise MalformedReplyError(f"body line longer than {MAX_BODY_BYTES} bytes")
        for line in lines:
            yield line + b"\n"
    if partial:
        yield partial
