"""A streamed completion as Server-Sent Events: one `data:` JSON object per message.

The core's stream items are read by a `Coalescer`: everything that came while the previous
write was under way leaves merged, as one message (unless the caller opted out: then one event
per item, the events that waited still leaving in one write), rendered as proto3 JSON. An idle
stream's deltas leave one by one, at once.

A stream ends with `data: [DONE]`, after its last message (finish reason, usage) or after an
`event: error` carrying the error body: a failure after the stream started, or the shutdown's
cut. A failure before the first message is raised, for the caller to answer with an HTTP status.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable

from aiohttp import web

from gateway.errors import GatewayError, InternalError
from gateway.pipeline.coalesce import Batch, Coalescer
from gateway.pipeline.types import StreamItem
from gateway.transports.coalesced import batch_message
from gateway.transports.json_codec import render_completion
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
    *,
    merge: bool = True,
) -> web.StreamResponse:
    """Send a stream's `items` as SSE; errors before the first message are raised (a status).

    `merge=False` sends one event per item (the caller's opt-out of coalescing).
    """
    # The coalescer's task drives the call from its first step to its last; leaving closes it.
    stream = Coalescer(items, merge=merge)
    try:
        data = sse_batches(await stream.take())
        if stream.finished and not data:
            raise stream.error or InternalError("the stream ended before it started")
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        while not stream.finished:
            await response.write(data)
            data = sse_batches(await stream.take())
    except ConnectionResetError:
        # The client left; closing the coalescer aborts the upstream call.
        log.info("client went away during a stream")
        return response
    finally:
        await stream.aclose()
    ending = SSE_DONE if stream.error is None else sse_error(error_body(stream.error)) + SSE_DONE
    await response.write_eof(data + ending)
    return response


def sse_batches(batches: list[Batch]) -> bytes:
    """Batches as SSE events, one each."""
    return b"".join([sse_data(batch_message(batch)) for batch in batches])


def sse_data(message: pb.StreamCompleteResponse) -> bytes:
    """One message as an SSE event."""
    # Deltas carry only what they say; the last message spells out every field.
    return b"data: " + render_completion(message, defaults=bool(message.finish_reason)) + b"\n\n"


def sse_error(body: bytes) -> bytes:
    """An error body as an `event: error`."""
    return b"event: error\ndata: " + body + b"\n\n"
