"""The Anthropic Messages API adapter: `POST {base_url}/v1/messages`, unary or streamed as SSE.

This module holds only Anthropic's wire format: the pure converters and `AnthropicProvider`, an
`HttpAdapter` (`providers.adapter`) that adds only its stream loop. System turns travel in the
top-level `system` string, `max_tokens` is always sent (the API requires it), and a stream ends
with one chunk carrying `finish_reason` and usage (from `message_start` and `message_delta`) once
`message_stop` arrives; any other ending raises.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.errors import UpstreamError
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
    decode_object,
    error_field,
    error_text,
    int_field,
    key_header,
    str_field,
)

KIND: Final = "anthropic"
DEFAULT_VERSION: Final = "2023-06-01"
DEFAULT_MAX_TOKENS: Final = 4096
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
#: Anthropic's `stop_reason` in our finish-reason vocabulary; anything else reads as "stop".
_FINISH_REASONS: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
#: The HTTP status an in-stream `error` event stands for, by its error `type` (others: 500).
_STREAM_ERROR_STATUS: Final[Mapping[str, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "overloaded_error": 529,
}
#: The token counts of a `usage` object; together they make up our `Usage`.
_USAGE_FIELDS: Final = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
)


#: Anthropic's credential header (none for a keyless compatible server).
api_key_auth: Final = key_header("x-api-key")


# -- pure converters ---------------------------------------------------------------------------


def to_wire(request: ChatRequest, *, max_tokens: int, stream: bool) -> dict[str, object]:
    """Build the Messages request body; `max_tokens` applies when the request sets none.

    System and developer turns are joined by blank lines into `system` (the API has no such
    message role). Tool results become user text: a `tool_result` block needs a `tool_use_id`.
    """
    system = "\n\n".join(m.content for m in request.messages if m.role in _SYSTEM_ROLES)
    turns = [
        {"role": "assistant" if m.role == "assistant" else "user", "content": m.content}
        for m in request.messages
        if m.role not in _SYSTEM_ROLES
    ]
    body: dict[str, object] = {
        "model": request.model,
        "max_tokens": max_tokens if request.max_tokens is None else request.max_tokens,
        "messages": turns,
    }
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if stream:
        body["stream"] = True
    return body


def from_wire(body: object) -> ChatResponse:
    """Convert a `message` object (its text blocks joined); raise `MalformedReplyError` if not."""
    reply = as_object(body, "reply")
    blocks = reply.get("content")
    if not isinstance(blocks, list):
        raise MalformedReplyError("reply has no content list")
    text = "".join(_block_text(as_object(block, "content block")) for block in blocks)
    return ChatResponse(
        id=str_field(reply, "id") or "",
        model=str_field(reply, "model") or "",
        content=text,
        finish_reason=finish_reason(str_field(reply, "stop_reason")),
        usage=usage_from_counts(usage_counts(reply.get("usage"))),
    )


def finish_reason(stop_reason: str | None) -> str:
    """Our finish reason for Anthropic's `stop_reason` (None, or one we do not know: "stop")."""
    return _FINISH_REASONS.get(stop_reason or "", "stop")


def usage_counts(raw: object) -> dict[str, int]:
    """The token counts a `usage` object reports, leaving out absent and null ones."""
    if raw is None:
        return {}
    usage = as_object(raw, "usage")
    return {key: int_field(usage, key) for key in _USAGE_FIELDS if usage.get(key) is not None}


def usage_from_counts(counts: Mapping[str, int]) -> Usage:
    """Our `Usage`: prompt tokens are uncached input plus cache reads plus cache writes."""
    cached = counts.get("cache_read_input_tokens", 0)
    created = counts.get("cache_creation_input_tokens", 0)
    prompt = counts.get("input_tokens", 0) + cached + created
    completion = counts.get("output_tokens", 0)
    return Usage(prompt, completion, prompt + completion, cached, created)


def vendor_error(raw: bytes) -> VendorError:
    """Read `{"type": "error", "error": {"type", "message"}}`; other bodies give an empty value."""
    return _vendor_error(error_field(raw))


def _vendor_error(error: object) -> VendorError:
    if not isinstance(error, dict):
        return VendorError()
    return VendorError(error_text(error.get("message")), error_text(error.get("type")))


