"""A streamed completion as Server-Sent Events: one `data:` JSON object per message.

The core's stream items become `StreamCompleteResponse` messages (`proto_convert`), each
rendered as proto3 JSON.

A stream ends with `data: [DONE]`, after its last message (finish reason, usage) or after an
`event: error` carrying the error body: a failure after the stream started, or the shutdown's
cut. A failure before the first message is raised, for the caller to answer with an HTTP status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing

from aiohttp import web

from gateway.errors import GatewayError, InternalError, ServiceUnavailableError
from gateway.pipeline.drain import SHUTTING_DOWN
from gateway.pipeline.types import StreamItem
from gateway.transports.json_codec import render_completion
from gateway.transports.proto_convert import StreamMessages
from gateway.v1 import gateway_pb2 as pb

log = logging.getLogger("gateway.http")

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # keep reverse proxies from buffering the stream
}
SSE_DONE = b"data: [DONE]\n\n"

ErrorBody = Callable[[GatewayError], bytes]


async def serve_sse(
    request: web.Request,
    items: AsyncGenerator[StreamItem, None],
    error_body: ErrorBody,
) -> web.StreamResponse:
    """Send a stream's `items` as SSE; errors before the first message are raised (a status)."""
    async with aclosing(items):
        # The pump drives the call from its first step to its last (a call has one task).
        pump = Pump(items)
        try:
            data = await pump.take()
            if pump.finished and not data:
                raise pump.error or InternalError("the stream ended before it started")
            response = web.StreamResponse(headers=SSE_HEADERS)
            await response.prepare(request)
            while not pump.finished:
                await response.write(data)
                data = await pump.take()
        except ConnectionResetError:
            # The client left; leaving `aclosing` aborts the upstream call.
            log.info("client went away during a stream")
            return response
        finally:
            await pump.aclose()
        ending = SSE_DONE if pump.error is None else sse_error(error_body(pump.error)) + SSE_DONE
        await response.write_eof(data + ending)
        return response


def sse_data(message: pb.StreamCompleteResponse) -> bytes:
    """One message as an SSE event."""
    # Deltas carry only what they say; the last message spells out every field.
    return b"data: " + render_completion(message, defaults=bool(message.finish_reason)) + b"\n\n"


def sse_error(body: bytes) -> bytes:
    """An error body as an `event: error`."""
    return b"event: error\ndata: " + body + b"\n\n"


class Pump:
    """Reads a stream's messages in its own task; `take()` hands over what piled up.

    An upstream read often holds many events (a fast model, or a burst after a pause). Writing
    each as it is rendered costs a system call apiece; here everything rendered while the
    writer was busy or asleep leaves in one write, and nothing waits: the writer wakes as soon
    as the pump would block on the upstream. At most `limit` bytes wait (back-pressure).
    """

    def __init__(self, items: AsyncIterator[StreamItem], limit: int = 65536):
        self._items = items
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run())
        #: Set once the stream has ended (the rest is then one `take()` away).
        self.finished = False
        #: How the stream failed, once it has ended (None: it finished).
        self.error: GatewayError | None = None

    async def take(self) -> bytes:
        """The SSE events rendered since the last take; waits for at least one, or the end."""
        await self._ready.wait()
        self._ready.clear()
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        self._room.set()
        return data

    async def aclose(self) -> None:
        """Stop reading (if still reading) and wait for the task to end."""
        if not self._task.done():
            self._closing = True
            self._task.cancel()
        await asyncio.wait([self._task])

    async def _run(self) -> None:
        try:
            messages = StreamMessages()
            async for item in self._items:
                message = messages.message(item)
                if message is None:
                    continue
                data = sse_data(message)
                self._parts.append(data)
                self._size += len(data)
                self._ready.set()
                if self._size > self._limit:
                    self._room.clear()
                    await self._room.wait()
        except GatewayError as exc:  # sent to the writer, in order, after what came before it
            self.error = exc
        except Exception:
            log.exception("unexpected error during a stream")
            self.error = InternalError("internal error")
        except asyncio.CancelledError:
            if not self._closing:  # cut while waiting for the writer: still an explicit end
                self.error = ServiceUnavailableError(SHUTTING_DOWN)
            raise
        finally:
            self.finished = True
            self._ready.set()
