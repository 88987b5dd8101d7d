"""The OpenAI Chat Completions adapter (also any OpenAI-compatible server, such as vLLM).

It speaks `POST {base_url}/chat/completions`, unary or streamed as Server-Sent Events. This
module holds only the OpenAI wire format: the pure converters (`to_wire`, `from_wire`,
`chunk_from_wire`, `vendor_error`) and `OpenAIProvider`, an `HttpAdapter` (`providers.adapter`)
that adds only its stream loop. A stream asks for usage (`stream_options.include_usage`) and ends
with one chunk carrying `finish_reason` and usage once `data: [DONE]` arrives; any other ending
raises. Variants at other URLs with other credential headers (`providers.azure_openai`) subclass
`OpenAIProvider` rather than copy it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from providers.base import (
    AdapterSpec,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ProviderSettings,
    Usage,
)
from providers.http.adapter import HttpAdapter
from providers.http.client import UpstreamClient
from providers.http.endpoint import UpstreamErrorBoundary
from providers.keys import KeyPool
from providers.sse import iter_sse_events
from providers.wire import (
    MalformedReplyError,
    VendorError,
    as_object,
    bearer_auth,
    decode_object,
    error_field,
    int_field,
    str_field,
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
    reply = as_object(body, "reply")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedReplyError("reply has no choices")
    choice = as_object(choices[0], "choices[0]")
    message = as_object(choice.get("message"), "choices[0].message")
    return ChatResponse(
        id=str_field(reply, "id") or "",
        model=str_field(reply, "model") or "",
        content=str_field(message, "content") or "",
        finish_reason=str_field(choice, "finish_reason") or "stop",
        usage=usage_from_wire(reply.get("usage")) or Usage(),
    )


def chunk_from_wire(body: Mapping[str, object]) -> ChatChunk:
    """Convert a `chat.completion.chunk` object; its delta is empty for role/finish/usage chunks."""
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise MalformedReplyError("stream chunk has no choices list")
    delta, finish_reason = "", None
    if choices:
        choice = as_object(choices[0], "choices[0]")
        delta = str_field(as_object(choice.get("delta", {}), "choices[0].delta"), "content") or ""
        finish_reason = str_field(choice, "finish_reason")
    return ChatChunk(
        delta=delta,
        id=str_field(body, "id") or "",
        model=str_field(body, "model") or "",
        finish_reason=finish_reason,
        usage=usage_from_wire(body.get("usage")),
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


# -- I/O -----------------------------------------------------------------------------------------


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
        if not piece.delta:
            return None
        if piece.finish_reason is None and piece.usage is None and piece.id and piece.model:
            return piece  # already just text with its ids
        return ChatChunk(delta=piece.delta, id=self.id, model=self.model)

    def final(self) -> ChatChunk:
        """The closing chunk; a server that sent [DONE] but no finish_reason finished normally."""
        return ChatChunk(
            id=self.id,
            model=self.model,
            finish_reason=self.finish_reason or "stop",
            usage=self.usage,
        )


class OpenAIProvider(HttpAdapter):
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

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Yield text chunks, then the final chunk once `data: [DONE]` arrives; or raise."""
        state = _StreamState()
        with UpstreamErrorBoundary(self._name) as boundary:
            async with self._post(request, stream=True) as response:
                async for event in iter_sse_events(response.content.iter_any()):
                    if event.data == _DONE:
                        break
                    chunk = state.feed(self._read_event(event.data, boundary.started))
                    if chunk is not None:
                        boundary.started = True
                        yield chunk
                else:  # the body ended without the terminal marker: the stream was cut
                    raise self._cut_short("[DONE]")
        yield state.final()

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        return to_wire(request, stream=stream)

    def _from_wire(self, body: Mapping[str, object], request: ChatRequest) -> ChatResponse:
        return from_wire(body)

    def _read_event(self, data: bytes, started: bool) -> ChatChunk:
        body = decode_object(data)
        error = body.get("error")
        if not error:
            return chunk_from_wire(body)
        # OpenAI reports some failures inside a 200 stream as an `error` object.
        details = _vendor_error(error)
        status = 400 if details.content_filtered else 500
        status = _STREAM_ERROR_STATUS.get(details.type, status)
        raise self._stream_error(status, details, where="error event", started=started)


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
