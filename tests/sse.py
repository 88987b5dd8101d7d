"""Reading Server-Sent Events from an aiohttp response, for tests."""

from __future__ import annotations

import aiohttp


async def read_sse(response: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    """All events of `response` as (event type, data) pairs, in order."""
    events: list[tuple[str, str]] = []
    kind, data = "message", list[str]()
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                events.append((kind, "\n".join(data)))
            kind, data = "message", list[str]()
        elif line.startswith("event:"):
            kind = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())
    return events
