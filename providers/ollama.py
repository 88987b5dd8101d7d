"""The Ollama adapter (`POST {base_url}/api/chat`), unary or streamed as NDJSON.

Ollama streams unless told otherwise, so every request says `stream` explicitly. A stream is
one JSON object per line (`application/x-ndjson`): `{"message": {"content": "<delta>"},
"done": false}` lines, then one `"done": true` line with `done_reason` and the token counts
(`prompt_eval_count`, `eval_count`); a body that ends without it was cut. Failures are
`{"error": "<text>"}`, as the body of a non-2xx answer or as a line inside a 200 stream.
Replies carry no id, so the adapter makes one per completion. A key is optional: a bare
server needs none, one behind an authenticating proxy gets it as a bearer token.

Sources: ollama/ollama docs/api.md ("Generate a chat completion") and docs.ollama.com/api/errors.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from typing import Final

from providers.base import AdapterSpec, ProviderSettings
from providers.http.adapter import HttpAdapter
from providers.http.client import UpstreamClient, UpstreamResponse
from providers.keys import KeyPool
from providers.types import (
    ChatRequest,
    Completion,
    Finish,
    Meta,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.wire import (
    MalformedReplyError,
    VendorError,
    VendorStreamError,
    as_object,
    bearer_auth,
    decode_object,
    error_field,
    int_field,
    str_field,
    text_of,
)

KIND: Final = "ollama"
_NDJSON: Final = "application/x-ndjson"
#: Our role names that Ollama spells differently (it knows system/user/assistant/tool).
_ROLES: Final[Mapping[str, str]] = {"developer": "system"}
#: Ollama's `done_reason` in our words. "load" and "unload" answer a request without messages
#: (Ollama loads or unloads the model and generates nothing): nothing was cut short, so "stop".
#: Values not listed pass through as the vendor said them.
_FINISH_REASONS: Final[Mapping[str, str]] = {
    "stop": "stop",
    "length": "length",
    "load": "stop",
    "unload": "stop",
}
#: The status an in-stream error line stands for: Ollama sends no code with it, and a failure
#: while generating is the server's.
_STREAM_ERROR_STATUS: Final = 500


# -- pure converters ---------------------------------------------------------------------------


def to_wire(request: ChatRequest, *, stream: bool) -> dict[str, object]:
    """Build the `/api/chat` body; `options` carries only the parameters that are set."""
    sampling = request.sampling
    options: dict[str, object] = {}
    if sampling.temperature is not None:
        options["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        options["top_p"] = sampling.top_p
    if sampling.max_tokens is not None:
        options["num_predict"] = sampling.max_tokens
    if sampling.stop:
        options["stop"] = list(sampling.stop)
    body: dict[str, object] = {
        "model": request.model,
        "messages": [
            {"role": _ROLES.get(m.role, m.role), "content": text_of(m)} for m in request.messages
        ],
        "stream": stream,  # always explicit: Ollama's default is to stream
    }
    if options:
        body["options"] = options
    return body


def from_wire(body: object, *, completion_id: str) -> Completion:
    """Convert a whole `/api/chat` reply; it has no id of its own, so the caller gives one."""
    reply = as_object(body, "reply")
    message = as_object(reply.get("message"), "message")
    return Completion(
        id=completion_id,
        model=str_field(reply, "model") or "",
        content=str_field(message, "content") or "",
        finish_reason=finish_reason_from_wire(reply),
        usage=usage_from_wire(reply),
    )


def finish_reason_from_wire(reply: Mapping[str, object]) -> str:
    """`done_reason` in our words; a server too old to send it finished normally: "stop"."""
    reason = str_field(reply, "done_reason") or "stop"
    return _FINISH_REASONS.get(reason, reason)


def usage_from_wire(reply: Mapping[str, object]) -> Usage:
    """Token counts of a finished reply; Ollama reports no cached tokens."""
    prompt, completion = int_field(reply, "prompt_eval_count"), int_field(reply, "eval_count")
    return Usage(prompt, completion, prompt + completion)


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


def _content(reply: Mapping[str, object]) -> str:
    message = reply.get("message")
    if message is None:  # the done line of older versions has no message
        return ""
    return str_field(as_object(message, "message"), "content") or ""


def new_completion_id() -> str:
    """An id for a completion, which Ollama does not give: "ollama-" and 24 random hex digits."""
    return f"ollama-{uuid.uuid4().hex[:24]}"


# -- streams and I/O --------------------------------------------------------------------------


class StreamDecoder:
    """One stream's NDJSON lines in, events out; the `done` line ends it.

    Replies carry no id: the stream gets a new one, announced with its first line. An
    `{"error": ...}` line is a failure after the 200 status line.
    """

    __slots__ = ("_finish", "_id", "_model", "done")
    terminal = "its done line"

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
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
        text = _content(body)
        if text:
            events.append(TextDelta(text))
        if done:
            self._finish = Finish(finish_reason_from_wire(body), usage_from_wire(body))
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

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        return to_wire(request, stream=stream)

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
