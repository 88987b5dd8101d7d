"""The Cohere v2 Chat adapter: `POST {base_url}/v2/chat` with a bearer key, unary or SSE.

This module holds Cohere's replies: the pure converters (`from_wire`, `usage_from_wire`,
`vendor_error`), the stream decoder and `CohereProvider`, an `SseAdapter`
(`providers.http.adapter`); the request body and what each model can do are in
`providers.cohere_request`. Cohere's replies name no model, so the requested one is reported.
Usage is what Cohere bills (`billed_units`), falling back to its raw `tokens` counts; Cohere
reports no reasoning-token count.

A reply's text is its tool plan (what the model writes before calling tools) and its text items;
its thinking items are the reasoning (one reasoning part, sent back as thinking items); its
calls keep Cohere's ids (a unique one is minted where none came) with arguments as JSON text,
"{}" for none, and it finishes "tool_calls" whenever a call was made, unless the token limit cut
it ("length"). A stream is typed events (`message-start`, `content-delta`, `tool-plan-delta`,
`tool-call-start`/`-delta`/`-end`, ..., `message-end`), typed by the data's `type` field or else
the SSE `event:` line; only `message-end` ends it normally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from providers.base import AdapterSpec, Capabilities, ProviderSettings
from providers.cohere_request import capabilities, to_wire
from providers.errors import (
    StreamInterruptedError,
    UpstreamUnavailableError,
)
from providers.http.adapter import SseAdapter
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.sse import SSEEvent
from providers.types import (
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
    Usage,
)
from providers.wire import (
    MalformedReplyError,
    VendorError,
    VendorStreamError,
    arguments_text,
    as_object,
    bearer_auth,
    decode_object,
    error_field,
    int_field,
    mint_call_id,
    str_field,
)

KIND: Final = "cohere"
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
KEY_REJECTED_STATUSES: Final = frozenset({401, 402, 403, 498})


# -- pure converters ---------------------------------------------------------------------------


def from_wire(body: object, *, model: str, provider: str) -> Completion:
    """Convert a v2 Chat reply; raise `MalformedReplyError` if it is not one.

    The text is the tool plan (the text a model writes before its calls) and the text items;
    the thinking items are the reasoning. A generation Cohere reports as failed raises
    `UpstreamUnavailableError` naming `provider`.
    """
    reply = as_object(body, "reply")
    message = as_object(reply.get("message"), "message")
    reason = str_field(reply, "finish_reason")
    if reason in _FAILED_FINISHES:
        raise generation_failed(provider, reason, started=False)
    text, thinking = _content_of(message.get("content"))
    raw_calls = message.get("tool_calls")
    if not isinstance(raw_calls, list | None):
        raise MalformedReplyError("message.tool_calls is not a list")
    calls = tuple(_tool_call(as_object(c, "tool call")) for c in raw_calls or ())
    return Completion(
        id=str_field(reply, "id") or "",
        model=model,
        content=(str_field(message, "tool_plan") or "") + text,
        finish_reason=finish_reason_from_wire(reason, called=bool(calls)),
        usage=usage_from_wire(reply.get("usage")) or Usage(),
        tool_calls=calls,
        reasoning=thinking,
        reasoning_parts=(ReasoningPart(thinking),) if thinking else (),
    )


def finish_reason_from_wire(reason: str | None, *, called: bool = False) -> str:
    """Our finish reason for Cohere's; one it may add later passes through in lower case.

    An answer that made calls finishes "tool_calls", unless the token limit cut it ("length").
    """
    ours = "stop" if reason is None else _FINISH_REASONS.get(reason, reason.lower())
    return "tool_calls" if called and ours != "length" else ours


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


def _content_of(content: object) -> tuple[str, str]:
    """The text items and the thinking items of a message's `content` list, each joined."""
    if not isinstance(content, list | None):
        raise MalformedReplyError("message.content is not a list")
    text: list[str] = []
    thinking: list[str] = []
    for raw in content or ():
        item = as_object(raw, "message.content item")
        kind = item.get("type")
        if kind == "text":
            text.append(str_field(item, "text") or "")
        elif kind == "thinking":
            thinking.append(str_field(item, "thinking") or "")
    return "".join(text), "".join(thinking)


