"""`HttpAdapter`: the base of every HTTP+JSON provider adapter.

It owns what every vendor's adapter would otherwise repeat: the deployment's name, kind and
capabilities, the `JsonEndpoint` with the deployment's keys, `complete` (POST, read, convert,
all inside the `UpstreamErrorBoundary`), `aclose`, and the errors a broken stream raises. A
vendor module subclasses it with only its wire format: its kind, its request body, its reply,
and its stream loop (each vendor ends and breaks a stream its own way).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import ClassVar, Final
from urllib.parse import quote

from gateway.errors import (
    ContentFilteredError,
    InvalidArgumentError,
    StreamInterruptedError,
    UpstreamError,
)
from providers.base import Capabilities, ChatChunk, ChatRequest, ChatResponse, ProviderSettings
from providers.http.client import UpstreamClient, UpstreamResponse
from providers.http.endpoint import (
    EVENT_STREAM,
    KEY_REJECTED_STATUSES,
    JsonEndpoint,
    UpstreamErrorBoundary,
)
from providers.keys import KeyPool
from providers.wire import VendorError, decode_object, error_for_status

_DOT_SEGMENTS: Final = frozenset({".", ".."})


class HttpAdapter(ABC):
    """One deployment of an HTTP+JSON vendor, over a shared `UpstreamClient` (the caller's).

    A subclass supplies `_kind`, the request body (`_to_wire`), the whole reply (`_from_wire`)
    and `stream`, which reads the vendor's frames inside an `UpstreamErrorBoundary` and reports
    failures with `_stream_error` and `_cut_short`. Requests go to the base URL plus `path`; a
    vendor that names the model in the URL overrides `_url_for` and puts it there with
    `_model_segment`. Our headers (`auth` of a key, and `headers`) are set once on the endpoint;
    a request's own headers are added per call but never replace them.
    """

    #: The adapter kind, such as "openai"; each adapter class sets it.
    _kind: ClassVar[str]
    #: Every HTTP adapter here streams, with usage in the stream.
    _capabilities: ClassVar[Capabilities] = Capabilities(streaming=True, stream_usage=True)

    def __init__(
        self,
        settings: ProviderSettings,
        session: UpstreamClient,
        keys: KeyPool,
        *,
        path: str,
        read_error: Callable[[bytes], VendorError],
        auth: Callable[[str], Mapping[str, str]],
        headers: Mapping[str, str] | None = None,
        stream_accept: str = EVENT_STREAM,
        key_rejected_statuses: frozenset[int] = KEY_REJECTED_STATUSES,
    ) -> None:
        self._name = settings.name
        self._keys = keys
        self._url = settings.base_url.rstrip("/") + path
        self._endpoint = JsonEndpoint(
            session,
            provider=settings.name,
            read_error=read_error,
            keys=keys,
            auth=auth,
            headers=headers,
            stream_accept=stream_accept,
            key_rejected_statuses=key_rejected_statuses,
        )

    @property
    def name(self) -> str:
        """The deployment name."""
        return self._name

    @property
    def kind(self) -> str:
        """The adapter kind, such as "openai"."""
        return self._kind

    @property
    def capabilities(self) -> Capabilities:
        """What this adapter supports."""
        return self._capabilities

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Return one whole completion or raise an `UpstreamError`."""
        with UpstreamErrorBoundary(self._name):
            raw = await self._endpoint.fetch(
                self._url_for(request, stream=False),
                self._to_wire(request, stream=False),
                time_limit=request.timeout,
                headers=request.headers,
            )
            return self._from_wire(decode_object(raw), request)

    @abstractmethod
    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Yield text chunks, then one chunk with `finish_reason` and usage; or raise.

        A consumer that stops early should close the iterator (`contextlib.aclosing`): that is
        what aborts the upstream request. Cancelling a task awaiting the next chunk does it too.
        """

    async def aclose(self) -> None:  # noqa: B027 (a real no-op: the session is the caller's)
        """Nothing to release: the HTTP session belongs to the caller."""

    @abstractmethod
    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        """The vendor's request body for `request`."""

    @abstractmethod
    def _from_wire(self, body: Mapping[str, object], request: ChatRequest) -> ChatResponse:
        """The whole completion in the vendor's `body`; `MalformedReplyError` if it is not one."""

    def _url_for(self, request: ChatRequest, *, stream: bool) -> str:
        """Where `request` goes: the deployment's one URL, for every model and both modes."""
        return self._url

    def _model_segment(self, model: str) -> str:
        """`model` as exactly one URL path segment (percent-encoded), for vendors that put it there.

        A name with a "/", or a dot-segment ("." or ".."), would reach another path once a
        server or proxy on the way decodes and normalises the URL: it is refused, before
        anything is sent, as the caller's mistake.
        """
        if not model or model in _DOT_SEGMENTS or "/" in model:
            raise InvalidArgumentError(
                f"model: {self._kind} puts the model in its URL path, so {model!r} must be one "
                f"path segment (no '/', not '.' or '..')"
            )
        return quote(model, safe="")

    def _post(
        self, request: ChatRequest, *, stream: bool
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        return self._endpoint.post(
            self._url_for(request, stream=stream),
            self._to_wire(request, stream=stream),
            stream=stream,
            time_limit=request.timeout,
            headers=request.headers,
        )

    def _stream_error(
        self, status: int, error: VendorError, *, where: str, started: bool
    ) -> UpstreamError:
        """Our error for a failure the vendor reported inside a 200 stream, as `where` says.

        Once a chunk was yielded it is a broken stream, unless it is a content refusal: that
        stays one (only OpenAI's error events can say so, and they can come mid-stream).
        """
        mapped = error_for_status(
            status, error, provider=self._name, secrets=self._keys.keys, where=where
        )
        if started and not isinstance(mapped, ContentFilteredError):
            return StreamInterruptedError(f"{mapped.message} mid-stream", provider=self._name)
        return mapped

    def _cut_short(self, terminal: str) -> StreamInterruptedError:
        """The error for a stream whose body ended without its `terminal` signal."""
        return StreamInterruptedError(
            f"provider {self._name!r} ended the stream without {terminal}", provider=self._name
        )
