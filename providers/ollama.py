"""The Ollama adapter (`POST {base_url}/api/chat`), unary or streamed as NDJSON.

Ollama streams unless told otherwise, so every request says `stream` explicitly. A stream is
one JSON object per line (`application/x-ndjson`): `{"message": {"content": "<delta>"},
"done": false}` lines (or `thinking` deltas, or one whole call in `tool_calls`), then one
`"done": true` line with `done_reason` and the token counts (`prompt_eval_count`,
`eval_count`); a body that ends without it was cut. Failures are `{"error": "<text>"}`, as the
body of a non-2xx answer or as a line inside a 200 stream. Replies carry no id, so the adapter
makes one per completion (and one per tool call that comes without). A key is optional: a bare
server needs none, one behind an authenticating proxy gets it as a bearer token. The wire
format of requests and replies is `providers.ollama_wire`.

Sources: ollama/ollama docs/api.md ("Generate a chat completion") and docs.ollama.com/api/errors.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from typing import Final

from providers.base import AdapterSpec, Capabilities, ProviderSettings
from providers.errors import UpstreamBadRequestError
from providers.http.adapter import HttpAdapter
from providers.http.client import UpstreamClient, UpstreamResponse
from providers.keys import KeyPool
from providers.ollama_wire import (
    call_delta,
    calls_from_wire,
    capabilities_for,
    finish_reason_from_wire,
    from_wire,
    to_wire,
    usage_from_wire,
)
from providers.types import (
    ChatRequest,
    Completion,
    Finish,
    Meta,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
)
from providers.wire import (
    MalformedReplyError,
    UnsupportedContentError,
    VendorError,
    VendorStreamError,
    as_object,
    bearer_auth,
    decode_object,
    error_field,
    str_field,
)

KIND: Final = "ollama"
_NDJSON: Final = "application/x-ndjson"
#: The status an in-stream error line stands for: Ollama sends no code with it, and a failure
#: while generating is the server's.
_STREAM_ERROR_STATUS: Final = 500


def vendor_error(raw: bytes) -> VendorError:
    """Read Ollama's `{"error": "<text>"}`; any other body gives an empty value."""
    return _vendor_error(error_field(raw))


def _vendor_error(error: object) -> VendorError:
    return VendorError(error) if isinstance(error, str) else VendorError()


async def iter_ndjson(lines: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield the non-blank lines of an NDJSON body given as lines (such as `response.content`).

    `UpstreamResponse.content` yields whole lines however the bytes arrived, so a line split
    across network reads (or a character split inside one) comes out intact. An unterminated
    last line is yielded as it is: if it was cut, it does not parse.
    """
    async for raw in lines:
        line = raw.strip()
        if line:
            yield line


def _message(reply: Mapping[str, object]) -> Mapping[str, object]:
    message = reply.get("message")
    if message is None:  # the done line of older versions has no message
        return {}
    return as_object(message, "message")


def new_completion_id() -> str:
    """An id for a completion, which Ollama does not give: "ollama-" and 24 random hex digits."""
    return f"ollama-{uuid.uuid4().hex[:24]}"


# -- streams and I/O --------------------------------------------------------------------------


class StreamDecoder:
    """One stream's NDJSON lines in, events out; the `done` line ends it.

    Replies carry no id: the stream gets a new one, announced with its first line. A line's
    thinking, text and whole tool calls come out in that order, each call one delta numbered
    0, 1, ... across the stream. An `{"error": ...}` line is a failure after the 200 status line.
    """

    __slots__ = ("_calls", "_finish", "_id", "_model", "done")
    terminal = "its done line"

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._calls = 0
        self._finish: Finish | None = None
        self.done = False

    def feed(self, line: bytes) -> Sequence[StreamEvent]:
        """The events of one line."""
        body = decode_object(line)
        if "error" in body:
            said = _vendor_error(body["error"])
            raise VendorStreamError(_STREAM_ERROR_STATUS, said, where="error line")
        done = body.get("done")
        if not isinstance(done, bool):
            raise MalformedReplyError("stream line has no done flag")
        events: list[StreamEvent] = []
        model = str_field(body, "model") or self._model
        if not self._id or model != self._model:
            self._id, self._model = self._id or new_completion_id(), model
            events.append(Meta(self._id, model))
        message = _message(body)
        thinking = str_field(message, "thinking")
        if thinking:
            events.append(ReasoningDelta(thinking))
        text = str_field(message, "content")
        if text:
            events.append(TextDelta(text))
        for call in calls_from_wire(message):
            events.append(call_delta(call, self._calls))
            self._calls += 1
        if done:
            reason = finish_reason_from_wire(body, called=self._calls > 0)
            self._finish = Finish(reason, usage_from_wire(body))
            self.done = True
        return events

    def finish(self) -> Finish | None:
        """The closing event, once the done line arrived."""
        return self._finish


class OllamaProvider(HttpAdapter[bytes]):
    """One Ollama server; a key, when configured, goes as a bearer token."""

    _kind = KIND

    def __init__(self, settings: ProviderSettings, session: UpstreamClient, keys: KeyPool) -> None:
        super().__init__(
            settings,
            session,
            keys,
            path="/api/chat",
            read_error=vendor_error,
            auth=bearer_auth,
            stream_accept=_NDJSON,
        )

    def capabilities(self, model: str) -> Capabilities:
        """Tools (auto or none), images as data, JSON and schema formats, a seed, and the
        reasoning efforts `model` takes (`providers.ollama_wire.capabilities_for`)."""
        return capabilities_for(model)

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        try:
            return to_wire(request, stream=stream)
        except UnsupportedContentError as exc:
            raise UpstreamBadRequestError(
                f"provider {self._name!r} cannot take {exc}", provider=self._name
            ) from None

    def _from_wire(self, body: Mapping[str, object], request: ChatRequest) -> Completion:
        return from_wire(body, completion_id=new_completion_id())

    def _frames(self, response: UpstreamResponse) -> AsyncIterator[bytes]:
        return iter_ndjson(response.content)

    def _decoder(self, request: ChatRequest) -> StreamDecoder:
        return StreamDecoder()


SPEC: Final = AdapterSpec(
    kind=KIND,
    factory=OllamaProvider,
    env_prefix="OLLAMA",
    default_base_url="http://127.0.0.1:11434",
    # Whatever the server has pulled: reached as "ollama/<model>" or listed with OLLAMA_MODELS.
    default_models=(),
)
