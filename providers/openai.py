"""The OpenAI Chat Completions adapter (also any OpenAI-compatible server, such as vLLM).

It speaks `POST {base_url}/chat/completions`, unary or streamed as Server-Sent Events. The pure
converters (`to_wire`, `from_wire`, `chunk_from_wire`, `error_for_status`) are kept apart from
the I/O in `OpenAIProvider`, which converts foreign exceptions at one place (`_ErrorBoundary`).
A stream ends with one chunk carrying `finish_reason` and usage once `data: [DONE]` arrives;
any other ending raises.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
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
from providers.base import (
    Capabilities,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ProviderSettings,
    Usage,
)
from providers.sse import iter_sse_events

KIND: Final = "openai"
_DONE: Final = b"[DONE]"
_QUOTE_LIMIT: Final = 300
_BAD_REQUEST_STATUSES: Final = frozenset({400, 413, 422})
_QUOTED_STATUSES: Final = frozenset({400, 404, 422})
_CONTENT_FILTER_CODES: Final = frozenset({"content_filter", "content_policy_violation"})
#: The HTTP status an `error` object inside a stream stands for, by its vendor `type`.
_STREAM_ERROR_STATUS: Final[Mapping[str, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
}
#: Error class and wording by vendor HTTP status, past the bad-request family.
_STATUS_ERRORS: Final[Mapping[int, tuple[type[UpstreamError], str]]] = {
    401: (UpstreamAuthError, "rejected the gateway's credentials"),
    403: (UpstreamAuthError, "rejected the gateway's credentials"),
    404: (UpstreamNotFoundError, "does not know the model"),
    429: (UpstreamRateLimitedError, "is rate limiting the gateway"),
}
_CAPABILITIES: Final = Capabilities(streaming=True, stream_usage=True)


class MalformedReplyError(ValueError):
    """The vendor's body does not follow the Chat Completions schema."""


@dataclass(frozen=True, slots=True)
class VendorError:
    """The fields of OpenAI's `{"error": {...}}` object (empty strings where absent)."""

    message: str = ""
    type: str = ""
    code: str = ""


# -- pure converters ---------------------------------------------------------------------------


def to_wire(request: ChatRequest, *, stream: bool) -> dict[str, object]:
    """Build the Chat Completions request body, sending only the parameters that are set."""
    body: dict[str, object] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def from_wire(body: object) -> ChatResponse:
    """Convert a `chat.completion` object; raise `MalformedReplyError` if it is not one."""
    reply = _object(body, "reply")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedReplyError("reply has no choices")
    choice = _object(choices[0], "choices[0]")
    message = _object(choice.get("message"), "choices[0].message")
    return ChatResponse(
        id=_string(reply, "id") or "",
        model=_string(reply, "model") or "",
        content=_string(message, "content") or "",
        finish_reason=_string(choice, "finish_reason") or "stop",
        usage=usage_from_wire(reply.get("usage")) or Usage(),
    )


def chunk_from_wire(body: Mapping[str, object]) -> ChatChunk:
    """Convert a `chat.completion.chunk` object; its delta is empty for role/finish/usage chunks."""
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise MalformedReplyError("stream chunk has no choices list")
    delta, finish_reason = "", None
    if choices:
        choice = _object(choices[0], "choices[0]")
        delta = _string(_object(choice.get("delta", {}), "choices[0].delta"), "content") or ""
        finish_reason = _string(choice, "finish_reason")
    return ChatChunk(
        delta=delta,
        id=_string(body, "id") or "",
        model=_string(body, "model") or "",
        finish_reason=finish_reason,
        usage=usage_from_wire(body.get("usage")),
    )


def usage_from_wire(raw: object) -> Usage | None:
    """Convert a `usage` object (None when absent); cached prompt tokens come from its details."""
    if raw is None:
        return None
    usage = _object(raw, "usage")
    prompt, completion = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
    details = usage.get("prompt_tokens_details")
    cached = 0 if details is None else _count(_object(details, "usage details"), "cached_tokens")
    total = _count(usage, "total_tokens") if "total_tokens" in usage else prompt + completion
    return Usage(prompt, completion, total, cached)


