"""Fetching a caller's https images for a deployment whose vendor does not fetch them itself.

`ImageFetcher.inline(chat, deadline)` returns the request with every https image replaced by its
bytes and media type, each URL fetched once however often it appears. A fetch is bounded in
size (`max_bytes`, announced or read), in time (`timeout`, and the caller's deadline), in kind
(PNG, JPEG, GIF or WebP, by the `Content-Type` header and by the bytes' own signature, which
must agree) and in reach (the SSRF guard of `gateway.pipeline.image_guard`: every connection,
redirects included, goes only to an address the policy allows). Redirects are followed (a few,
https only), each one checked like the first URL. Any failure is INVALID_ARGUMENT naming the
image's field (`messages[i].parts[j].image.url`) and saying what went wrong, never what the
server sent nor the URL (which may carry a signature).

No proxy is used: a proxy would connect on the gateway's behalf past the guard.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

import aiohttp
from yarl import URL

from gateway.errors import DeadlineExceededError, InvalidArgumentError
from gateway.pipeline.image_guard import AddressPolicy, GuardedResolver, RefusedAddressError
from providers.types import ChatRequest, ImagePart, Message

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
MAX_REDIRECTS: Final = 3
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_CHUNK: Final = 64 * 1024
#: The media types fetched, and how each one's bytes begin.
_SIGNATURES: Final[Mapping[str, tuple[bytes, ...]]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # and "WEBP" at offset 8, checked below
}


class _FetchError(Exception):
    """Why one image could not be fetched, in words fit for the caller."""


@dataclass(frozen=True, slots=True)
class ImageFetchPolicy:
    """How far the gateway goes to fetch a caller's image."""

    #: The largest image fetched, in bytes.
    max_bytes: int = DEFAULT_MAX_BYTES
    #: Seconds one image may take, connect to last byte (the caller's deadline bounds it too).
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    #: Which addresses may be reached (public ones, and what is allow-listed).
    addresses: AddressPolicy = field(default_factory=AddressPolicy)


def has_https_images(chat: ChatRequest) -> bool:
    """Whether any message holds an image given by https URL."""
    for message in chat.messages:  # a loop, not `any()`: no generator made per call
        for part in message.parts:
            if type(part) is ImagePart and part.url.startswith("https:"):
                return True
    return False


class ImageFetcher:
    """Fetches images over one guarded HTTP session, opened on first use."""

    def __init__(
        self,
        policy: ImageFetchPolicy,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._session: aiohttp.ClientSession | None = None

    async def inline(self, chat: ChatRequest, deadline: float) -> ChatRequest:
        """`chat` with each https image replaced by its bytes and media type.

        Raises `InvalidArgumentError` naming the first image that could not be fetched, or
        `DeadlineExceededError` when the caller's time ran out first.
        """
        fetched: dict[str, ImagePart] = {}
        messages: list[Message] = []
        for index, message in enumerate(chat.messages):
            parts = list(message.parts)
            changed = False
            for number, part in enumerate(parts):
                if type(part) is not ImagePart or not part.url.startswith("https:"):
                    continue
                image = fetched.get(part.url)
                if image is None:
                    where = f"messages[{index}].parts[{number}].image.url"
                    data, media_type = await self._fetch(part.url, where, deadline)
                    image = fetched[part.url] = ImagePart(data=data, media_type=media_type)
                parts[number] = replace(image, detail=part.detail)
                changed = True
            messages.append(replace(message, parts=tuple(parts)) if changed else message)
        return replace(chat, messages=tuple(messages))

    async def aclose(self) -> None:
        """Close the session (and its connections), if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch(self, url: str, where: str, deadline: float) -> tuple[bytes, str]:
        loop = asyncio.get_running_loop()
        own_limit = loop.time() + self._policy.timeout
        try:
            async with asyncio.timeout_at(min(own_limit, deadline)):
                return await self._follow(URL(url))
        except _FetchError as exc:
            raise InvalidArgumentError(f"{where}: cannot fetch the image: {exc}") from None
        except TimeoutError:
            if deadline <= own_limit:
                raise DeadlineExceededError("deadline exceeded while fetching an image") from None
            raise InvalidArgumentError(
                f"{where}: cannot fetch the image: no answer within {self._policy.timeout:g}s"
            ) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise InvalidArgumentError(f"{where}: cannot fetch the image: {_reason(exc)}") from None

    async def _follow(self, url: URL) -> tuple[bytes, str]:
        session = self._open()
        for _ in range(MAX_REDIRECTS + 1):
            if url.scheme != "https" or not url.host:
                raise _FetchError("it was redirected to a URL that is not https")
            self._policy.addresses.check_literal(url.host)
            async with session.get(url, allow_redirects=False) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location", "")
                    if not location:
                        raise _FetchError(f"HTTP {response.status} without a Location")
                    url = url.join(URL(location))
                    continue
                if response.status != 200:
                    raise _FetchError(f"the server answered HTTP {response.status}")
                return await self._read(response)
        raise _FetchError(f"more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: aiohttp.ClientResponse) -> tuple[bytes, str]:
        media_type = response.content_type
        if media_type not in _SIGNATURES:
            raise _FetchError(
                f"its Content-Type is {media_type[:64]!r}, not one of "
                + ", ".join(sorted(_SIGNATURES))
            )
        limit = self._policy.max_bytes
        too_big = _FetchError(f"it is larger than {limit} bytes")
        if response.content_length is not None and response.content_length > limit:
            raise too_big
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > limit:
                raise too_big
        if not _looks_like(bytes(body[:16]), media_type):
            raise _FetchError(f"its bytes are not a {media_type} image")
        return bytes(body), media_type

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self._policy.addresses),
                ssl=self._ssl,
                use_dns_cache=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                headers={"Accept": ", ".join(_SIGNATURES), "User-Agent": "ai-gateway"},
            )
        return self._session


def _looks_like(head: bytes, media_type: str) -> bool:
    """Whether the first bytes are the signature of `media_type`."""
    if not head.startswith(_SIGNATURES[media_type]):
        return False
    return media_type != "image/webp" or head[8:12] == b"WEBP"


def _reason(exc: BaseException) -> str:
    """What went wrong, in words fit for the caller (no address, no server text)."""
    refused = exc if isinstance(exc, RefusedAddressError) else None
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        refused = cause if isinstance(cause, RefusedAddressError) else None
    if refused is not None:
        return f"refused: {refused}, which the gateway does not fetch from"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "the TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "cannot connect to the host"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return "the connection broke"
    return "the request failed"