def _tool_call(call: Mapping[str, object]) -> ToolCall:
    """A call of the reply: Cohere's id (one minted where it gave none), arguments as JSON text
    ("{}" for none)."""
    function = as_object(call.get("function"), "tool call function")
    name = str_field(function, "name")
    if not name:
        raise MalformedReplyError("tool call function.name is missing")
    arguments = arguments_text(function) or "{}"
    return ToolCall(str_field(call, "id") or mint_call_id(), name, arguments)


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
    out. Replies name no model: the requested one is announced with the first event.

    Thinking deltas are reasoning; text and tool-plan deltas are text. Calls are numbered 0, 1,
    ... in the order they start (Cohere's `index` only says which call a fragment belongs to):
    `tool-call-start` gives the id and name, each `tool-call-delta` an argument fragment, and a
    call that ended without arguments gets "{}".
    """

    __slots__ = ("_announced", "_arguments", "_calls", "_finish", "_model", "done")
    terminal = "message-end"

    def __init__(self, model: str) -> None:
        self._model = model
        self._announced = False
        self._finish: Finish | None = None
        #: Cohere's call index -> ours; and whether each of ours has had arguments.
        self._calls: dict[object, int] = {}
        self._arguments: list[bool] = []
        self.done = False

    def feed(self, event: SSEEvent) -> Sequence[StreamEvent]:
        """The events one SSE event makes."""
        body = decode_object(event.data)
        kind = str_field(body, "type") or event.event  # "message" (unnamed) matches no kind
        if kind in ("content-delta", "content-start"):  # a start's text is "", but need not be
            return self._content(_nested(body, "delta", "message", "content"))
        if kind == "tool-plan-delta":
            plan = str_field(_nested(body, "delta", "message"), "tool_plan")
            return self._announce(TextDelta(plan)) if plan else ()
        if kind == "tool-call-start":
            return self._call_start(body)
        if kind == "tool-call-delta":
            return self._call_delta(body)
        if kind == "tool-call-end":
            return self._call_end(body)
        if kind == "message-start":
            self._announced = True
            return (Meta(str_field(body, "id") or "", self._model),)
        if kind == "message-end":
            return self._end(_nested(body, "delta"))
        # Content ends, citations, debug and event types Cohere adds later carry
        # nothing of ours.
        return ()

    def finish(self) -> Finish | None:
        """The closing event, once `message-end` arrived."""
        return self._finish

    def _content(self, content: Mapping[str, object]) -> Sequence[StreamEvent]:
        thinking = str_field(content, "thinking")
        if thinking:
            return self._announce(ReasoningDelta(thinking))
        text = str_field(content, "text")
        return self._announce(TextDelta(text)) if text else ()

    def _call_start(self, body: Mapping[str, object]) -> Sequence[StreamEvent]:
        call = _nested(body, "delta", "message", "tool_calls")
        function = _nested(call, "function")
        name = str_field(function, "name")
        if not name:
            raise MalformedReplyError("tool-call-start names no function")
        key = body.get("index", len(self._calls))
        if key in self._calls:
            raise MalformedReplyError("tool-call-start repeats a call index")
        index = self._calls[key] = len(self._calls)
        arguments = arguments_text(function) if function.get("arguments") else ""
        self._arguments.append(bool(arguments))
        call_id = str_field(call, "id") or mint_call_id()
        return self._announce(ToolCallDelta(index, call_id, name, arguments))

    def _call_delta(self, body: Mapping[str, object]) -> Sequence[StreamEvent]:
        index = self._index(body)
        function = _nested(body, "delta", "message", "tool_calls", "function")
        fragment = str_field(function, "arguments")
        if not fragment:
            return ()
        self._arguments[index] = True
        return (ToolCallDelta(index, arguments=fragment),)

    def _call_end(self, body: Mapping[str, object]) -> Sequence[StreamEvent]:
        index = self._index(body)
        if self._arguments[index]:
            return ()
        self._arguments[index] = True
        return (ToolCallDelta(index, arguments="{}"),)

    def _index(self, body: Mapping[str, object]) -> int:
        """Our index of the call an event belongs to (the latest one when Cohere says none)."""
        key = body.get("index")
        index = self._calls.get(key) if key is not None else len(self._calls) - 1
        if index is None or index < 0:
            raise MalformedReplyError("a tool-call event for a call that did not start")
        return index

    def _end(self, delta: Mapping[str, object]) -> Sequence[StreamEvent]:
        reason = str_field(delta, "finish_reason")
        if reason in _FAILED_FINISHES:
            # A generation that failed on Cohere's side, told like a 5xx (its text unquoted).
            raise VendorStreamError(500, VendorError(), where=f"finish_reason {reason}")
        self._finish = Finish(
            finish_reason_from_wire(reason, called=bool(self._calls)),
            usage_from_wire(delta.get("usage")),
        )
        self.done = True
        return self._announce()

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
            key_rejected_statuses=KEY_REJECTED_STATUSES,
        )

    def capabilities(self, model: str) -> Capabilities:
        """What the deployment honours for `model` (`providers.cohere_request.capabilities`)."""
        return capabilities(model)

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
