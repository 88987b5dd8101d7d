"""A chat completion streamed as OpenAI's Server-Sent `chat.completion.chunk`s.

Each choice's call runs in a task of its own (a call is driven from its first step to its last
by one task) and hands its rendered chunks to the writer through a queue; the writer sends what
piled up in one write. The answer's headers wait for every choice's head (who answers, from
the cache or not), so a failure before that is an HTTP status; after it, a failure is sent as
`data: {"error": {...}}` (the SDKs raise on it) and the stream ends there, never silently. While
no chunk comes, `: keep-alive` comments keep proxies from dropping the connection. A stream that
ended ends with the usage chunk when asked for, then `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import orjson
from aiohttp import web

from gateway.errors import GatewayError, InternalError
from gateway.pipeline.call import CallContext
from gateway.pipeline.service import CompletionService
from gateway.pipeline.types import StreamHead, StreamItem
from gateway.transports.openai_answers import ChunkWriter
from gateway.transports.openai_errors import error_object
from gateway.transports.openai_requests import ChatCall
from gateway.transports.sse import SSE_HEADERS

log = logging.getLogger("gateway.http")

#: What a choice's task hands the writer: ("head", index), ("data", bytes), ("end", index) or
#: ("error", GatewayError).
_Event = tuple[str, object]


def gateway_headers(
    response: web.StreamResponse, answers: Sequence[Any], dropped: Sequence[str] = ()
) -> None:
    """Who answered (each choice's deployment), whether from the cache, and what was dropped;
    `answers` are `Answer`s, `EmbeddingAnswer`s or, for a stream, `StreamHead`s."""
    providers = dict.fromkeys(a.provider for a in answers)
    response.headers["x-gateway-provider"] = ",".join(providers)
    response.headers["x-gateway-cache"] = "hit" if all(a.cached for a in answers) else "miss"
    if dropped:
        response.headers["x-gateway-dropped-params"] = ",".join(dropped)


async def serve_stream(
    request: web.Request,
    core: CompletionService,
    call: ChatCall,
    ctx: CallContext,
    *,
    keepalive: float,
) -> web.StreamResponse:
    """Stream `call.n` choices; a failure before every choice started is raised (a status)."""
    writer = ChunkWriter(
        call.request.model, int(time.time()), include_usage=call.include_usage, choices=call.n
    )
    queue: asyncio.Queue[_Event] = asyncio.Queue()
    producers = [
        asyncio.create_task(_produce(index, core.stream_complete(call.request, ctx), writer, queue))
        for index in range(call.n)
    ]
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        held, ended = await _until_started(queue, call.n)
        heads = [head for head in writer.heads if head is not None]
        gateway_headers(response, heads, call.dropped)
        await response.prepare(request)
        await response.write(b"".join(held))
        await _relay(response, queue, call.n - ended, writer, keepalive)
        return response
    except ConnectionResetError:
        log.info("client went away during a stream")
        return response
    finally:
        for task in producers:
            task.cancel()
        await asyncio.gather(*producers, return_exceptions=True)


async def _produce(
    index: int,
    items: AsyncGenerator[StreamItem, None],
    writer: ChunkWriter,
    queue: asyncio.Queue[_Event],
) -> None:
    """Drive one choice's call in this task, from its first step to its last."""
    async with contextlib.aclosing(items):
        try:
            announced = False
            async for item in items:
                data = writer.render(index, item)
                if data:
                    queue.put_nowait(("data", data))
                elif isinstance(item, StreamHead) and not announced:
                    announced = True
                    queue.put_nowait(("head", index))
        except GatewayError as exc:
            queue.put_nowait(("error", exc))
            return
        except Exception:
            log.exception("unexpected error during a stream")
            queue.put_nowait(("error", InternalError("internal error")))
            return
    if writer.heads[index] is None:
        queue.put_nowait(("error", InternalError("the stream ended before it started")))
        return
    queue.put_nowait(("end", index))


async def _until_started(queue: asyncio.Queue[_Event], choices: int) -> tuple[list[bytes], int]:
    """Wait until every choice's call has its head; what came meanwhile is held back (the
    events, and how many choices already ended)."""
    started, ended, held = 0, 0, []
    while started < choices:
        kind, payload = await queue.get()
        if kind == "error":
            assert isinstance(payload, GatewayError)
            raise payload
        if kind == "head":
            started += 1
        elif kind == "data":
            assert isinstance(payload, bytes)
            held.append(payload)
        else:
            ended += 1
    return held, ended


async def _relay(
    response: web.StreamResponse,
    queue: asyncio.Queue[_Event],
    choices: int,
    writer: ChunkWriter,
    keepalive: float,
) -> None:
    """Send the choices' chunks until each has ended (what piled up meanwhile in one write)."""
    ended = 0
    while ended < choices:
        try:
            events = [await asyncio.wait_for(queue.get(), keepalive)]
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        while not queue.empty():
            events.append(queue.get_nowait())
        data = []
        for kind, payload in events:
            if kind == "data":
                assert isinstance(payload, bytes)
                data.append(payload)
            elif kind == "end":
                ended += 1
            elif kind == "error":
                assert isinstance(payload, GatewayError)
                error = b"data: " + orjson.dumps(error_object(payload)) + b"\n\n"
                await response.write_eof(b"".join(data) + error)
                return
        if data:
            await response.write(b"".join(data))
    await response.write_eof(writer.closing())
