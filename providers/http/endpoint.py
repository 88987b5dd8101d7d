"""The HTTP exchange every provider adapter shares, whatever its vendor's wire format.

`JsonEndpoint` POSTs JSON for one deployment and maps a non-2xx answer with the adapter's own
error-body parser (`Callable[[bytes], VendorError]`) and `error_for_status`.
`UpstreamErrorBoundary` is the one place foreign exceptions (sockets, timeouts,
`MalformedReplyError`) become ours, before and after a stream's first chunk. The pure readers
of vendor JSON and errors live in `providers.wire`; the adapters' base class, which drives these
two, in `providers.adapter`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Final

import orjson

from providers.errors import (
    StreamInterruptedError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from providers.http.client import UpstreamClient, UpstreamResponse, check_headers
from providers.keys import AllKeysRestingError, KeyPool, RestReason
from providers.wire import MalformedReplyError, VendorError, error_for_status, parse_retry_after

#: Statuses that mean the vendor rejected the key (an adapter may add its vendor's own).
KEY_REJECTED_STATUSES: Final = frozenset({401, 403})
#: What a stream request accepts unless its adapter says otherwise (SSE).
EVENT_STREAM: Final = "text/event-stream"
_RATE_LIMITED_STATUS: Final = 429


class UpstreamErrorBoundary:
    """Converts socket, timeout and parse failures into our errors, at one place.

    Wrap a whole call in it (`with UpstreamErrorBoundary(name) as boundary:`). A stream sets
    `started` once it has yielded a chunk: after that every failure is a broken stream
    (`StreamInterruptedError`). Our own errors and `asyncio.CancelledError` pass through untouched.
    """

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.started = False

    def __enter__(self) -> UpstreamErrorBoundary:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, UpstreamError):
            return
        early: type[UpstreamUnavailableError]
        if isinstance(exc, TimeoutError):
            what, early = "timed out", UpstreamTimeoutError
        elif isinstance(exc, MalformedReplyError):
            what, early = "sent a malformed reply", UpstreamUnavailableError
        elif isinstance(exc, OSError):
            what, early = f"connection failed ({type(exc).__name__})", UpstreamUnavailableError
        else:
            return
        who = f"provider {self.provider!r}"
        if self.started:
            raise StreamInterruptedError(
                f"{who} broke off the stream: {what}", provider=self.provider
            ) from exc
        raise early(f"{who} {what}", provider=self.provider) from exc


class JsonEndpoint:
    """POSTs JSON for one deployment over a shared `UpstreamClient` (the caller's to close).

    Each call takes the next key of the deployment's `KeyPool` and sends it in the headers
    `auth(key)` builds; a key the vendor rejects (401/403, or the vendor's own
    `key_rejected_statuses`, or an error body saying so) or answers 429 is rested (429 for its
    `retry-after` when given). A request's own headers are added per call but never replace the
    adapter's (the credential in particular). A non-2xx answer raises `error_for_status` of what
    `read_error` makes of the body, with every key of the pool redacted from quoted messages.
    """

    def __init__(
        self,
        client: UpstreamClient,
        *,
        provider: str,
        read_error: Callable[[bytes], VendorError],
        keys: KeyPool,
        auth: Callable[[str], Mapping[str, str]] = lambda key: {},
        headers: Mapping[str, str] | None = None,
        stream_accept: str = EVENT_STREAM,
        key_rejected_statuses: frozenset[int] = KEY_REJECTED_STATUSES,
    ) -> None:
        self._client = client
        self._key_rejected_statuses = key_rejected_statuses
        self._provider = provider
        self._read_error = read_error
        self._keys = keys
        base = {"Content-Type": "application/json", **(headers or {})}
        # Built (and checked) once per key: the hot path only looks them up.
        self._headers_by_key = {
            key: (
                {**base, **auth(key), "Accept": "application/json"},
                {**base, **auth(key), "Accept": stream_accept},
            )
            for key in (keys.keys or ("",))
        }
        for unary, streamed in self._headers_by_key.values():
            check_headers(unary)
            check_headers(streamed)
        unary, _ = self._headers_by_key[next(iter(self._headers_by_key))]
        self._reserved = frozenset(name.lower() for name in unary)

    @asynccontextmanager
    async def post(
        self,
        url: str,
        body: object,
        *,
        stream: bool,
        time_limit: float | None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> AsyncIterator[UpstreamResponse]:
        """POST `body` to `url`; yield a 2xx response (JSON, or a stream if `stream`) or raise.

        `time_limit` is the seconds the whole exchange may take (None: no bound). An exception in
        the block (cancellation included) drops the connection instead of returning it to the pool.
        """
        key = self._acquire_key(time_limit)
        async with self._client.post(
            url,
            orjson.dumps(body),
            self._headers(key, headers, stream=stream),
            time_limit=time_limit,
        ) as response:
            try:
                if not 200 <= response.status < 300:
                    raise await self._status_error(key, response)
                yield response
            except BaseException:
                # Drop the connection rather than hand a half-read body back to the pool.
                response.close()
                raise

    async def fetch(
        self,
        url: str,
        body: object,
        *,
        time_limit: float | None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> bytes:
        """POST `body` to `url` and return the body of its 2xx answer, or raise.

        `post` for a whole JSON answer, without a context manager around the caller's code
        (which costs a generator per call). Failures are handled as `post` handles them.
        """
        key = self._acquire_key(time_limit)
        response = await self._client.fetch(
            url,
            orjson.dumps(body),
            self._headers(key, headers, stream=False),
            time_limit=time_limit,
        )
        if not 200 <= response.status < 300:
            raise await self._status_error(key, response)
        return await response.read()

    def _acquire_key(self, time_limit: float | None) -> str:
        """The key for the next exchange, if there is time left for one."""
        if time_limit is not None and time_limit <= 0:
            # A spent budget fails before anything is sent.
            raise UpstreamTimeoutError(
                f"provider {self._provider!r} timed out (no time left)", provider=self._provider
            )
        try:
            return self._keys.acquire()
        except AllKeysRestingError as exc:
            who = f"provider {self._provider!r}"
            if exc.reason is RestReason.RATE_LIMITED:
                raise UpstreamRateLimitedError(
                    f"{who} is rate limiting every API key of the gateway",
                    provider=self._provider,
                    retry_after=exc.retry_after,
                ) from None
            raise UpstreamAuthError(
                f"{who} recently rejected every API key of the gateway", provider=self._provider
            ) from None

    def _headers(
        self, key: str, extra: Sequence[tuple[str, str]], *, stream: bool
    ) -> Mapping[str, str]:
        unary, streamed = self._headers_by_key[key]
        if not extra:
            return streamed if stream else unary
        allowed = {k: v for k, v in extra if k.lower() not in self._reserved}
        check_headers(allowed)
        return {**allowed, **(streamed if stream else unary)}

    async def _status_error(self, key: str, response: UpstreamResponse) -> UpstreamError:
        error = self._read_error(await response.read())
        retry_after = parse_retry_after(response.headers)
        if retry_after is None:
            retry_after = error.retry_after
        if response.status in self._key_rejected_statuses:
            error = dataclasses.replace(error, credential_rejected=True)
        if error.credential_rejected:
            self._keys.rest(key, RestReason.REJECTED)
        elif response.status == _RATE_LIMITED_STATUS:
            self._keys.rest(key, RestReason.RATE_LIMITED, retry_after)
        return error_for_status(
            response.status,
            error,
            provider=self._provider,
            secrets=self._keys.keys,
            retry_after=retry_after,
        )
