"""The Cohere v2 Chat adapter: `POST {base_url}/v2/chat` with a bearer key, unary or SSE.

This module holds only Cohere's wire format: the pure converters (`to_wire`, `from_wire`,
`usage_from_wire`, `vendor_error`) and `CohereProvider`, an `HttpAdapter` (`providers.adapter`)
that adds only its stream loop. Cohere's replies name no model, so the requested one is
reported. Usage is what Cohere bills (`billed_units`), falling back to its raw `tokens` counts.
A stream is typed events (`message-start`, `content-delta`, ..., `message-end`), typed by the
data's `type` field or else the SSE `event:` line; only `message-end` ends it normally.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Final

from gateway.errors import StreamInterruptedError, UpstreamUnavailableError
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
from providers.sse import SSEEvent, iter_sse_events
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

KIND: Final = "cohere"
_ROLES: Final[Mapping[str, str]] = {"developer": "system"}
_FINISH_REASONS: Final[Mapping[str, str]] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
#: Cohere ends a generation that failed on its side with these (ERROR; TIMEOUT, which its schema
#: lists without more words) instead of an HTTP error, possibly mid-stream: nothing usable came
#: back, so it is an upstream failure to retry or fall back from, not a reply.
_FAILED_FINISHES: Final = frozenset({"ERROR", "TIMEOUT"})
#: Statuses that mean this key cannot be used: 401/403, 402 (the key's billing cap is reached)
#: and 498 (Cohere's "invalid token"). The key rests and the error is an auth error.
_KEY_REJECTED_STATUSES: Final = frozenset({401, 402, 403, 498})


# -- pure converters ---------------------------------------------------------------------------


def to_wire(request: ChatRequest, *, stream: bool) -> dict[str, object]:
    """Build the v2 Chat request body, sending only the parameters that are set."""
    body: dict[str, object] = {
        "model": request.model,
        "messages": [
            {"role": _ROLES.get(m.role, m.role), "content": m.content} for m in request.messages
        ],
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.top_p is not None:
        body["p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if stream:
        body["stream"] = True
    return body


def from_wire(body: object, *, model: str, provider: str) -> ChatResponse:
    """Convert a v2 Chat reply; raise `MalformedReplyError` if it is not one.

    A generation Cohere reports as failed raises `UpstreamUnavailableError` naming `provider`.
    """
    reply = as_object(body, "reply")
    message = as_object(reply.get("message"), "message")
    reason = str_field(reply, "finish_reason")
    if reason in _FAILED_FINISHES:
        raise generation_failed(provider, reason, started=False)
    return ChatResponse(
        id=str_field(reply, "id") or "",
        model=model,
        content=_text_of(message.get("content")),
        finish_reason=finish_reason_from_wire(reason),
        usage=usage_from_wire(reply.get("usage")) or Usage(),
    )


def finish_reason_from_wire(reason: str | None) -> str:
    """Our finish reason for Cohere's; one it may add later passes through in lower case."""
    return "stop" if reason is None else _FINISH_REASONS.get(reason, reason.lower())


def usage_from_wire(raw: object) -> Usage | None:
    """Convert a `usage` object (None when absent): billed units, else the raw token counts."""
    if raw is None:
        return None
    usage = as_object(raw, "usage")
    billed = usage.get("billed_units")
    counts = as_object(billed if billed is not None else usage.get("tokens") or {}, "usage counts")
    prompt, completion = _count(counts, "input_tokens"), _count(counts, "output_tokens")
    return Usage(prompt, completion, prompt + completion, _count(usage, "cached_tokens"))


def generation_failed(provider: str, reason: str, *, started: bool) -> UpstreamUnavailableError:
    """The error for a generation Cohere ended as failed (its text, like a 5xx body, unquoted)."""
    what = f"provider {provider!r} failed to answer (finish_reason {reason})"
    if started:
        return StreamInterruptedError(f"{what} mid-stream", provider=provider)
    return UpstreamUnavailableError(what, provider=provider)