def decode_object(raw: bytes) -> Mapping[str, object]:
    """Parse a JSON object; raise `MalformedReplyError` for anything else."""
    try:
        return _object(orjson.loads(raw), "reply")
    except orjson.JSONDecodeError as exc:
        raise MalformedReplyError("reply is not JSON") from exc


def vendor_error(raw: bytes) -> VendorError:
    """Read OpenAI's error object from a body; a body that is not one gives an empty value."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return VendorError()
    return _vendor_error(body.get("error") if isinstance(body, dict) else None)


def error_for_status(
    status: int,
    error: VendorError,
    *,
    provider: str,
    secret: str = "",
    where: str = "",
    retry_after: float | None = None,
) -> UpstreamError:
    """Map a vendor failure to our error; `where` says how it arrived (default "HTTP <status>").

    The vendor's message is quoted only for 400/404/422 (truncated, `secret` redacted): the
    401 message echoes part of the key, and no other body is meant for the caller.
    """
    kind: type[UpstreamError]
    if status in _BAD_REQUEST_STATUSES and error.code in _CONTENT_FILTER_CODES:
        kind, verb = ContentFilteredError, "refused on content-policy grounds"
    elif status in _BAD_REQUEST_STATUSES:
        kind, verb = UpstreamBadRequestError, "rejected the request"
    else:
        kind, verb = _STATUS_ERRORS.get(status, (UpstreamUnavailableError, "failed to answer"))
    parts = (where or f"HTTP {status}", _field("type", error.type), _field("code", error.code))
    said = _quote(error.message, secret) if status in _QUOTED_STATUSES else ""
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


def _object(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise MalformedReplyError(f"{what} is not an object")
    return value


def _string(obj: Mapping[str, object], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedReplyError(f"{key} is not a string")


def _count(obj: Mapping[str, object], key: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise MalformedReplyError(f"{key} is not an integer")


def _vendor_error(error: object) -> VendorError:
    if not isinstance(error, dict):
        return VendorError()
    return VendorError(*(_text(error.get(key)) for key in ("message", "type", "code")))


def _text(value: object) -> str:
    """A vendor error field as text; some compatible servers send a numeric `code`."""
    return str(value) if isinstance(value, str | int) else ""


def _field(name: str, value: str) -> str:
    return f"{name}={value[:64]}" if value else ""


def _quote(message: str, secret: str) -> str:
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


class _ErrorBoundary:
    """Converts aiohttp, socket and parse failures into our errors, at one place.

    `started` flips once a chunk has been yielded: after that every failure is a broken stream.
    Our own errors and `asyncio.CancelledError` pass through untouched.
    """

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.started = False

    def __enter__(self) -> _ErrorBoundary:
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


@dataclass(slots=True)
class _StreamState:
    """What a stream has said so far that only matters at its end."""

    id: str = ""
    model: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None

    def feed(self, piece: ChatChunk) -> ChatChunk | None:
        """Remember the piece's metadata; return the chunk to yield if it carries text."""
        self.id = piece.id or self.id
        self.model = piece.model or self.model
        if piece.finish_reason is not None:
            self.finish_reason = piece.finish_reason
        if piece.usage is not None:
            self.usage = piece.usage
        return ChatChunk(delta=piece.delta, id=self.id, model=self.model) if piece.delta else None

    def final(self) -> ChatChunk:
        """The closing chunk; a server that sent [DONE] but no finish_reason finished normally."""
        return ChatChunk(
            id=self.id,
            model=self.model,
            finish_reason=self.finish_reason or "stop",
            usage=self.usage,
        )


