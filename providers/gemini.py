"""The Google Gemini API adapter (generativelanguage.googleapis.com, API key auth).

It speaks `POST {base}/{api_version}/models/{model}:generateContent`, and for streams
`:streamGenerateContent?alt=sse` (without `alt=sse` the API streams one JSON array instead of
events). The key travels only in the `x-goog-api-key` header, never as `?key=`: URLs end up in
logs. This module holds the wire format, as pure converters (`to_wire`, `reply_from_wire`,
`vendor_error`), the stream decoder, and `GeminiProvider`, an `SseAdapter`
(`providers.http.adapter`) that adds its model-and-method URL and its refusals.

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

from providers.base import AdapterSpec, ProviderSettings
from providers.errors import ContentFilteredError
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
    duration_seconds,
    error_body,
    error_text,
    int_field,
    key_header,
    str_field,
    text_of,
)

KIND: Final = "gemini"
DEFAULT_API_VERSION: Final = "v1beta"
_ROLES: Final[Mapping[str, str]] = {"user": "user", "assistant": "model", "tool": "user"}
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
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


def to_wire(request: ChatRequest) -> dict[str, object]:
    """Build the GenerateContentRequest body, sending only the parameters that are set.

    System and developer messages become `systemInstruction`; the others become `contents`
    turns (assistant -> "model", tool -> "user"), consecutive turns of one role merged into one
    with several parts. Empty messages are left out: Gemini rejects an empty text part.
    """
    system: list[dict[str, str]] = []
    turns: list[tuple[str, list[dict[str, str]]]] = []
    for message in request.messages:
        text = text_of(message)
        if not text:
            continue
        part = {"text": text}
        role = _ROLES.get(message.role, "user")
        if message.role in _SYSTEM_ROLES:
            system.append(part)
        elif turns and turns[-1][0] == role:
            turns[-1][1].append(part)
        else:
            turns.append((role, [part]))
    body: dict[str, object] = {"contents": [{"role": r, "parts": p} for r, p in turns]}
    if system:
        body["systemInstruction"] = {"parts": system}
    sampling = request.sampling
    settings = (
        ("temperature", sampling.temperature),
        ("topP", sampling.top_p),
        ("maxOutputTokens", sampling.max_tokens),
        ("stopSequences", list(sampling.stop) or None),
    )
    config = {name: value for name, value in settings if value is not None}
    if config:
        body["generationConfig"] = config
    return body


@dataclass(frozen=True, slots=True)
class GeminiReply:
    """One GenerateContentResponse (a whole reply or one stream chunk) in our terms."""

    #: The first candidate's text parts, thoughts left out.
    text: str
    #: The candidate's `finishReason` as Gemini said it ("" while it is still generating).
    vendor_finish: str
    #: `promptFeedback.blockReason` ("" when the prompt was not blocked).
    block_reason: str
    has_candidate: bool
    usage: Usage | None
    id: str
    model: str

    @property
    def finish_reason(self) -> str | None:
        """Our finish reason, or None if this reply does not finish the answer."""
        if self.block_reason or self.vendor_finish in _FILTER_REASONS:
            return "content_filter"
        if not self.vendor_finish or self.vendor_finish == _UNSPECIFIED:
            return None
        return "length" if self.vendor_finish in _LENGTH_REASONS else "stop"

    @property
    def refusal(self) -> str:
        """Why Gemini refused outright (a filter and no text at all); "" when it did not."""
        if self.text or self.finish_reason != "content_filter":
            return ""
        if self.block_reason:
            return f"blockReason={self.block_reason[:64]}"
        return f"finishReason={self.vendor_finish[:64]}"

    def to_response(self, *, model: str, fallback_id: str) -> Completion:
        """The whole completion; `model` and `fallback_id` stand in for what Gemini left out."""
        if not self.has_candidate and not self.block_reason:
            raise MalformedReplyError("reply has no candidates")
        return Completion(
            id=self.id or fallback_id,
            model=self.model or model,
            content=self.text,
            finish_reason=self.finish_reason or "stop",
            usage=self.usage or Usage(),
        )


def reply_from_wire(body: object) -> GeminiReply:
    """Read a GenerateContentResponse; raise `MalformedReplyError` if it is not one."""
    reply = as_object(body, "reply")
    candidates = reply.get("candidates") or []
    if not isinstance(candidates, list):
        raise MalformedReplyError("candidates is not a list")
    text, finish = "", ""
    if candidates:
        candidate = as_object(candidates[0], "candidates[0]")
        finish = str_field(candidate, "finishReason") or ""
        text = _text_of(candidate.get("content"))
    feedback = as_object(reply.get("promptFeedback") or {}, "promptFeedback")
    return GeminiReply(
        text=text,
        vendor_finish=finish,
        block_reason=str_field(feedback, "blockReason") or "",
        has_candidate=bool(candidates),
        usage=usage_from_wire(reply.get("usageMetadata")),
        id=str_field(reply, "responseId") or "",
        model=(str_field(reply, "modelVersion") or "").removeprefix("models/"),
    )


def _text_of(content: object) -> str:
    if content is None:  # a candidate stopped by a filter may carry no content at all
        return ""
    parts = as_object(content, "candidates[0].content").get("parts", [])
    if not isinstance(parts, list):
        raise MalformedReplyError("candidates[0].content.parts is not a list")
    pieces = []
    for raw in parts:
        part = as_object(raw, "content part")
        if part.get("thought") is not True:  # thought summaries are not the answer
            pieces.append(str_field(part, "text") or "")
    return "".join(pieces)


def usage_from_wire(raw: object) -> Usage | None:
    """Convert `usageMetadata` (None when absent); thinking tokens are billed as output."""
    if raw is None:
        return None
    usage = as_object(raw, "usageMetadata")
    prompt = int_field(usage, "promptTokenCount")  # includes the cached tokens
    completion = int_field(usage, "candidatesTokenCount") + int_field(usage, "thoughtsTokenCount")
    total = int_field(usage, "totalTokenCount") or prompt + completion
    return Usage(prompt, completion, total, int_field(usage, "cachedContentTokenCount"))


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

    __slots__ = ("_finish", "_id", "_model", "_refused", "_started", "_usage")
    terminal = "a finishReason"
    #: Gemini has no terminal event: the stream is read to the end of its body.
    done = False

    def __init__(self, model: str, refused: Callable[[str], ContentFilteredError]) -> None:
        self._id = ""
        self._model = model
        self._refused = refused
        self._started = False
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
        if piece.text:
            self._started = True
            events.append(TextDelta(piece.text))
        return events

    def finish(self) -> Finish | None:
        """The closing event, if a chunk said how the answer finished."""
        return None if self._finish is None else Finish(self._finish, self._usage)


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

    def _to_wire(self, request: ChatRequest, *, stream: bool) -> object:
        return to_wire(request)

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
