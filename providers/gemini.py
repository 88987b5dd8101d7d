"""The Google Gemini API adapter (generativelanguage.googleapis.com, API key auth).

It speaks `POST {base}/{api_version}/models/{model}:generateContent`, and for streams
`:streamGenerateContent?alt=sse` (without `alt=sse` the API streams one JSON array instead of
events). The key travels only in the `x-goog-api-key` header, never as `?key=`: URLs end up in
logs. This module holds the reply side of the wire format, as pure converters
(`reply_from_wire`, `vendor_error`), the stream decoder, and `GeminiProvider`, an `SseAdapter`
(`providers.http.adapter`) that adds its model-and-method URL and its refusals; the request
body and what each model can honour are `providers.gemini_request`.

An answer's parts are thought summaries (`"thought": true`: reasoning, never content), text,
and `functionCall`s, each whole with its arguments as an object, its id optional. Calls become
tool calls numbered in order of arrival (a minted id where Gemini sent none), and an answer
with calls finishes "tool_calls" though Gemini says STOP; one cut by the token limit says
MAX_TOKENS ("length"). Thought signatures, on a call's part or the answer's last part, become
reasoning parts (naming the call they came on), which `gemini_request` puts back in place.

Gemini refuses on content grounds inside a 200: `promptFeedback.blockReason` with no
candidates, or a safety-type `finishReason`. With no text at all that is a
`ContentFilteredError`; after some text it is an answer with finish reason "content_filter".
A stream has no [DONE]: its terminal signal is a chunk carrying `finishReason`, and the one
`Finish` is yielded only once the body has ended after such a chunk; any other end raises.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from providers.base import AdapterSpec, Capabilities, ProviderSettings
from providers.errors import ContentFilteredError, UpstreamBadRequestError
from providers.gemini_request import capabilities_for, to_wire
from providers.http.adapter import SseAdapter
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.sse import SSEEvent
from providers.types import (
    ChatRequest,
    Completion,
    CompletionBuilder,
    Finish,
    Meta,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from providers.wire import (
    MalformedReplyError,
    UnsupportedContentError,
    VendorError,
    VendorStreamError,
    as_object,
    decode_object,
    duration_seconds,
    error_body,
    error_text,
    int_field,
    json_arguments,
    key_header,
    mint_call_id,
    str_field,
)

KIND: Final = "gemini"
DEFAULT_API_VERSION: Final = "v1beta"
#: FinishReason values (google-genai `types.FinishReason`) that are content refusals;
#: LANGUAGE ("unsupported language") is filtered output too. MAX_TOKENS and CONTINUATION (cut at
#: a per-request limit) truncate the answer. Every other reason (OTHER, MALFORMED_FUNCTION_CALL,
#: UNEXPECTED_TOOL_CALL...) ends a text answer that is complete as far as it goes: "stop".
_FILTER_REASONS: Final = frozenset(
    {"SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"}
    | {"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "ESCALATION"}
)
_LENGTH_REASONS: Final = frozenset({"MAX_TOKENS", "CONTINUATION"})
_UNSPECIFIED: Final = "FINISH_REASON_UNSPECIFIED"
#: ErrorInfo reasons (google/api/error_reason.proto) of this family say our API key cannot be
#: used, whatever the HTTP status (an invalid or expired key comes back as 400 API_KEY_INVALID).
_KEY_REASON_PREFIX: Final = "API_KEY_"
_ERROR_INFO: Final = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"
_MODELS: Final = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash")


#: Gemini's credential header; the key never goes in the URL.
api_key_auth: Final = key_header("x-goog-api-key")


# -- pure converters ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyPart:
    """One part of a candidate's content, as far as the adapter reads it."""

    text: str = ""
    #: A thought summary (`"thought": true`), not the answer.
    thought: bool = False
    #: A `functionCall` (id "" when Gemini sent none; arguments as JSON text).
    call: ToolCall | None = None
    #: The part's `thoughtSignature` ("" for none).
    signature: str = ""


