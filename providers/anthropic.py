"""The Anthropic Messages API adapter: `POST {base_url}/v1/messages`, unary or streamed as SSE.

This module holds Anthropic's replies and streams, what a model can do (`capabilities_of`)
and `AnthropicProvider`, an `SseAdapter` (`providers.http.adapter`); the request body is
`providers.anthropic_request`. A reply's text blocks are the content, its `tool_use` blocks
the calls (ids kept), its thinking blocks the reasoning and the parts sent back next turn. A
stream ends with one `Finish` carrying the finish reason and usage (from `message_start` and
`message_delta`) once `message_stop` arrives; any other ending raises.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Final

from providers.anthropic_request import (
    STRUCTURED_FROM,
    claude_version,
    to_wire,
)
from providers.base import AdapterSpec, Capabilities, ProviderSettings, check_capabilities
from providers.errors import UpstreamBadRequestError
from providers.http.adapter import SseAdapter
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.sse import SSEEvent
from providers.types import (
    REASONING_EFFORTS,
    ChatRequest,
    Completion,
    Finish,
    Meta,
    ReasoningDelta,
    ReasoningPart,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolChoiceMode,
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
    json_arguments,
    key_header,
    str_field,
)

__all__ = ["KIND", "SPEC", "AnthropicProvider", "StreamDecoder", "from_wire", "to_wire"]

KIND: Final = "anthropic"
DEFAULT_VERSION: Final = "2023-06-01"
DEFAULT_MAX_TOKENS: Final = 4096
#: Our key for `usage.output_tokens_details.thinking_tokens` among the usage counts.
_THINKING_TOKENS: Final = "thinking_tokens"
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


# -- capabilities by model -------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def capabilities_of(model: str) -> Capabilities:
    """What Anthropic does with `model`, by its Claude version.

    Every Claude model takes tools (any choice, parallel use off), images (data, https URLs it
    fetches, images in tool results); there is no seed and no schema-less JSON mode. Extended
    thinking (`reasoning_effort`) is Claude 3.7 and later; structured outputs (JSON_SCHEMA)
    Claude 4.5 and later. A name that says no version (a compatible server's own) gets neither.
    """
    version = claude_version(model)
    thinks = version is not None and version >= (3, 7)
    return Capabilities(
        tools=True,
        tool_choices=frozenset(ToolChoiceMode),
        parallel_tool_calls_off=True,
        images=True,
        image_urls=True,
        tool_result_images=True,
        json_schema=version is not None and version >= STRUCTURED_FROM,
        reasoning_efforts=frozenset(REASONING_EFFORTS) if thinks else frozenset(),
    )


# -- replies ---------------------------------------------------------------------------------


def from_wire(body: object) -> Completion:
    """Convert a `message` object; raise `MalformedReplyError` if it is not one.

    Text blocks make the content, `tool_use` blocks the calls (`input` as JSON text),
    `thinking` and `redacted_thinking` blocks the reasoning and its parts.
    """
    reply = as_object(body, "reply")
    blocks = reply.get("content")
    if not isinstance(blocks, list):
        raise MalformedReplyError("reply has no content list")
    text: list[str] = []
    calls: list[ToolCall] = []
    thoughts: list[str] = []
    parts: list[ReasoningPart] = []
    for raw in blocks:
        block = as_object(raw, "content block")
        kind = block.get("type")
        if kind == "text":
            text.append(str_field(block, "text") or "")
        elif kind == "tool_use":
            calls.append(_call(block))
        elif kind == "thinking":
            thought = str_field(block, "thinking") or ""
            thoughts.append(thought)
            parts.append(ReasoningPart(thought, str_field(block, "signature") or ""))
        elif kind == "redacted_thinking":
            parts.append(ReasoningPart(redacted=str_field(block, "data") or ""))
    counts = usage_counts(reply.get("usage"))
    return Completion(
        id=str_field(reply, "id") or "",
        model=str_field(reply, "model") or "",
        content="".join(text),
        finish_reason=finish_reason(str_field(reply, "stop_reason"), called=bool(calls)),
        usage=usage_from_counts(counts),
        tool_calls=tuple(calls),
        reasoning="".join(thoughts),
        reasoning_parts=tuple(parts),
    )


def _call(block: Mapping[str, object]) -> ToolCall:
    """A `tool_use` block as our call; its `input` object as JSON text ("{}" for none)."""
    call_id, name = str_field(block, "id"), str_field(block, "name")
    if not call_id or not name:
        raise MalformedReplyError("tool_use block has no id or name")
    raw = block.get("input")
    arguments = json_arguments(None if raw is None else as_object(raw, "tool_use input"))
    return ToolCall(call_id, name, arguments)


def finish_reason(stop_reason: str | None, *, called: bool = False) -> str:
    """Our finish reason for Anthropic's `stop_reason` (None, or one we do not know: "stop");
    "tool_calls" for an answer that called tools and was not cut off or refused."""
    ours = _FINISH_REASONS.get(stop_reason or "", "stop")
    return "tool_calls" if called and ours == "stop" else ours


def usage_counts(raw: object) -> dict[str, int]:
    """The token counts a `usage` object reports, leaving out absent and null ones."""
    if raw is None:
        return {}
    usage = as_object(raw, "usage")
    counts = {key: int_field(usage, key) for key in _USAGE_FIELDS if usage.get(key) is not None}
    details = usage.get("output_tokens_details")
    if details is not None:
        thinking = as_object(details, "output_tokens_details").get("thinking_tokens")
        if thinking is not None:
            counts[_THINKING_TOKENS] = int_field({"thinking_tokens": thinking}, "thinking_tokens")
    return counts


def usage_from_counts(counts: Mapping[str, int]) -> Usage:
    """Our `Usage`: prompt tokens are uncached input plus cache reads plus cache writes."""
    cached = counts.get("cache_read_input_tokens", 0)
    created = counts.get("cache_creation_input_tokens", 0)
    prompt = counts.get("input_tokens", 0) + cached + created
    completion = counts.get("output_tokens", 0)
    reasoning = counts.get(_THINKING_TOKENS, 0)
    return Usage(prompt, completion, prompt + completion, cached, created, reasoning)


def vendor_error(raw: bytes) -> VendorError:
    """Read `{"type": "error", "error": {"type", "message"}}`; other bodies give an empty value."""
    return _vendor_error(error_field(raw))


def _vendor_error(error: object) -> VendorError:
    if not isinstance(error, dict):
        return VendorError()
    return VendorError(error_text(error.get("message")), error_text(error.get("type")))


# -- streams and I/O --------------------------------------------------------------------------


class StreamDecoder:
    """One stream's typed events in (`message_start`, `content_block_delta`, ...), ours out.

    `message_start` says the id and model; `text` blocks and `text_delta`s carry the text;
    `thinking` blocks their `thinking_delta`s and one `signature_delta`, `redacted_thinking`
    blocks their data whole; a `tool_use` block starts a call (its id and name) numbered in
    order of appearance (Anthropic's block index counts text and thinking blocks too), and its
    `input_json_delta`s are the argument fragments ("{}" at its end when none came).
    `message_delta` says the stop reason and cumulative usage (later counts replace earlier
    ones); `message_stop` ends the stream. An `error` event is the vendor's failure.
    """

    __slots__ = ("_calls", "_counts", "_stop_reason", "_tool_blocks", "done")
    terminal = "message_stop"

    def __init__(self) -> None:
        self._stop_reason: str | None = None
        self._counts: dict[str, int] = {}
        #: Open tool_use blocks: block index -> [our call index, whether arguments came].
        self._tool_blocks: dict[int, list[int]] = {}
        self._calls = 0
        self.done = False

    def feed(self, event: SSEEvent) -> Sequence[StreamEvent]:
        """The events one SSE event makes."""
        body = decode_object(event.data)
        kind = str_field(body, "type") or event.event
        if kind == "content_block_delta":
            return self._delta(body)
        if kind == "content_block_start":
            return self._start(body)
        if kind == "content_block_stop":
            return self._stop(body)
        if kind == "message_start":
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
        reason = finish_reason(self._stop_reason, called=self._calls > 0)
        return Finish(reason, usage_from_counts(self._counts))

    def _start(self, body: Mapping[str, object]) -> Sequence[StreamEvent]:
        block = as_object(body.get("content_block"), "content_block")
        kind = block.get("type")
        if kind == "text":
            text = str_field(block, "text")
            return (TextDelta(text),) if text else ()
        if kind == "tool_use":
            call = _call(block)
            self._tool_blocks[int_field(body, "index")] = [self._calls, call.arguments != "{}"]
            self._calls += 1
            arguments = "" if call.arguments == "{}" else call.arguments
            return (ToolCallDelta(self._calls - 1, call.id, call.name, arguments),)
        if kind == "thinking":
            text, signature = str_field(block, "thinking"), str_field(block, "signature")
            return (ReasoningDelta(text or "", signature or ""),) if text or signature else ()
        if kind == "redacted_thinking":
            return (ReasoningDelta(redacted=str_field(block, "data") or ""),)
        return ()

    def _delta(self, body: Mapping[str, object]) -> Sequence[StreamEvent]:
        delta = as_object(body.get("delta"), "delta")
        kind = delta.get("type")
        if kind == "text_delta":
            text = str_field(delta, "text")
            return (TextDelta(text),) if text else ()
        if kind == "input_json_delta":
            fragment = str_field(delta, "partial_json")
            call = self._tool_blocks.get(int_field(body, "index"))
            if not fragment or call is None:
                return ()
            call[1] = True
            return (ToolCallDelta(call[0], arguments=fragment),)
        if kind == "thinking_delta":
            text = str_field(delta, "thinking")
            return (ReasoningDelta(text),) if text else ()
        if kind == "signature_delta":
            signature = str_field(delta, "signature")
            return (ReasoningDelta(signature=signature),) if signature else ()
        return ()  # citations and the like are not ours

    def _stop(self, body: Mapping[str, object]) -> Sequence[StreamEvent]:
        call = self._tool_blocks.pop(int_field(body, "index"), None)
        if call is not None and not call[1]:
            return (ToolCallDelta(call[0], arguments="{}"),)  # a call without arguments
        return ()


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

    def capabilities(self, model: str) -> Capabilities:
        """What the deployment can do with `model` (`capabilities_of`)."""
        return capabilities_of(model)

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        """The request body, or `UpstreamBadRequestError` for what Anthropic would refuse.

        The gateway checks capabilities before it plans a call; checking again here keeps
        anything this adapter cannot honour from being dropped when it is called directly.
        """
        problem = check_capabilities(request, capabilities_of(request.model), self._name)
        if problem is not None:
            raise UpstreamBadRequestError(problem, provider=self._name)
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
