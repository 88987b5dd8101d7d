"""Request bodies on the JSON port: read within a time bound, decoded per `Content-Encoding`.

The shim reads bodies itself (aiohttp's automatic decompression is off): a body labelled
`gzip` or `deflate` that is not (a plain JSON body, say) used to surface as a 500 with a
traceback from inside aiohttp, an unknown coding (`br` without Brotli installed, `zstd`) as a
plain-text 400 naming a package to install, and a made-up one was ignored. Here:

- `gzip` (`x-gzip`), `deflate` (zlib, or raw deflate as some clients send it) and `identity`
  are decoded, in the order applied; the decoded size counts against `MAX_REQUEST_BYTES`;
- a body that does not decode as labelled is 400, any other coding 415, naming what is read;
- the whole body must arrive within the body timeout, else 408 and the connection is closed.

Every route with a body reads it through `read_json_object`, with the bounds the app holds
(`MAX_BYTES_KEY`, `BODY_TIMEOUT_KEY`); `message_response` renders an answer message back.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import orjson
from aiohttp import web
from google.protobuf.message import Message

from gateway.errors import (
    BodyTimeoutError,
    InvalidArgumentError,
    PayloadTooLargeError,
    UnsupportedEncodingError,
)
from gateway.transports.json_codec import render_message

READ_CODINGS = "gzip, deflate or identity"
JSON_CONTENT_TYPE = "application/json"
MAX_BYTES_KEY = web.AppKey("max_request_bytes", int)
BODY_TIMEOUT_KEY = web.AppKey("body_read_timeout", float)
#: zlib window sizes: gzip framing, zlib framing, raw deflate.
_GZIP_WINDOW, _ZLIB_WINDOW, _RAW_WINDOW = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object, read within the app's bounds (`read_body`)."""
    app = request.app
    raw = await read_body(request, seconds=app[BODY_TIMEOUT_KEY], max_bytes=app[MAX_BYTES_KEY])
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgumentError(f"body: malformed JSON ({exc})") from None
    if not isinstance(body, dict):
        raise InvalidArgumentError("body: must be a JSON object")
    return body


def message_response(message: Message) -> web.Response:
    """`message` as the JSON answer (proto3 JSON mapping, defaults included)."""
    return web.Response(body=render_message(message, defaults=True), content_type=JSON_CONTENT_TYPE)


async def read_body(request: web.BaseRequest, *, seconds: float, max_bytes: int) -> bytes:
    """The request's body, decoded; raises `BodyTimeoutError` when it comes too slowly."""
    if request.content.is_eof():
        # Nearly every body arrives with its headers: all of it is here, nothing to time.
        raw = await request.read()
    else:
        try:
            async with asyncio.timeout(seconds):
                raw = await request.read()
        except TimeoutError:
            raise BodyTimeoutError(f"body: not received within {seconds:g}s") from None
    codings = request.headers.get("Content-Encoding")
    return decode_body(raw, codings, max_bytes) if codings else raw


def decode_body(raw: bytes, codings: str, max_bytes: int) -> bytes:
    """`raw` with the `Content-Encoding` codings (comma-separated, in applied order) undone."""
    names = [name.strip().lower() for name in codings.split(",") if name.strip()]
    for name in names:
        if name not in ("gzip", "x-gzip", "deflate", "identity"):
            raise UnsupportedEncodingError(
                f"body: Content-Encoding {name!r} is not supported; send {READ_CODINGS}"
            )
    if len([name for name in names if name != "identity"]) > 1:
        raise UnsupportedEncodingError(f"body: one Content-Encoding at most, {READ_CODINGS}")
    body = raw
    for name in reversed(names):
        if name in ("gzip", "x-gzip"):
            body = _inflate(body, _GZIP_WINDOW, name, max_bytes)
        elif name == "deflate":
            body = _deflate(body, max_bytes)
    return body


def _deflate(raw: bytes, max_bytes: int) -> bytes:
    # RFC 9110's "deflate" is zlib-framed; some clients send raw deflate: read both.
    try:
        return _inflate(raw, _ZLIB_WINDOW, "deflate", max_bytes)
    except InvalidArgumentError as zlib_framed:
        if isinstance(zlib_framed, PayloadTooLargeError):
            raise
        return _inflate(raw, _RAW_WINDOW, "deflate", max_bytes)


def _inflate(raw: bytes, window: int, name: str, max_bytes: int) -> bytes:
    """Decompress, stopping as soon as the output passes `max_bytes` (a small bomb stays small)."""
    inflater = zlib.decompressobj(window)
    try:
        body = inflater.decompress(raw, max_bytes + 1)
    except zlib.error:
        raise InvalidArgumentError(
            f"body: not valid {name} data (Content-Encoding: {name})"
        ) from None
    if len(body) > max_bytes:
        raise PayloadTooLargeError(f"body: larger than the limit of {max_bytes} bytes")
    if not inflater.eof or inflater.unused_data:
        raise InvalidArgumentError(f"body: not valid {name} data (Content-Encoding: {name})")
    return body