@dataclass(frozen=True, slots=True)
class GeminiReply:
    """One GenerateContentResponse (a whole reply or one stream chunk) in our terms."""

    #: The first candidate's content parts, in order.
    parts: tuple[ReplyPart, ...]
    #: The candidate's `finishReason` as Gemini said it ("" while it is still generating).
    vendor_finish: str
    #: `promptFeedback.blockReason` ("" when the prompt was not blocked).
    block_reason: str
    has_candidate: bool
    usage: Usage | None
    id: str
    model: str

    @property
    def answered(self) -> bool:
        """Whether the reply holds any of the answer: text or a call."""
        return any(p.call is not None or (p.text and not p.thought) for p in self.parts)

    @property
    def finish_reason(self) -> str | None:
        """Our finish reason before calls are counted, or None if this reply does not finish."""
        if self.block_reason or self.vendor_finish in _FILTER_REASONS:
            return "content_filter"
        if not self.vendor_finish or self.vendor_finish == _UNSPECIFIED:
            return None
        return "length" if self.vendor_finish in _LENGTH_REASONS else "stop"

    @property
    def refusal(self) -> str:
        """Why Gemini refused outright (a filter and no answer at all); "" when it did not."""
        if self.answered or self.finish_reason != "content_filter":
            return ""
        if self.block_reason:
            return f"blockReason={self.block_reason[:64]}"
        return f"finishReason={self.vendor_finish[:64]}"

    def to_response(self, *, model: str, fallback_id: str) -> Completion:
        """The whole completion; `model` and `fallback_id` stand in for what Gemini left out.

        It is built from the same events a stream of these parts gives, so the two agree.
        """
        if not self.has_candidate and not self.block_reason:
            raise MalformedReplyError("reply has no candidates")
        builder = CompletionBuilder(self.id or fallback_id, self.model or model)
        reader = PartReader()
        for event in reader.events(self.parts):
            builder.feed(event)
        finish = with_calls(self.finish_reason or "stop", reader.calls)
        builder.feed(Finish(finish, self.usage or Usage()))
        return builder.build()


def with_calls(finish: str, calls: int) -> str:
    """The finish reason of an answer that made `calls` calls: Gemini says STOP after calls,
    we say "tool_calls"; a cut ("length") or a filter stays what it is."""
    return "tool_calls" if calls and finish == "stop" else finish


class PartReader:
    """Content parts in, events out, for one answer: calls numbered 0, 1... as they arrive.

    Gemini sends each call whole and without an index (parallel calls may each come in a chunk
    of their own, as part 0), so each `functionCall` part is the next call: one
    `ToolCallDelta` with its id (Gemini's, else a minted unique one), name and arguments. A
    thought signature becomes a `ReasoningDelta` that closes the reasoning part it belongs to,
    naming the call it came on.
    """

    __slots__ = ("calls",)

    def __init__(self) -> None:
        #: How many calls were read so far.
        self.calls = 0

    def events(self, parts: Sequence[ReplyPart]) -> list[StreamEvent]:
        """The events of `parts`, in order."""
        events: list[StreamEvent] = []
        for part in parts:
            if part.call is not None:
                call_id = part.call.id or mint_call_id()
                events.append(
                    ToolCallDelta(self.calls, call_id, part.call.name, part.call.arguments)
                )
                self.calls += 1
                if part.signature:
                    events.append(ReasoningDelta(signature=part.signature, tool_call_id=call_id))
            elif part.thought:
                if part.text or part.signature:
                    events.append(ReasoningDelta(text=part.text, signature=part.signature))
            else:
                if part.text:
                    events.append(TextDelta(part.text))
                if part.signature:
                    events.append(ReasoningDelta(signature=part.signature))
        return events


