"""`HttpAdapter`: the base of every HTTP+JSON provider adapter, and the one stream loop.

On the deployment's name, URL and `JsonEndpoint` (`HttpDeployment`), it owns what every vendor's
adapter would otherwise repeat: the kind, `complete` (POST, read, convert, all inside the
`UpstreamErrorBoundary`), `stream` (POST, read the vendor's frames, hand each to the vendor's
`StreamDecoder`, yield its events), `aclose`, and the errors a broken stream raises. A vendor
module subclasses it (`SseAdapter` for Server-Sent Events) with only its wire format: its kind,
its request body, its reply, and its stream decoder (vendor frame in, events out).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Generic, Protocol, TypeVar

from providers.base import TEXT_ONLY, Capabilities
from providers.errors import (
    ContentFilteredError,
    StreamInterruptedError,
    UpstreamError,
)
from providers.http.client import UpstreamResponse
from providers.http.deployment import HttpDeployment
from providers.http.endpoint import UpstreamErrorBoundary
from providers.sse import SSEEvent, iter_sse_events
from providers.types import ChatRequest, Completion, Finish, Meta, StreamEvent
from providers.wire import (
    RefusedRequestError,
    UnsupportedContentError,
    VendorStreamError,
    decode_object,
    error_for_status,
    refused_request,
    unsupported_content,
)

FrameT = TypeVar("FrameT")
FrameT_contra = TypeVar("FrameT_contra", contravariant=True)


class StreamDecoder(Protocol[FrameT_contra]):
    """One stream's vendor frames in, our events out: a small state machine per stream.

    `feed` returns the events a frame makes (`Meta` when the vendor says its id or model, text
    and other deltas), or raises: `VendorStreamError` for a failure the vendor reported in the
    stream, `MalformedReplyError` for a frame off its schema, or an `UpstreamError`. `done`
    turns true at the vendor's terminal signal; `finish()`, once the body has ended or the
    terminal signal came, is the closing `Finish`, or None when the stream was cut short of
    `terminal`.
    """

    #: What ends the stream normally, as the cut-short error names it ("[DONE]").
    terminal: str

    @property
    def done(self) -> bool:
        """Whether the vendor's terminal signal has come (nothing after it is read)."""
        ...

    def feed(self, frame: FrameT_contra) -> Sequence[StreamEvent]:
        """The events one frame makes (often none or one)."""
        ...

    def finish(self) -> Finish | None:
        """The closing event, or None if the stream ended without its terminal signal."""
        ...


class HttpAdapter(HttpDeployment, ABC, Generic[FrameT]):
    """One deployment of an HTTP+JSON chat vendor (see `HttpDeployment` for what it is handed).

    A subclass supplies `_kind`, the request body (`_to_wire`), the whole reply (`_from_wire`),
    how a stream body splits into frames (`_frames`) and a `StreamDecoder` per stream
    (`_decoder`). A vendor that names the model in the URL overrides `_url_for` and puts it
    there with `_model_segment`.
    """

    @property
    def kind(self) -> str:
        """The adapter kind, such as "openai"."""
        return self._kind

    def capabilities(self, model: str) -> Capabilities:
        """What the deployment can do with `model`: text only, unless the adapter says more."""
        return TEXT_ONLY

    async def complete(self, request: ChatRequest) -> Completion:
        """Return one whole completion or raise an `UpstreamError`."""
        with UpstreamErrorBoundary(self._name):
            raw = await self._endpoint.fetch(
                self._url_for(request, stream=False),
                self._body(request, stream=False),
                time_limit=request.io.timeout,
                headers=request.io.headers,
            )
            return self._from_wire(decode_object(raw), request)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Yield the answer's events, then one `Finish` once the vendor ended it; or raise.

        A consumer that stops early should close the iterator (`contextlib.aclosing`): that is
        what aborts the upstream request. Cancelling a task awaiting the next event does it too.
        The `Finish` comes once the response is done with, so its connection goes back to the
        pool even when the consumer stops right after it.
        """
        decoder = self._decoder(request)
        with UpstreamErrorBoundary(self._name) as boundary:
            async with self._post(request, stream=True) as response:
                async for frame in self._frames(response):
                    try:
                        events = decoder.feed(frame)
                    except VendorStreamError as fault:
                        raise self._stream_error(fault, started=boundary.started) from None
                    for event in events:
                        if not boundary.started and type(event) is not Meta:
                            boundary.started = True  # from now on a failure breaks the stream
                        yield event
                    if decoder.done:
                        break
            finish = decoder.finish()
            if finish is None:  # the body ended without the terminal signal: it was cut
                raise self._cut_short(decoder.terminal)
        yield finish

    async def aclose(self) -> None:
        """Nothing to release: the HTTP session belongs to the caller."""

    @abstractmethod
    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        """The vendor's request body for `request`."""

    @abstractmethod
    def _from_wire(self, body: Mapping[str, object], request: ChatRequest) -> Completion:
        """The whole completion in the vendor's `body`; `MalformedReplyError` if it is not one."""

    @abstractmethod
    def _frames(self, response: UpstreamResponse) -> AsyncIterator[FrameT]:
        """The frames of a stream's body (SSE events, NDJSON lines...)."""

    @abstractmethod
    def _decoder(self, request: ChatRequest) -> StreamDecoder[FrameT]:
        """A fresh decoder for one stream of `request`."""

    def _url_for(self, request: ChatRequest, *, stream: bool) -> str:
        """Where `request` goes: the deployment's one URL, for every model and both modes."""
        return self._url

    def _body(self, request: ChatRequest, *, stream: bool) -> object:
        """The request body, or `UpstreamBadRequestError` for content this adapter cannot send
        or a request its vendor would refuse."""
        try:
            return self._to_wire(request, stream=stream)
        except UnsupportedContentError as exc:
            raise unsupported_content(exc, provider=self._name, kind=self._kind) from None
        except RefusedRequestError as refused:
            raise refused_request(refused, provider=self._name) from None

    def _post(
        self, request: ChatRequest, *, stream: bool
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        return self._endpoint.post(
            self._url_for(request, stream=stream),
            self._body(request, stream=stream),
            stream=stream,
            time_limit=request.io.timeout,
            headers=request.io.headers,
        )

    def _stream_error(self, fault: VendorStreamError, *, started: bool) -> UpstreamError:
        """Our error for a failure the vendor reported inside a 200 stream.

        Once an event was yielded it is a broken stream, unless it is a content refusal: that
        stays one (only OpenAI's error events can say so, and they can come mid-stream).
        """
        mapped = error_for_status(
            fault.status,
            fault.error,
            provider=self._name,
            secrets=self._keys.keys,
            where=fault.where,
        )
        if started and not isinstance(mapped, ContentFilteredError):
            return StreamInterruptedError(f"{mapped.message} mid-stream", provider=self._name)
        return mapped

    def _cut_short(self, terminal: str) -> StreamInterruptedError:
        """The error for a stream whose body ended without its `terminal` signal."""
        return StreamInterruptedError(
            f"provider {self._name!r} ended the stream without {terminal}", provider=self._name
        )


class SseAdapter(HttpAdapter[SSEEvent]):
    """An `HttpAdapter` whose streams are Server-Sent Events."""

    def _frames(self, response: UpstreamResponse) -> AsyncIterator[SSEEvent]:
        return iter_sse_events(response.content.iter_any())
