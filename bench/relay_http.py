"""A ceiling reference, not a gateway: the least an aiohttp server can do to relay a completion.

`POST /v1/complete` and `POST /v1/complete:stream` take the gateway's JSON request, forward the
model and messages to the fake upstream with aiohttp's client, and answer in the gateway's JSON
and SSE shapes (one `data:` event per upstream chunk, then `data: [DONE]`). Nothing else: no
auth, validation, limits, routing, retries, cache, metrics, logs, usage or cost. The bench
measures it next to the gateway, on the same worker count, to show how far the gateway's own
work is from what the libraries alone cost. Run by `python -m bench.ceiling relay-http`.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.relay_upstream import PROVIDER, UpstreamCall, upstream_session

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def create_app(upstream_url: str) -> web.Application:
    """The relay's application, calling the Chat Completions endpoint at `upstream_url`."""
    app = web.Application()
    app[UPSTREAM] = upstream_url
    app.router.add_post("/v1/complete", _complete)
    app.router.add_post("/v1/complete:stream", _stream)

    async def session(app: web.Application) -> Any:
        async with upstream_session() as opened:
            app[SESSION] = opened
            yield

    app.cleanup_ctx.append(session)
    return app


async def _complete(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    call = UpstreamCall(request.app[SESSION], request.app[UPSTREAM])
    answer = await call.complete(body["model"], body["messages"])
    choice = answer["choices"][0]
    return web.Response(
        body=orjson.dumps(
            {
                "id": answer["id"],
                "model": answer["model"],
                "provider": PROVIDER,
                "content": choice["message"]["content"],
                "finish_reason": choice["finish_reason"],
                "usage": answer["usage"],
            }
        ),
        content_type="application/json",
    )


async def _stream(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    call = UpstreamCall(request.app[SESSION], request.app[UPSTREAM])
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    async for piece in call.stream(body["model"], body["messages"]):
        event: dict[str, Any] = {"id": piece.id, "model": piece.model, "provider": PROVIDER}
        if piece.finish_reason:
            event.update(finish_reason=piece.finish_reason, usage=piece.usage)
        else:
            event["delta"] = piece.delta
        await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
    await response.write_eof(b"data: [DONE]\n\n")
    return response
