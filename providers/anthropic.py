"""The Anthropic Messages API adapter: `POST {base_url}/v1/messages`, unary or streamed as SSE.

This module holds only Anthropic's wire format: the pure converters, the stream decoder and
`AnthropicProvider`, an `SseAdapter` (`providers.http.adapter`). System turns travel in the
top-level `system` string, `max_tokens` is always sent (the API requires it), and a stream ends
with one `Finish` carrying the finish reason and usage (from `message_start` and
`message_delta`) once `message_stop` arrives; any other ending raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    decode_object,
    error_field,
    error_text,
    int_field,
    key_header,
    str_field,
    text_of,
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
    system: list[str] = []
    turns: list[dict[str, object]] = []
    for m in request.messages:
        if m.role in _SYSTEM_ROLES:
            system.append(text_of(m))
        else:
            role = "assistant" if m.role == "assistant" else "user"
            turns.append({"role": role, "content": text_of(m)})
    sampling = request.sampling
    body: dict[str, object] = {
        "model": request.model,
        "max_tokens": max_tokens if sampling.max_tokens is None else sampling.max_tokens,
        "messages": turns,
    }
    joined = "\n\n".join(system)
    if joined:
        body["system"] = joined
    if sampling.temperature is not None:
        body["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        body["top_p"] = sampling.top_p
    if sampling.stop:
        body["stop_sequences"] = list(sampling.stop)
    if stream:
        body["stream"] = True
    return body


def from_wire(body: object) -> Completion:
    """Convert a `message` object (its text blocks joined); raise `MalformedReplyError` if not."""
    reply = as_object(body, "reply")
    blocks = reply.get("content")
    if not isinstance(blocks, list):
        raise MalformedReplyError("reply has no content list")
    text = "".join(_block_text(as_object(block, "content block")) for block in blocks)
    return Completion(
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


# -- streams and I/O --------------------------------------------------------------------------


class StreamDecoder:
    """One stream's typed events in (`message_start`, `content_block_delta`, ...), ours out.

    `message_start` says the id and model, text blocks and `text_delta`s carry the text, and
    `message_delta` the stop reason and cumulative usage (later counts replace earlier ones);
    `message_stop` ends the stream. An `error` event is the vendor's failure.
    """

    __slots__ = ("_counts", "_stop_reason", "done")
    terminal = "message_stop"

    def __init__(self) -> None:
        self._stop_reason: str | None = None
        self._counts: dict[str, int] = {}
        self.done = False

    def feed(self, event: SSEEvent) -> Sequence[StreamEvent]:
        """The events one SSE event makes."""
        body = decode_object(event.data)
        kind = str_field(body, "type") or event.event
        if kind == "content_block_delta":
            delta = as_object(body.get("delta"), "delta")
            # Only text counts: input_json_delta, thinking_delta and the like are not ours.
            if delta.get("type") == "text_delta":
                text = str_field(delta, "text")
                if text:
                    return (TextDelta(text),)
        elif kind == "content_block_start":
            text = _block_text(as_object(body.get("content_block"), "content_block"))
            if text:
                return (TextDelta(text),)
        elif kind == "message_start":
            message = as_object(body.get("message"), "message")
            self._counts.update(usage_counts(message.get("usage")))
            id_, model = str_field(message, "id") or "", str_field(message, "model") or ""
            if id_ or model:
                return (Meta(id_, model),)
        elif kind == "message_delta":
            delta = as_object(body.get("delta", {}), "delta")
            self._stop_reason = str_field(delta, "stop_reason") or self._stop_reason
            self._counts.update(usage_counts(body.get("usage")))
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            # Anthropic reports failures inside a 200 stream (overloaded, mostly) as an event.
            details = _vendor_error(body.get("error"))
            status = _STREAM_ERROR_STATUS.get(details.type, 500)
            raise VendorStreamError(status, details, where="error event")
        return ()

    def finish(self) -> Finish | None:
        """The closing event, once `message_stop` arrived."""
        if not self.done:
            return None
        return Finish(finish_reason(self._stop_reason), usage_from_counts(self._counts))


class AnthropicProvider(SseAdapter):
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

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        return to_wire(request, max_tokens=self._max_tokens, stream=stream)

    def _from_wire(self, body: Mapping[str, object], request: ChatRequest) -> Completion:
        return from_wire(body)

    def _decoder(self, request: ChatRequest) -> StreamDecoder:
        return StreamDecoder()


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
