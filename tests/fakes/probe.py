"""Plain HTTP calls to a vendor fake, for tests of the fakes themselves (and quick checks).

`await call(fake, "/v1/chat/completions", body)` posts JSON and returns the status, headers and
decoded body; `frames` reads a stream back as the JSON objects it carried (SSE `data:` lines
with their `event:` names, or NDJSON lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from tests.fakes.base import VendorFake


@dataclass(frozen=True, slots=True)
class Reply:
    """What the fake answered."""

    status: int
    headers: CIMultiDictProxy[str]
    raw: bytes

    @property
    def json(self) -> dict[str, Any]:
        """The body as a JSON object."""
        value = orjson.loads(self.raw)
        assert isinstance(value, dict), value
        return value

    def frames(self) -> list[tuple[str, dict[str, Any]]]:
        """The stream's objects with their SSE event names ("" for NDJSON and unnamed events).

        `data: [DONE]` comes back as ("", {"[DONE]": True}).
        """
        text = self.raw.decode()
        if "data:" not in text:  # NDJSON
            return [("", orjson.loads(line)) for line in text.splitlines() if line.strip()]
        out: list[tuple[str, dict[str, Any]]] = []
        for block in text.replace("\r\n", "\n").split("\n\n"):
            event, data = "", ""
            for line in block.splitlines():
                if line.startswith("event:"):
                    event = line[len("event:") :].strip()
                elif line.startswith("data:"):
                    data += line[len("data:") :].strip()
            if data == "[DONE]":
                out.append((event, {"[DONE]": True}))
            elif data:
                out.append((event, orjson.loads(data)))
        return out


def at(value: object, *path: str | int) -> Any:
    """The value at `path` inside nested JSON objects and arrays (`at(body, "choices", 0)`)."""
    for step in path:
        if isinstance(step, int):
            assert isinstance(value, list), (value, step)
            value = value[step]
        else:
            assert isinstance(value, dict), (value, step)
            value = value[step]
    return value


async def call(
    fake: VendorFake,
    path: str,
    body: object,
    *,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> Reply:
    """POST `body` as JSON to `path` on the fake and read the whole answer."""
    url = f"http://127.0.0.1:{fake.port}{path}"
    sent = {"Content-Type": "application/json", **(headers or {})}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=orjson.dumps(body), headers=sent, params=query) as response,
    ):
        raw = await response.read()
        return Reply(response.status, response.headers, raw)
