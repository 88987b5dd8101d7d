"""A TCP proxy on 127.0.0.1:0 in front of a real server, to take "the database" down on demand.

`cut()` aborts every open connection and refuses new ones (they are accepted and closed at once,
as a crashed server's would be); `stall()` keeps accepting but forwards nothing, like a network
partition; `restore()` forwards again.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["up", "cut", "stall"]
CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` while it is up."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._mode: Mode = "up"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        #: Connections accepted so far, whatever became of them.
        self.accepted = 0

    async def start(self) -> None:
        """Listen on a free loopback port (then `port` says which)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """Abort every connection and refuse new ones."""
        self._mode = "cut"
        self._abort_all()

    def stall(self) -> None:
        """Abort every connection; new ones are accepted but hear nothing."""
        self._mode = "stall"
        self._abort_all()

    def restore(self) -> None:
        """Forward new connections again."""
        self._mode = "up"

    async def aclose(self) -> None:
        """Stop listening and close everything."""
        if self._server is not None:
            self._server.close()
        self._abort_all()
        if self._server is not None:
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            with contextlib.suppress(OSError):
                await self._serve(reader, writer)
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "cut":
            return
        if self._mode == "stall":
            await reader.read()  # until the client gives up or we are closed
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