def reply_from_wire(body: object) -> GeminiReply:
    """Read a GenerateContentResponse; raise `MalformedReplyError` if it is not one."""
    reply = as_object(body, "reply")
    candidates = reply.get("candidates") or []
    if not isinstance(candidates, list):
        raise MalformedReplyError("candidates is not a list")
    parts: tuple[ReplyPart, ...] = ()
    finish = ""
    if candidates:
        candidate = as_object(candidates[0], "candidates[0]")
        finish = str_field(candidate, "finishReason") or ""
        parts = _parts_of(candidate.get("content"))
    feedback = as_object(reply.get("promptFeedback") or {}, "promptFeedback")
    return GeminiReply(
        parts=parts,
        vendor_finish=finish,
        block_reason=str_field(feedback, "blockReason") or "",
        has_candidate=bool(candidates),
        usage=usage_from_wire(reply.get("usageMetadata")),
        id=str_field(reply, "responseId") or "",
        model=(str_field(reply, "modelVersion") or "").removeprefix("models/"),
    )


def _parts_of(content: object) -> tuple[ReplyPart, ...]:
    if content is None:  # a candidate stopped by a filter may carry no content at all
        return ()
    parts = as_object(content, "candidates[0].content").get("parts", [])
    if not isinstance(parts, list):
        raise MalformedReplyError("candidates[0].content.parts is not a list")
    return tuple(_part_of(as_object(raw, "content part")) for raw in parts)


def _part_of(part: Mapping[str, object]) -> ReplyPart:
    signature = str_field(part, "thoughtSignature") or ""
    raw_call = part.get("functionCall")
    if raw_call is None:
        text = str_field(part, "text") or ""
        return ReplyPart(text=text, thought=part.get("thought") is True, signature=signature)
    call = as_object(raw_call, "functionCall")
    name = str_field(call, "name")
    if not name:
        raise MalformedReplyError("functionCall has no name")
    args = call.get("args")
    if args is not None and not isinstance(args, dict):
        raise MalformedReplyError("functionCall.args is not an object")
    tool_call = ToolCall(str_field(call, "id") or "", name, json_arguments(args))
    return ReplyPart(call=tool_call, signature=signature)


def usage_from_wire(raw: object) -> Usage | None:
    """Convert `usageMetadata` (None when absent); thinking tokens are billed as output."""
    if raw is None:
        return None
    usage = as_object(raw, "usageMetadata")
    prompt = int_field(usage, "promptTokenCount")  # includes the cached tokens
    completion = int_field(usage, "candidatesTokenCount") + int_field(usage, "thoughtsTokenCount")
    total = int_field(usage, "totalTokenCount") or prompt + completion
    return Usage(
        prompt,
        completion,
        total,
        cached_tokens=int_field(usage, "cachedContentTokenCount"),
        reasoning_tokens=int_field(usage, "thoughtsTokenCount"),
    )


def vendor_error(raw: bytes) -> VendorError:
    """Read Google's `{"error": {code, message, status, details}}`; other bodies give an empty one.

    Like Google's SDK, this also reads the object wrapped in a one-element array (the framing
    of a stream without `alt=sse`). `code` is the ErrorInfo `reason` (API_KEY_INVALID...).
    """
    body = error_body(raw)
    if isinstance(body, list) and body:
        body = body[0]
    return _vendor_error(body.get("error") if isinstance(body, dict) else None)


def _vendor_error(error: object) -> VendorError:
    if not isinstance(error, dict):
        return VendorError()
    details = error.get("details")
    infos = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    reason = next((error_text(d.get("reason")) for d in infos if d.get("@type") == _ERROR_INFO), "")
    delay = next((d.get("retryDelay") for d in infos if d.get("@type") == _RETRY_INFO), None)
    return VendorError(
        error_text(error.get("message")),
        error_text(error.get("status")),
        reason,
        credential_rejected=reason.startswith(_KEY_REASON_PREFIX),
        retry_after=duration_seconds(delay),
    )


def _error_status(error: Mapping[str, object]) -> int:
    """The HTTP status an in-stream error stands for: its numeric `code` (500 without one)."""
    code = error.get("code")
    return code if isinstance(code, int) and 400 <= code <= 599 else 500


# -- streams and I/O --------------------------------------------------------------------------


