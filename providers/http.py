"""What every HTTP+JSON provider adapter shares, whatever its vendor's wire format.

An adapter module keeps only its vendor's wire format and supplies its own error-body parser
(`Callable[[bytes], VendorError]`) to `JsonEndpoint`, which POSTs JSON and maps a non-2xx answer
with `error_for_status`. `UpstreamErrorBoundary` is the one place foreign exceptions (aiohttp,
sockets, timeouts, `MalformedReplyError`) become ours, before and after a stream's first chunk.
The JSON readers raise `MalformedReplyError` where a reply is not what the adapter expects.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Final

import aiohttp
import orjson
from aiohttp.http_exceptions import HttpProcessingError

from gateway.errors import (
    ContentFilteredError,
    GatewayError,
    StreamInterruptedError,
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from providers.keys import AllKeysRestingError, KeyPool, RestReason

_QUOTE_LIMIT: Final = 300
_KEY_REJECTED_STATUSES: Final = frozenset({401, 403})
_RATE_LIMITED_STATUS: Final = 429
_BAD_REQUEST_STATUSES: Final = frozenset({400, 413, 422})
_QUOTED_STATUSES: Final = frozenset({400, 404, 422})
#: Error class and wording by vendor HTTP status, past the bad-request family.
_STATUS_ERRORS: Final[Mapping[int, tuple[type[UpstreamError], str]]] = {
    401: (UpstreamAuthError, "rejected the gateway's credentials"),
    403: (UpstreamAuthError, "rejected the gateway's credentials"),
    404: (UpstreamNotFoundError, "does not know the model"),
    429: (UpstreamRateLimitedError, "is rate limiting the gateway"),
}


class MalformedReplyError(ValueError):
    """The vendor's body does not follow its API's schema."""


@dataclass(frozen=True, slots=True)
class VendorError:
    """What a vendor said about a failure, as its adapter's error-body parser read it.

    The strings are empty where the vendor did not say. `content_filtered` is the adapter's
    verdict that the vendor refused on content-policy grounds (each vendor says so its own way).
    """

    message: str = ""
    type: str = ""
    code: str = ""
    content_filtered: bool = False
    #: The vendor said our key is invalid, whatever the status (Gemini: 400 API_KEY_INVALID).
    credential_rejected: bool = False
    #: Seconds to wait that the body gave (Gemini's RetryInfo), used when no header does.
    retry_after: float | None = None


# -- reading vendor JSON ------------------------------------------------------------------------


def decode_object(raw: bytes) -> Mapping[str, object]:
    """Parse a JSON object; raise `MalformedReplyError` for anything else."""
    try:
        return as_object(orjson.loads(raw), "reply")
    except orjson.JSONDecodeError as exc:
        raise MalformedReplyError("reply is not JSON") from exc


def as_object(value: object, what: str) -> Mapping[str, object]:
    """Return `value` if it is a JSON object; raise `MalformedReplyError` naming `what` if not."""
    if not isinstance(value, dict):
        raise MalformedReplyError(f"{what} is not an object")
    return value


def str_field(obj: Mapping[str, object], key: str) -> str | None:
    """The string at `key` (None when absent or null); raise `MalformedReplyError` otherwise."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedReplyError(f"{key} is not a string")


def int_field(obj: Mapping[str, object], key: str) -> int:
    """The integer at `key` (0 when absent or null); raise `MalformedReplyError` otherwise."""
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise MalformedReplyError(f"{key} is not an integer")


def bearer_auth(key: str) -> Mapping[str, str]:
    """`Authorization: Bearer <key>` (no header for a server that needs no key)."""
    return {"Authorization": f"Bearer {key}"} if key else {}


# -- vendor failures as our errors --------------------------------------------------------------


