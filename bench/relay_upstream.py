"""The ceiling relays' one upstream call: Chat Completions over aiohttp's client, nothing more.

Shared by `relay_http` and `relay_grpc` (ceiling references for the bench, not gateway code):
the request carries the model and messages (and, streamed, asks for the usage chunk); the
answer is read as JSON, or as Server-Sent Events line by line with aiohttp's own reader.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.services import UPSTREAM_KEY

PROVIDER = "openai"
_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {UPSTREAM_KEY}"}


def upstream_session() -> aiohttp.ClientSession:
    """A client session with no cap on pooled connections (the gateway does not cap them)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


@dataclass(slots=True)
class Piece:
    """One message of a relayed stream: a text delta, or (last) the finish reason and usage."""

    id: str
    model: str
    delta: str = ""
    finish_reason: str = ""
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class UpstreamCall:
    """Calls `url` (a Chat Completions endpoint) on `session`."""

    session: aiohttp.ClientSession
    url: str

    async def complete(self, model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The upstream's `chat.completion` object."""
        body = orjson.dumps({"model": model, "messages": messages})
        async with self.session.post(self.url, data=body, headers=_HEADERS) as reply:
            reply.raise_for_status()
            answer: dict[str, Any] = orjson.loads(await reply.read())
            return answer

    async def stream(self, model: str, messages: list[dict[str, str]]) -> AsyncIterator[Piece]:
        """A piece per content chunk, then one with the finish reason and usage at `[DONE]`."""
        body = orjson.dumps(
            {
                "model": model,
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        last = Piece("", "")
        async with self.session.post(self.url, data=body, headers=_HEADERS) as reply:
            reply.raise_for_status()
            async for line in reply.content:
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    yield last
                    return
                chunk = orjson.loads(data)
                last.id, last.model = chunk["id"], chunk["model"]
                if chunk.get("usage"):
                    last.usage = chunk["usage"]
                for choice in chunk["choices"]:
                    if choice.get("finish_reason"):
                        last.finish_reason = choice["finish_reason"]
                    text = choice["delta"].get("content")
                    if text:
                        yield Piece(last.id, last.model, delta=text)
        raise aiohttp.ClientPayloadError("the upstream stream ended without [DONE]")