class StreamDecoder:
    """One stream's GenerateContentResponse chunks in, events out.

    The first chunk's `responseId` (or one made up when it has none) is the stream's id; the
    model is the chunk's `modelVersion`, else the requested one. Usage is cumulative: the last
    one seen counts. A refusal with no text yet raises (`refused`); after some text it is the
    finish reason "content_filter". The body must end after a chunk with a `finishReason`.
    """

    __slots__ = ("_finish", "_id", "_model", "_reader", "_refused", "_started", "_usage")
    terminal = "a finishReason"
    #: Gemini has no terminal event: the stream is read to the end of its body.
    done = False

    def __init__(self, model: str, refused: Callable[[str], ContentFilteredError]) -> None:
        self._id = ""
        self._model = model
        self._refused = refused
        self._started = False
        self._reader = PartReader()
        self._finish: str | None = None
        self._usage: Usage | None = None

    def feed(self, event: SSEEvent) -> Sequence[StreamEvent]:
        """The events of one SSE event's chunk."""
        body = decode_object(event.data)
        error = body.get("error")
        if error is not None:
            # A failure after the 200 arrives as one `{"error": {...}}` event.
            details = as_object(error, "error")
            raise VendorStreamError(
                _error_status(details), _vendor_error(details), where="error event"
            )
        piece = reply_from_wire(body)
        if piece.refusal and not self._started:
            raise self._refused(piece.refusal)
        self._finish = piece.finish_reason or self._finish
        self._usage = piece.usage or self._usage
        events: list[StreamEvent] = []
        id_, model = self._id or piece.id or _fallback_id(), piece.model or self._model
        if id_ != self._id or model != self._model:
            self._id, self._model = id_, model
            events.append(Meta(id_, model))
        content = self._reader.events(piece.parts)
        self._started = self._started or bool(content)
        events.extend(content)
        return events

    def finish(self) -> Finish | None:
        """The closing event, if a chunk said how the answer finished."""
        if self._finish is None:
            return None
        return Finish(with_calls(self._finish, self._reader.calls), self._usage)


class GeminiProvider(SseAdapter):
    """One Gemini API deployment.

    Option `api_version` picks the API version path ("v1beta" by default; "v1" for the stable
    surface).
    """

    _kind = KIND

    def __init__(self, settings: ProviderSettings, session: UpstreamClient, keys: KeyPool) -> None:
        version = quote(settings.option("api_version", DEFAULT_API_VERSION), safe="")
        path = f"/{version}/models/"
        super().__init__(
            settings, session, keys, path=path, read_error=vendor_error, auth=api_key_auth
        )

    def _url_for(self, request: ChatRequest, *, stream: bool) -> str:
        method = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        return self._url + self._model_segment(request.model.removeprefix("models/")) + method

    def capabilities(self, model: str) -> Capabilities:
        """What the deployment honours with `model` (`gemini_request.capabilities_for`)."""
        return capabilities_for(model)

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        """The request body, or `UpstreamBadRequestError` naming what Gemini cannot take."""
        try:
            return to_wire(request)
        except UnsupportedContentError as exc:
            raise UpstreamBadRequestError(
                f"{exc} (provider {self._name!r})", provider=self._name
            ) from None

    def _from_wire(self, body: Mapping[str, object], request: ChatRequest) -> Completion:
        reply = reply_from_wire(body)
        if reply.refusal:
            raise self._refused(reply.refusal)
        return reply.to_response(model=request.model, fallback_id=_fallback_id())

    def _decoder(self, request: ChatRequest) -> StreamDecoder:
        return StreamDecoder(request.model, self._refused)

    def _refused(self, why: str) -> ContentFilteredError:
        return ContentFilteredError(
            f"provider {self._name!r} refused on content-policy grounds ({why})",
            provider=self._name,
        )


def _fallback_id() -> str:
    """An id for a reply Gemini sent without `responseId` (one per call, shared by its chunks)."""
    return f"gemini-{uuid.uuid4().hex}"


SPEC: Final = AdapterSpec(
    kind=KIND,
    factory=GeminiProvider,
    env_prefix="GEMINI",
    default_base_url="https://generativelanguage.googleapis.com",
    default_models=_MODELS,
    env_options={"api_version": "API_VERSION"},
)