def vendor_error(raw: bytes) -> VendorError:
    """Read Cohere's `{"message": ...}` error body; any other body gives an empty value."""
    message = error_field(raw, "message")
    if not isinstance(message, str):
        return VendorError()
    return VendorError(message)


def _text_of(content: object) -> str:
    """The text items of a message's `content` list, joined (thinking items are not the reply)."""
    if not isinstance(content, list | None):
        raise MalformedReplyError("message.content is not a list")
    items = [as_object(item, "message.content item") for item in content or ()]
    return "".join(str_field(item, "text") or "" for item in items if item.get("type") == "text")


def _count(obj: Mapping[str, object], key: str) -> int:
    """A token count: Cohere's schema types them as numbers, so 12.0 is read as 12."""
    value = obj.get(key)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int_field(obj, key)


def _nested(obj: Mapping[str, object], *keys: str) -> Mapping[str, object]:
    """The object at `obj[k1][k2]...`; empty where a level is absent or null."""
    for key in keys:
        value = obj.get(key)
        if value is None:
            return {}
        obj = as_object(value, key)
    return obj


# -- I/O -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _StreamState:
    """The stream's id and model, and its closing chunk once `message-end` arrived."""

    model: str
    id: str = ""
    final: ChatChunk | None = None


class CohereProvider(HttpAdapter):
    """One Cohere deployment; a 402 or 498 rejects the key just as a 401 or 403 does."""

    _kind = KIND

    def __init__(self, settings: ProviderSettings, session: UpstreamClient, keys: KeyPool) -> None:
        super().__init__(
            settings,
            session,
            keys,
            path="/v2/chat",
            read_error=vendor_error,
            auth=bearer_auth,
            key_rejected_statuses=_KEY_REJECTED_STATUSES,
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Yield text chunks, then the final chunk once `message-end` arrives; or raise."""
        state = _StreamState(model=request.model)
        with UpstreamErrorBoundary(self._name) as boundary:
            async with self._post(request, stream=True) as response:
                async for event in iter_sse_events(response.content.iter_any()):
                    chunk = self._read_event(event, state, started=boundary.started)
                    if state.final is not None:
                        break
                    if chunk is not None:
                        boundary.started = True
                        yield chunk
            if state.final is None:  # the body ended without the terminal event: it was cut
                raise self._cut_short("message-end")
        yield state.final

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        return to_wire(request, stream=stream)

    def _from_wire(self, body: Mapping[str, object], request: ChatRequest) -> ChatResponse:
        return from_wire(body, model=request.model, provider=self._name)

    def _read_event(
        self, event: SSEEvent, state: _StreamState, *, started: bool
    ) -> ChatChunk | None:
        """Apply one event to `state`; return the chunk to yield if it carries text."""
        body = decode_object(event.data)
        kind = str_field(body, "type") or event.event  # "message" (unnamed) matches no kind
        if kind == "message-start":
            state.id = str_field(body, "id") or state.id
        elif kind == "content-delta":
            content = _nested(body, "delta", "message", "content")
            text = str_field(content, "text")
            if text:
                return ChatChunk(delta=text, id=state.id, model=state.model)
        elif kind == "message-end":
            delta = _nested(body, "delta")
            reason = str_field(delta, "finish_reason")
            if reason in _FAILED_FINISHES:
                raise generation_failed(self._name, reason, started=started)
            state.final = ChatChunk(
                id=state.id,
                model=state.model,
                finish_reason=finish_reason_from_wire(reason),
                usage=usage_from_wire(delta.get("usage")),
            )
        # Tool plans and calls, citations, debug and event types Cohere adds later carry no text.
        return None


SPEC: Final = AdapterSpec(
    kind=KIND,
    factory=CohereProvider,
    env_prefix="COHERE",
    default_base_url="https://api.cohere.com",
    default_models=(
        "command-a-03-2025",
        "command-a-reasoning-08-2025",
        "command-r-plus-08-2024",
        "command-r-08-2024",
        "command-r7b-12-2024",
    ),
)
