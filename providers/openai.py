"""The OpenAI Chat Completions adapter (also any OpenAI-compatible server, such as vLLM).

It speaks `POST {base_url}/chat/completions`, unary or streamed as Server-Sent Events. This
module holds only the OpenAI wire format: the pure converters (`to_wire`, `from_wire`,
`vendor_error`), the stream decoder (one `chat.completion.chunk` in, events out) and
`OpenAIProvider`, an `SseAdapter` (`providers.http.adapter`). A stream asks for usage
(`stream_options.include_usage`) and ends with one `Finish` carrying the finish reason and usage
once `data: [DONE]` arrives; any other ending raises. Variants at other URLs with other
credential headers (`providers.azure_openai`) subclass `OpenAIProvider` rather than copy it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from providers.base import AdapterSpec, ProviderSettings
from providers.http.adapter import SseAdapter
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.sse import SSEEvent
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

KIND: Final = "openai"
_DONE: Final = b"[DONE]"
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


# -- pure converters ---------------------------------------------------------------------------


def to_wire(request: ChatRequest, *, stream: bool) -> dict[str, object]:
    """Build the Chat Completions request body, sending only the parameters that are set."""
    body: dict[str, object] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": text_of(m)} for m in request.messages],
    }
    sampling = request.sampling
    if sampling.temperature is not None:
        body["temperature"] = sampling.temperature
    if sampling.max_tokens is not None:
        body["max_tokens"] = sampling.max_tokens
    if sampling.top_p is not None:
        body["top_p"] = sampling.top_p
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def from_wire(body: object) -> Completion:
    """Convert a `chat.completion` object; raise `MalformedReplyError` if it is not one."""
    reply = as_object(body, "reply")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedReplyError("reply has no choices")
    choice = as_object(choices[0], "choices[0]")
    message = as_object(choice.get("message"), "choices[0].message")
    return Completion(
        id=str_field(reply, "id") or "",
        model=str_field(reply, "model") or "",
        content=str_field(message, "content") or "",
        finish_reason=str_field(choice, "finish_reason") or "stop",
        usage=usage_from_wire(reply.get("usage")) or Usage(),
    )


def usage_from_wire(raw: object) -> Usage | None:
    """Convert a `usage` object (None when absent); cached prompt tokens come from its details."""
    if raw is None:
        return None
    usage = as_object(raw, "usage")
    prompt, completion = int_field(usage, "prompt_tokens"), int_field(usage, "completion_tokens")
    details = usage.get("prompt_tokens_details")
    cached = 0
    if details is not None:
        cached = int_field(as_object(details, "usage details"), "cached_tokens")
    total = int_field(usage, "total_tokens") if "total_tokens" in usage else prompt + completion
    return Usage(prompt, completion, total, cached)


def vendor_error(raw: bytes) -> VendorError:
    """Read OpenAI's `{"error": {...}}` object from a body; any other body gives an empty value."""
    return _vendor_error(error_field(raw))


def _vendor_error(error: object) -> VendorError:
    if not isinstance(error, dict):
        return VendorError()
    message, kind, code = (_text(error.get(key)) for key in ("message", "type", "code"))
    return VendorError(message, kind, code, content_filtered=code in _CONTENT_FILTER_CODES)


def _text(value: object) -> str:
    """A vendor error field as text; some compatible servers send a numeric `code`."""
    return str(value) if isinstance(value, str | int) else ""


# -- streams and I/O --------------------------------------------------------------------------


class StreamDecoder:
    """One stream's `chat.completion.chunk`s in, events out.

    Each chunk repeats the id and model: a `Meta` comes only when they change. The finish
    reason and usage arrive in chunks of their own (usage last, with `choices: []`) and make the
    `Finish` once `[DONE]` has come; a server that sent [DONE] but no finish_reason finished
    normally ("stop").
    """

    __slots__ = ("_finish_reason", "_id", "_model", "_usage", "done")
    terminal = "[DONE]"

    def __init__(self) -> None:
        self._id = self._model = ""
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> Sequence[StreamEvent]:
        """The events of one SSE event's chunk."""
        if event.data == _DONE:
            self.done = True
            return ()
        body = decode_object(event.data)
        error = body.get("error")
        if error:
            raise _stream_fault(error)
        choices = body.get("choices")
        if not isinstance(choices, list):
            raise MalformedReplyError("stream chunk has no choices list")
        text = ""
        if choices:
            choice = as_object(choices[0], "choices[0]")
            delta = as_object(choice.get("delta", {}), "choices[0].delta")
            text = str_field(delta, "content") or ""
            reason = str_field(choice, "finish_reason")
            if reason is not None:
                self._finish_reason = reason
        usage = body.get("usage")
        if usage is not None:
            self._usage = usage_from_wire(usage)
        id_, model = str_field(body, "id") or self._id, str_field(body, "model") or self._model
        if id_ != self._id or model != self._model:
            self._id, self._model = id_, model
            return (Meta(id_, model), TextDelta(text)) if text else (Meta(id_, model),)
        return (TextDelta(text),) if text else ()

    def finish(self) -> Finish | None:
        """The closing event once [DONE] has come."""
        return Finish(self._finish_reason or "stop", self._usage) if self.done else None


def _stream_fault(error: object) -> VendorStreamError:
    """OpenAI reports some failures inside a 200 stream as an `error` object."""
    details = _vendor_error(error)
    status = 400 if details.content_filtered else 500
    return VendorStreamError(
        _STREAM_ERROR_STATUS.get(details.type, status), details, where="error event"
    )


class OpenAIProvider(SseAdapter):
    """One OpenAI (or OpenAI-compatible) deployment.

    `auth` makes a key's header (a bearer token) and `path` is where Chat Completions live under
    the base URL; `providers.azure_openai` changes both.
    """

    _kind = KIND

    def __init__(
        self,
        settings: ProviderSettings,
        session: UpstreamClient,
        keys: KeyPool,
        *,
        auth: Callable[[str], Mapping[str, str]] = bearer_auth,
        path: str = "/chat/completions",
    ) -> None:
        super().__init__(settings, session, keys, path=path, read_error=vendor_error, auth=auth)

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        return to_wire(request, stream=stream)

    def _from_wire(self, body: Mapping[str, object], request: ChatRequest) -> Completion:
        return from_wire(body)

    def _decoder(self, request: ChatRequest) -> StreamDecoder:
        return StreamDecoder()


SPEC: Final = AdapterSpec(
    kind=KIND,
    factory=OpenAIProvider,
    env_prefix="OPENAI",
    default_base_url="https://api.openai.com/v1",
    default_models=(
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "o3",
        "o4-mini",
    ),
)