def error_for_status(
    status: int,
    error: VendorError,
    *,
    provider: str,
    secrets: Sequence[str] = (),
    where: str = "",
    retry_after: float | None = None,
) -> UpstreamError:
    """Map a vendor failure to our error; `where` says how it arrived (default "HTTP <status>").

    The vendor's message is quoted only for 400/404/422 (truncated, `secrets` redacted): the
    401 message echoes part of the key, and no other body is meant for the caller. Statuses
    this does not know (5xx, and vendor ones such as Anthropic's 529) mean it failed to answer.
    """
    kind: type[UpstreamError]
    if error.credential_rejected:
        kind, verb = UpstreamAuthError, "rejected the gateway's credentials"
    elif status in _BAD_REQUEST_STATUSES and error.content_filtered:
        kind, verb = ContentFilteredError, "refused on content-policy grounds"
    elif status in _BAD_REQUEST_STATUSES:
        kind, verb = UpstreamBadRequestError, "rejected the request"
    else:
        kind, verb = _STATUS_ERRORS.get(status, (UpstreamUnavailableError, "failed to answer"))
    parts = (where or f"HTTP {status}", _field("type", error.type), _field("code", error.code))
    quoted = status in _QUOTED_STATUSES and not error.credential_rejected
    said = _quote(error.message, secrets) if quoted else ""
    message = f"provider {provider!r} {verb} ({', '.join(p for p in parts if p)}){said}"
    return kind(message, provider=provider, retry_after=retry_after)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` (seconds or an HTTP date)."""
    millis = _finite(headers.get("retry-after-ms"))
    if millis is not None:
        return max(millis / 1000, 0.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _field(name: str, value: str) -> str:
    return f"{name}={value[:64]}" if value else ""


def _quote(message: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    if len(message) > _QUOTE_LIMIT:
        message = message[: _QUOTE_LIMIT - 1] + "…"
    return f": {message}" if message else ""


def _finite(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# -- I/O -----------------------------------------------------------------------------------------


class UpstreamErrorBoundary:
    """Converts aiohttp, socket and parse failures into our errors, at one place.

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
        if exc is None or isinstance(exc, GatewayError):
            return
        early: type[UpstreamUnavailableError]
        if isinstance(exc, TimeoutError):
            what, early = "timed out", UpstreamTimeoutError
        elif isinstance(exc, MalformedReplyError | HttpProcessingError):
            what, early = "sent a malformed reply", UpstreamUnavailableError
        elif isinstance(exc, aiohttp.ClientError | OSError):
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
    """POSTs JSON for one deployment over a shared `aiohttp` session (the caller's to close).

    Each call takes the next key of the deployment's `KeyPool` and sends it in the headers
    `auth(key)` builds; a key the vendor rejects (401/403, or the vendor's own
    `key_rejected_statuses`, or an error body saying so) or answers 429 is rested (429 for its
    `retry-after` when given). A request's own headers are added per call but never replace the
    adapter's (the credential in particular). A non-2xx answer raises `error_for_status` of what
    `read_error` makes of the body, with every key of the pool redacted from quoted messages.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        provider: str,
        read_error: Callable[[bytes], VendorError],
        keys: KeyPool,
        auth: Callable[[str], Mapping[str, str]] = lambda key: {},
        headers: Mapping[str, str] | None = None,
        stream_accept: str = "text/event-stream",
        key_rejected_statuses: frozenset[int] = _KEY_REJECTED_STATUSES,
    ) -> None:
        self._session = session
        self._key_rejected_statuses = key_rejected_statuses
        self._provider = provider
        self._read_error = read_error
        self._keys = keys
        base = {"Content-Type": "application/json", **(headers or {})}
        # Built once per key: the hot path only looks them up.
        self._headers_by_key = {
            key: (
                {**base, **auth(key), "Accept": "application/json"},
                {**base, **auth(key), "Accept": stream_accept},
            )
            for key in (keys.keys or ("",))
        }
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
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST `body` to `url`; yield a 2xx response (JSON, or a stream if `stream`) or raise.

        `time_limit` is the seconds the whole exchange may take (None: no bound). An exception in
        the block (cancellation included) drops the connection instead of returning it to the pool.
        """
        if time_limit is not None and time_limit <= 0:
            # aiohttp reads a zero total timeout as "no timeout"; a spent budget must not.
            raise UpstreamTimeoutError(
                f"provider {self._provider!r} timed out (no time left)", provider=self._provider
            )
        key = self._acquire_key()
        async with self._session.post(
            url,
            data=orjson.dumps(body),
            headers=self._headers(key, headers, stream=stream),
            timeout=aiohttp.ClientTimeout(total=time_limit),
            allow_redirects=False,
        ) as response:
            try:
                if not 200 <= response.status < 300:
                    raise await self._status_error(key, response)
                yield response
            except BaseException:
                # Drop the connection rather than hand a half-read body back to the pool.
                response.close()
                raise

    def _acquire_key(self) -> str:
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
        ours = streamed if stream else unary
        if not extra:
            return ours
        allowed = {k: v for k, v in extra if k.lower() not in self._reserved}
        return {**allowed, **ours}

    async def _status_error(self, key: str, response: aiohttp.ClientResponse) -> UpstreamError:
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
