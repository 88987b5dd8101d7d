"""The Cohere v2 Chat adapter: `POST {base_url}/v2/chat` with a bearer key, unary or SSE.

This module holds only Cohere's wire format: the pure converters (`to_wire`, `from_wire`,
`usage_from_wire`, `vendor_error`), the stream decoder and `CohereProvider`, an `SseAdapter`
(`providers.http.adapter`). Cohere's replies name no model, so the requested one is
reported. Usage is what Cohere bills (`billed_units`), falling back to its raw `tokens` counts.
A stream is typed events (`message-start`, `content-delta`, ..., `message-end`), typed by the
data's `type` field or else the SSE `event:` line; only `message-end` ends it normally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from providers.base import AdapterSpec, ProviderSettings
from providers.errors import StreamInterruptedError, UpstreamUnavailableError
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
            {"role": _ROLES.get(m.role, m.role), "content": text_of(m)} for m in request.messages
        ],
    }
    sampling = request.sampling
    if sampling.temperature is not None:
        body["temperature"] = sampling.temperature
    if sampling.max_tokens is not None:
        body["max_tokens"] = sampling.max_tokens
    if sampling.top_p is not None:
        body["p"] = sampling.top_p
    if sampling.stop:
        body["stop_sequences"] = list(sampling.stop)
    if stream:
        body["stream"] = True
    return body


def from_wire(body: object, *, model: str, provider: str) -> Completion:
    """Convert a v2 Chat reply; raise `MalformedReplyError` if it is not one.

    A generation Cohere reports as failed raises `UpstreamUnavailableError` naming `provider`.
    """
    reply = as_object(body, "reply")
    message = as_object(reply.get("message"), "message")
    reason = str_field(reply, "finish_reason")
    if reason in _FAILED_FINISHES:
        raise generation_failed(provider, reason, started=False)
    return Completion(
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


# -- streams and I/O --------------------------------------------------------------------------


class StreamDecoder:
    """One stream's typed events in (`message-start`, `content-delta`, ..., `message-end`), ours
    out. Replies name no model: the requested one is announced with the first event."""

    __slots__ = ("_announced", "_finish", "_model", "done")
    terminal = "message-end"

    def __init__(self, model: str) -> None:
        self._model = model
        self._announced = False
        self._finish: Finish | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> Sequence[StreamEvent]:
        """The events one SSE event makes."""
        body = decode_object(event.data)
        kind = str_field(body, "type") or event.event  # "message" (unnamed) matches no kind
        if kind == "content-delta":
            text = str_field(_nested(body, "delta", "message", "content"), "text")
            if text:
                return self._announce(TextDelta(text))
        elif kind == "message-start":
            self._announced = True
            return (Meta(str_field(body, "id") or "", self._model),)
        elif kind == "message-end":
            delta = _nested(body, "delta")
            reason = str_field(delta, "finish_reason")
            if reason in _FAILED_FINISHES:
                # A generation that failed on Cohere's side, told like a 5xx (its text unquoted).
                raise VendorStreamError(500, VendorError(), where=f"finish_reason {reason}")
            self._finish = Finish(
                finish_reason_from_wire(reason), usage_from_wire(delta.get("usage"))
            )
            self.done = True
            return self._announce()
        # Tool plans and calls, citations, debug and event types Cohere adds later carry no text.
        return ()

    def finish(self) -> Finish | None:
        """The closing event, once `message-end` arrived."""
        return self._finish

    def _announce(self, *events: StreamEvent) -> Sequence[StreamEvent]:
        """`events`, after the model's `Meta` when no event has said it yet."""
        if self._announced:
            return events
        self._announced = True
        return (Meta("", self._model), *events)


class CohereProvider(SseAdapter):
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

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        return to_wire(request, stream=stream)

    def _from_wire(self, body: Mapping[str, object], request: ChatRequest) -> Completion:
        return from_wire(body, model=request.model, provider=self._name)

    def _decoder(self, request: ChatRequest) -> StreamDecoder:
        return StreamDecoder(request.model)


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
