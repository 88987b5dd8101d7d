"""A loopback https server of images, for the gateway's image fetching (and its SSRF guard).

It serves over TLS with a `LoopbackAuthority` certificate (for 127.0.0.1 and localhost) on an
ephemeral port of 127.0.0.1, and counts the requests each path gets:

- `/cat.png`, `/cat.gif`: a small PNG or GIF with its media type;
- `/big.png` (`?chunked=1`: without a Content-Length): `big_bytes` of PNG;
- `/fake.png`: GIF bytes labelled image/png; `/page.html`: HTML;
- `/slow.png`: the PNG after `slow_seconds`;
- `/missing.png`: 404;
- `/redirect?to=<url>`: 302 to `<url>`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from types import TracebackType
from typing import Final, Self

from aiohttp import web

#: A 1x1 transparent PNG.
PNG: Final = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
#: A 1x1 GIF.
GIF: Final = bytes.fromhex(
    "4749463839610100010080000000000000ffffff21f90401000000002c000000000100010000020144003b"
)


class ImageServer:
    """Serves images over https on 127.0.0.1; `url(path)` is where, `hits[path]` how often."""

    def __init__(
        self, context: ssl.SSLContext, *, big_bytes: int = 4096, slow_seconds: float = 1.0
    ) -> None:
        self._context = context
        self._big = PNG + b"\0" * max(big_bytes - len(PNG), 0)
        self._slow = slow_seconds
        self.hits: Counter[str] = Counter()
        self.port = 0
        self._runner: web.AppRunner | None = None

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """The https URL of `path` on this server, by `host` (127.0.0.1 or localhost)."""
        return f"https://{host}:{self.port}{path}"

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/{name}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[f"/{name}"] += 1
        if name == "cat.png":
            return web.Response(body=PNG, content_type="image/png")
        if name == "cat.gif":
            return web.Response(body=GIF, content_type="image/gif")
        if name == "fake.png":
            return web.Response(body=GIF, content_type="image/png")
        if name == "page.html":
            return web.Response(text="<html></html>", content_type="text/html")
        if name == "slow.png":
            await asyncio.sleep(self._slow)
            return web.Response(body=PNG, content_type="image/png")
        if name == "big.png":
            if request.query.get("chunked"):
                response = web.StreamResponse(headers={"Content-Type": "image/png"})
                response.enable_chunked_encoding()
                await response.prepare(request)
                for start in range(0, len(self._big), 1024):
                    await response.write(self._big[start : start + 1024])
                await response.write_eof()
                return response
            return web.Response(body=self._big, content_type="image/png")
        if name == "redirect":
            raise web.HTTPFound(request.query["to"])
        raise web.HTTPNotFound()