def _block_text(block: Mapping[str, object]) -> str:
    """The text of a `text` block; other blocks (tool_use, thinking...) carry none of ours."""
    return (str_field(block, "text") or "") if block.get("type") == "text" else ""


# -- I/O -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _StreamState:
    """What a stream has said so far that only matters at its end."""

    id: str = ""
    model: str = ""
    stop_reason: str | None = None
    #: Token counts so far; later events' cumulative counts replace earlier ones.
    counts: dict[str, int] = field(default_factory=dict)

    def feed(self, kind: str, body: Mapping[str, object]) -> str:
        """Take in one event; return the text it adds ("" for none or an unknown event)."""
        if kind == "message_start":
            message = as_object(body.get("message"), "message")
            self.id = str_field(message, "id") or self.id
            self.model = str_field(message, "model") or self.model
            self.counts.update(usage_counts(message.get("usage")))
        elif kind == "content_block_start":
            return _block_text(as_object(body.get("content_block"), "content_block"))
        elif kind == "content_block_delta":
            delta = as_object(body.get("delta"), "delta")
            # Only text counts: input_json_delta, thinking_delta and the like are not ours.
            return (str_field(delta, "text") or "") if delta.get("type") == "text_delta" else ""
        elif kind == "message_delta":
            delta = as_object(body.get("delta", {}), "delta")
            self.stop_reason = str_field(delta, "stop_reason") or self.stop_reason
            self.counts.update(usage_counts(body.get("usage")))
        return ""

    def final(self) -> ChatChunk:
        """The closing chunk, once `message_stop` arrived."""
        return ChatChunk(
            id=self.id,
            model=self.model,
            finish_reason=finish_reason(self.stop_reason),
            usage=usage_from_counts(self.counts),
        )


class AnthropicProvider(HttpAdapter):
    """One Anthropic deployment.

    Options: `version` (the `anthropic-version` header) and `max_tokens` (sent when a request
    sets none).
    """

    _kind = KIND

    def __init__(self, settings: ProviderSettings, session: UpstreamClient, keys: KeyPool) -> None:
        super().__init__(
            settings,
            session,
            keys,
            path="/v1/messages",
            read_error=vendor_error,
            auth=api_key_auth,
            headers={"anthropic-version": settings.option("version", DEFAULT_VERSION)},
        )
        self._max_tokens = int(settings.number_option("max_tokens", DEFAULT_MAX_TOKENS))

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Yield text chunks, then the final chunk once `message_stop` arrives; or raise."""
        state = _StreamState()
        with UpstreamErrorBoundary(self._name) as boundary:
            async with self._post(request, stream=True) as response:
                async for event in iter_sse_events(response.content.iter_any()):
                    body = decode_object(event.data)
                    kind = str_field(body, "type") or event.event
                    if kind == "message_stop":
                        break
                    if kind == "error":
                        raise self._error_event(body, started=boundary.started)
                    text = state.feed(kind, body)
                    if text:
                        boundary.started = True
                        yield ChatChunk(delta=text, id=state.id, model=state.model)
                else:  # the body ended without the terminal event: the stream was cut
                    raise self._cut_short("message_stop")
        yield state.final()

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        return to_wire(request, max_tokens=self._max_tokens, stream=stream)

    def _from_wire(self, body: Mapping[str, object], request: ChatRequest) -> ChatResponse:
        return from_wire(body)

    def _error_event(self, body: Mapping[str, object], *, started: bool) -> UpstreamError:
        # Anthropic reports failures inside a 200 stream (overloaded, mostly) as an error event.
        details = _vendor_error(body.get("error"))
        status = _STREAM_ERROR_STATUS.get(details.type, 500)
        return self._stream_error(status, details, where="error event", started=started)


SPEC: Final = AdapterSpec(
    kind=KIND,
    factory=AnthropicProvider,
    env_prefix="ANTHROPIC",
    default_base_url="https://api.anthropic.com",
    default_models=(
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-opus-4-5-20251101",
        "claude-opus-4-5",
        "claude-sonnet-4-5-20250929",
        "claude-sonnet-4-5",
        "claude-haiku-4-5-20251001",
        "claude-haiku-4-5",
        "claude-opus-4-1-20250805",
        "claude-opus-4-1",
        "claude-sonnet-4-20250514",
        "claude-sonnet-4-0",
    ),
    env_options={"version": "VERSION", "max_tokens": "MAX_TOKENS"},
    number_options=frozenset({"max_tokens"}),
)
