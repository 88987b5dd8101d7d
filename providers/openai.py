"""The OpenAI Chat Completions adapter (also any OpenAI-compatible server, such as vLLM).

It speaks `POST {base_url}/chat/completions`, unary or streamed as Server-Sent Events. This
module holds the OpenAI wire format: the pure converters (`to_wire`, built in
`providers.openai_request`, `from_wire`, `vendor_error`), the stream decoder (one
`chat.completion.chunk` in, events out) and `OpenAIProvider`, an `SseAdapter`
(`providers.http.adapter`). A stream asks for usage (`stream_options.include_usage`) and ends
with one `Finish` carrying the finish reason and usage once `data: [DONE]` arrives; any other
ending raises. Variants at other URLs with other credential headers (`providers.azure_openai`)
subclass `OpenAIProvider` rather than copy it. What a model can do (`capabilities`) follows its
name (`providers.openai_models`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from providers.base import AdapterSpec, Capabilities, ProviderSettings
from providers.http.adapter import SseAdapter
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.openai_models import profile_of
from providers.openai_reply import (
    finish_reason,
    from_wire,
    reasoning_text,
    usage_from_wire,
)
from providers.openai_request import to_wire
from providers.sse import SSEEvent
from providers.types import (
    ChatRequest,
    Completion,
    Finish,
    Meta,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
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
    mint_call_id,
    str_field,
)

__all__ = [
    "KIND",
    "SPEC",
    "OpenAIProvider",
    "StreamDecoder",
    "from_wire",
    "to_wire",
    "usage_from_wire",
    "vendor_error",
]

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

    Each chunk repeats the id and model: a `Meta` comes only when they change. Reasoning
    (compatible servers only), text and tool-call fragments come in that order within a chunk.
    Tool calls are numbered 0, 1, ... in order of first appearance, whatever index the server
    gave (a compatible server that numbers every call 0 gives each new id a new number); a
    call's first delta carries its id (minted when the server sent none) and name, later ones
    its argument fragments; a call whose arguments never came gets "{}" once [DONE] has come.
    The finish reason and usage arrive in chunks of their own (usage last, with `choices: []`)
    and make the `Finish` once `[DONE]` has come; a server that sent [DONE] but no
    finish_reason finished normally ("stop").
    """

    __slots__ = (
        "_argued",
        "_by_index",
        "_call_ids",
        "_finish_reason",
        "_id",
        "_model",
        "_refused",
        "_usage",
        "done",
    )
    terminal = "[DONE]"

    def __init__(self) -> None:
        self._id = self._model = ""
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._refused = False
        #: The server's index of a call -> ours; our index -> the call's id and whether any
        #: argument text came.
        self._by_index: dict[object, int] = {}
        self._call_ids: list[str] = []
        self._argued: list[bool] = []
        self.done = False

    def feed(self, event: SSEEvent) -> Sequence[StreamEvent]:
        """The events of one SSE event's chunk."""
        if event.data == _DONE:
            self.done = True
            return [ToolCallDelta(n, arguments="{}") for n, a in enumerate(self._argued) if not a]
        body = decode_object(event.data)
        error = body.get("error")
        if error:
            raise _stream_fault(error)
        choices = body.get("choices")
        if not isinstance(choices, list):
            raise MalformedReplyError("stream chunk has no choices list")
        events: list[StreamEvent] = []
        if choices:
            choice = as_object(choices[0], "choices[0]")
            delta = as_object(choice.get("delta", {}), "choices[0].delta")
            self._read_delta(delta, events)
            reason = str_field(choice, "finish_reason")
            if reason is not None:
                self._finish_reason = reason
        usage = body.get("usage")
        if usage is not None:
            self._usage = usage_from_wire(usage)
        id_, model = str_field(body, "id") or self._id, str_field(body, "model") or self._model
        if id_ != self._id or model != self._model:
            self._id, self._model = id_, model
            events.insert(0, Meta(id_, model))
        return events

    def _read_delta(self, delta: Mapping[str, object], events: list[StreamEvent]) -> None:
        reasoning = reasoning_text(delta)
        if reasoning:
            events.append(ReasoningDelta(reasoning))
        text = str_field(delta, "content")
        if text:
            events.append(TextDelta(text))
        refusal = str_field(delta, "refusal")
        if refusal:
            self._refused = True
            events.append(TextDelta(refusal))
        calls = delta.get("tool_calls")
        if calls is None:
            return
        if not isinstance(calls, list):
            raise MalformedReplyError("delta.tool_calls is not a list")
        for position, item in enumerate(calls):
            fragment = self._call_fragment(as_object(item, f"delta.tool_calls[{position}]"))
            if fragment is not None:
                events.append(fragment)

    def _call_fragment(self, entry: Mapping[str, object]) -> ToolCallDelta | None:
        function = as_object(entry.get("function") or {}, "delta.tool_calls[].function")
        call_id = str_field(entry, "id") or ""
        arguments = arguments_text(function)
        key = entry.get("index")
        ours = self._by_index.get(key)
        if ours is not None and call_id and call_id != self._call_ids[ours]:
            ours = None  # the same index for a new call: a compatible server numbering badly
        if ours is None and not call_id and key is None and self._call_ids:
            ours = len(self._call_ids) - 1  # no index and no id: more of the last call
        if ours is not None:
            if not arguments:
                return None
            self._argued[ours] = True
            return ToolCallDelta(ours, arguments=arguments)
        ours = len(self._call_ids)
        if not call_id or call_id in self._call_ids:
            call_id = mint_call_id()
        self._by_index[key] = ours
        self._call_ids.append(call_id)
        self._argued.append(bool(arguments))
        name = str_field(function, "name") or ""
        return ToolCallDelta(ours, call_id, name, arguments)

    def finish(self) -> Finish | None:
        """The closing event once [DONE] has come."""
        if not self.done:
            return None
        reason = finish_reason(
            self._finish_reason or "stop", called=bool(self._call_ids), refused=self._refused
        )
        return Finish(reason, self._usage)


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

    def capabilities(self, model: str) -> Capabilities:
        """What `model` takes, told from its name (`providers.openai_models`)."""
        return profile_of(model).capabilities

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
