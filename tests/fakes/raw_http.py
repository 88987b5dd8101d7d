"""A raw HTTP/1.1 server that scripts every byte of its answers, and a forwarding HTTP proxy.

`FakeUpstream` answers each request with the next scripted `Reply` (or `ok()`), records what it
read off the wire, and counts connections from its side, so a test sees what a client really
did: how many connections it opened, which ones it reused, what it sent. `LoopbackProxy` is an
HTTP proxy (CONNECT tunnels and absolute-form requests) that records what went through it.
Both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from multidict import CIMultiDict

#: What a scripted server does with one request: write to the writer (and maybe close it).
Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

HEAD_200 = b"HTTP/1.1 200 OK\r\n"


@dataclass(frozen=True)
class SeenRequest:
    """A request as the server read it off the wire."""

    method: str
    target: str
    version: str
    headers: CIMultiDict[str]
    #: The body; empty when the server keeps only digests (`keep_bodies` off).
    body: bytes
    peer_port: int
    #: SHA-256 of the body, hex.
    body_sha256: str


def raw(*writes: bytes, pause: float = 0.0, close: bool = False) -> Reply:
    """Write `writes` one by one (`pause` seconds apart), then close or keep the connection."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for index, data in enumerate(writes):
            if index and pause:
                await asyncio.sleep(pause)
            if data:
                writer.write(data)
                await writer.drain()
        if close:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    return reply


def ok(body: bytes = b'{"ok":true}', *, extra: bytes = b"") -> Reply:
    """A 200 framed by Content-Length; the connection stays open."""
    return raw(HEAD_200 + extra + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class FakeUpstream:
    """An HTTP/1.1 server on 127.0.0.1:0 answering each request with the next scripted reply.

    Unscripted requests get `ok()`. A connection stays open after a reply unless the reply
    closed it, so a reply that writes only part of an answer leaves the server waiting.
    """

    def __init__(self) -> None:
        self.requests: list[SeenRequest] = []
        self.connections_accepted = 0
        self.connections_ended = 0
        self._replies: list[Reply] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()  # a request arrived or a connection ended
        self._scheme = "http"
        self.port = 0
        #: Seconds to pause after each 64 KiB of a request body (a slow reader); 0: none.
        self.read_pause = 0.0
        #: Keep request bodies (else only their digests: no copy of a large body here).
        self.keep_bodies = True

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        self._scheme = "https" if ssl_context is not None else "http"

    def url(self, path: str = "/v1/chat/completions") -> str:
        """The URL of `path` on this server."""
        return f"{self._scheme}://127.0.0.1:{self.port}{path}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests, in order, with `replies`."""
        self._replies.extend(replies)

    @property
    def peer_ports(self) -> set[int]:
        """The client ports the requests came from (one per TCP connection)."""
        return {request.peer_port for request in self.requests}

    async def until_requests(self, count: int) -> None:
        """Wait (up to 2 s) until `count` requests arrived."""
        async with asyncio.timeout(2.0), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)

    async def until_connections_ended(self, count: int) -> None:
        """Wait (up to 2 s) until `count` connections ended, whoever closed them."""
        async with asyncio.timeout(2.0), self._changed:
            await self._changed.wait_for(lambda: self.connections_ended >= count)

    async def close_connections(self) -> None:
        """Close every open connection from the server's side."""
        for writer in self._writers:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def stop(self) -> None:
        """Stop listening and end every connection."""
        await _shut(self._server, self._tasks, self._writers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        self.connections_accepted += 1
        peer_port: int = writer.get_extra_info("peername")[1]
        try:
            while not writer.is_closing():
                request = await _read_request(
                    reader, peer_port, self.read_pause, keep=self.keep_bodies
                )
                if request is None:
                    break
                self.requests.append(request)
                await self._notify()
                reply = self._replies.pop(0) if self._replies else ok()
                await reply(reader, writer)
        except ConnectionError:
            pass
        finally:
            self.connections_ended += 1
            writer.close()
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


async def _shut(
    server: asyncio.Server | None,
    tasks: set[asyncio.Task[None]],
    writers: Sequence[asyncio.StreamWriter] = (),
) -> None:
    """Stop `server` listening, close `writers`, and end the `tasks` serving its connections."""
    if server is not None:
        server.close()
    for writer in writers:
        writer.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if server is not None:
        await server.wait_closed()


async def _read_request(
    reader: asyncio.StreamReader, peer_port: int, pause: float, *, keep: bool
) -> SeenRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None  # the client went away
    request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    method, target, version = request_line.split(" ")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.add(name, value.strip())
    left = int(headers.get("content-length", "0"))
    pieces = []
    digest = hashlib.sha256()
    while left:
        piece = await reader.readexactly(min(left, 65536))
        digest.update(piece)
        if keep:
            pieces.append(piece)
        left -= len(piece)
        if pause:
            await asyncio.sleep(pause)
    body = b"".join(pieces)
    return SeenRequest(method, target, version, headers, body, peer_port, digest.hexdigest())


def unanswered(*, reset: bool = False) -> Reply:
    """Close the connection without answering (a FIN, or a reset with `reset`): what a client
    sees when the server closed an idle kept-alive connection just as the request went out."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    return reply


@dataclass
class LoopbackProxy:
    """An HTTP proxy on 127.0.0.1:0: CONNECT tunnels (for https://) and absolute-form requests
    (for http://), each forwarded to its target; `seen` holds each request line it was sent and
    `authorizations` the Proxy-Authorization headers."""

    seen: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    #: Answer every request with this status instead of forwarding it (0: forward).
    refuse_with: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        """The proxy's URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and end every tunnel."""
        await _shut(self._server, self._tasks)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head[:-4].decode("latin-1").split("\r\n")
            self.seen.append(request_line)
            kept = []
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "proxy-authorization":
                    self.authorizations.append(value.strip())
                else:
                    kept.append(line)
            method, target, version = request_line.split(" ")
            if self.refuse_with:
                writer.write(b"HTTP/1.1 %d Refused\r\nContent-Length: 0\r\n\r\n" % self.refuse_with)
                await writer.drain()
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                parts = urlsplit(target)
                assert parts.hostname is not None
                assert parts.port is not None
                up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                forwarded = "\r\n".join([f"{method} {path} {version}", *kept]) + "\r\n\r\n"
                up_writer.write(forwarded.encode("latin-1"))
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