class OpenAIProvider:
    """One OpenAI (or OpenAI-compatible) deployment, speaking over a shared `aiohttp` session.

    The session belongs to the caller, who closes it. Headers are built once here; a request's
    own headers are added per call but can never replace ours (the credential in particular).
    """

    def __init__(self, settings: ProviderSettings, session: aiohttp.ClientSession) -> None:
        self._name = settings.name
        self._secret = settings.api_key
        self._session = session
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        base = {"Content-Type": "application/json"}
        if settings.api_key:
            base["Authorization"] = f"Bearer {settings.api_key}"
        self._unary_headers = {**base, "Accept": "application/json"}
        self._stream_headers = {**base, "Accept": "text/event-stream"}
        self._reserved = frozenset(name.lower() for name in self._unary_headers)

    @property
    def name(self) -> str:
        """The deployment name."""
        return self._name

    @property
    def kind(self) -> str:
        """Always "openai"."""
        return KIND

    @property
    def capabilities(self) -> Capabilities:
        """Streams, with usage in the stream (`stream_options.include_usage`)."""
        return _CAPABILITIES

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Return one whole completion or raise an `UpstreamError`."""
        with _ErrorBoundary(self._name):
            async with self._exchange(request, stream=False) as response:
                raw = await response.read()
            return from_wire(decode_object(raw))

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Yield text chunks, then one chunk with `finish_reason` and usage; or raise.

        A consumer that stops early should close the iterator (`contextlib.aclosing`): that is
        what aborts the upstream request. Cancelling a task awaiting the next chunk does it too.
        """
        state = _StreamState()
        with _ErrorBoundary(self._name) as boundary:
            async with self._exchange(request, stream=True) as response:
                async for event in iter_sse_events(response.content):
                    if event.data == _DONE:
                        break
                    chunk = state.feed(self._read_event(event.data, boundary.started))
                    if chunk is not None:
                        boundary.started = True
                        yield chunk
                else:  # the body ended without the terminal marker: the stream was cut
                    raise StreamInterruptedError(
                        f"provider {self._name!r} ended the stream without [DONE]",
                        provider=self._name,
                    )
        yield state.final()

    async def aclose(self) -> None:
        """Nothing to release: the HTTP session belongs to the caller."""

    @asynccontextmanager
    async def _exchange(
        self, request: ChatRequest, *, stream: bool
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST the request; yield a 2xx response or raise the mapped error."""
        if request.timeout is not None and request.timeout <= 0:
            # aiohttp reads a zero total timeout as "no timeout"; a spent budget must not.
            raise UpstreamTimeoutError(
                f"provider {self._name!r} timed out (no time left)", provider=self._name
            )
        async with self._session.post(
            self._url,
            data=orjson.dumps(to_wire(request, stream=stream)),
            headers=self._headers(request, stream=stream),
            timeout=aiohttp.ClientTimeout(total=request.timeout),
            allow_redirects=False,
        ) as response:
            try:
                if not 200 <= response.status < 300:
                    raise await self._status_error(response)
                yield response
            except BaseException:
                # Drop the connection rather than hand a half-read body back to the pool.
                response.close()
                raise

    def _headers(self, request: ChatRequest, *, stream: bool) -> Mapping[str, str]:
        ours = self._stream_headers if stream else self._unary_headers
        if not request.headers:
            return ours
        extra = {k: v for k, v in request.headers if k.lower() not in self._reserved}
        return {**extra, **ours}

    async def _status_error(self, response: aiohttp.ClientResponse) -> UpstreamError:
        return error_for_status(
            response.status,
            vendor_error(await response.read()),
            provider=self._name,
            secret=self._secret,
            retry_after=parse_retry_after(response.headers),
        )

    def _read_event(self, data: bytes, started: bool) -> ChatChunk:
        body = decode_object(data)
        error = body.get("error")
        if not error:
            return chunk_from_wire(body)
        # OpenAI reports some failures inside a 200 stream as an `error` object.
        details = _vendor_error(error)
        status = 400 if details.code in _CONTENT_FILTER_CODES else 500
        status = _STREAM_ERROR_STATUS.get(details.type, status)
        mapped = error_for_status(
            status, details, provider=self._name, secret=self._secret, where="error event"
        )
        if started and not isinstance(mapped, ContentFilteredError):
            raise StreamInterruptedError(f"{mapped.message} mid-stream", provider=self._name)
        raise mapped
