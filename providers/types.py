"""The values a call is made of, shared by the pipeline and every provider adapter.

A conversation is a tuple of `Message`s: a role and ordered parts (text and images), plus, for an
assistant turn, the tools it called and its reasoning state, and for a tool turn, the call it
answers. A `ChatRequest` is what an adapter is asked: the provider's model name, the messages,
the sampling settings, the tools the model may call (`Tool`, `ToolChoice`), the form of the
answer (`ResponseFormat`) and how hard a reasoning model thinks, and apart from those the per-call
I/O (time limit, headers), which never changes the answer (the cache key leaves it out).

A streamed answer is a sequence of `StreamEvent`s: `Meta` (the vendor's id and model, when
learned), `TextDelta`, `ToolCallDelta`, `ReasoningDelta`, and one closing `Finish` with the finish
reason and usage. `CompletionBuilder` folds events into the whole `Completion`; the stream relay,
the cache replay and the tests all use it, so a stream and a unary answer can never disagree.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

#: A JSON object as parsed (a JSON Schema, say): integral numbers are `int`s, never `1.0`.
JsonObject = Mapping[str, object]

# -- messages ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextPart:
    """Text in a message."""

    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image in a message: an https:/data: URL, or bytes with their media type."""

    url: str = ""
    data: bytes = b""
    media_type: str = ""
    #: "auto", "low" or "high" where the vendor takes it; "" when unset.
    detail: str = ""


Part = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made: its id, the tool's name, and the arguments as JSON text."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    """A piece of an assistant turn's reasoning state, sent back to the vendor as received."""

    text: str = ""
    #: Anthropic's thinking signature, or Gemini's thought signature.
    signature: str = ""
    #: Anthropic's redacted thinking (opaque data).
    redacted: str = ""
    #: Gemini: the tool call whose part carried this signature.
    tool_call_id: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation."""

    role: str
    parts: tuple[Part, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    #: Role "tool": the call this result answers.
    tool_call_id: str = ""
    reasoning: tuple[ReasoningPart, ...] = ()

    @property
    def text(self) -> str:
        """The message's text parts, joined."""
        parts = self.parts
        if len(parts) == 1 and isinstance(parts[0], TextPart):
            return parts[0].text  # nearly every message
        return "".join(p.text for p in parts if isinstance(p, TextPart))

    @classmethod
    def of_text(cls, role: str, text: str) -> Message:
        """A message of one text part (none when `text` is empty)."""
        return cls(role, (TextPart(text),) if text else ())


# -- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sampling:
    """How the model samples its answer; None (or empty) leaves the vendor's default."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    #: Seed for best-effort deterministic sampling, where the vendor takes one.
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: its name, what it does, and its arguments' JSON Schema."""

    name: str
    description: str = ""
    #: The JSON Schema of the arguments (an object schema); empty for a tool without arguments.
    parameters: JsonObject = field(default_factory=dict)
    #: Hold the arguments to the schema exactly, where the vendor can.
    strict: bool = False


class ToolChoiceMode(enum.Enum):
    """Whether and which tools the model must call."""

    #: The model decides.
    AUTO = "auto"
    #: The model calls no tool.
    NONE = "none"
    #: The model calls at least one tool.
    REQUIRED = "required"
    #: The model calls the tool `ToolChoice.name`.
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Whether and which tools the model must call (`name` with mode TOOL only)."""

    mode: ToolChoiceMode
    name: str = ""


class ResponseFormatType(enum.Enum):
    """The form the answer's content takes."""

    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """The form the answer's content must take: a JSON object, or JSON following `schema`."""

    type: ResponseFormatType
    #: JSON_SCHEMA: the schema's name ("" when the caller gave none).
    name: str = ""
    #: JSON_SCHEMA: the JSON Schema the answer follows.
    schema: JsonObject | None = None
    #: Hold the answer to the schema exactly, where the vendor can.
    strict: bool = False


#: The `ChatRequest.reasoning_effort` values, least effort first.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")


@dataclass(frozen=True, slots=True)
class CallIO:
    """How one call travels, apart from what it asks: never part of the answer's identity."""

    #: Seconds the adapter may spend on this call (connect to last byte); None means no bound.
    timeout: float | None = None
    #: Extra headers to send upstream (the request id, trace context); never credentials.
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A completion request as an adapter sees it: the model is the provider's own model name.

    Every field but `io` is what the request asks, and all of it is in the cache key.
    """

    model: str
    messages: tuple[Message, ...]
    sampling: Sampling = field(default_factory=Sampling)
    io: CallIO = field(default_factory=CallIO)
    #: Functions the model may call.
    tools: tuple[Tool, ...] = ()
    #: Whether and which tools it must call; None: the vendor's default (auto with tools).
    tool_choice: ToolChoice | None = None
    #: Whether it may call several tools in one turn; None: the vendor's default.
    parallel_tool_calls: bool | None = None
    #: The form of the answer's content; None: text.
    response_format: ResponseFormat | None = None
    #: One of `REASONING_EFFORTS`; None: the vendor's default.
    reasoning_effort: str | None = None


# -- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them."""

    #: Every prompt token, including those read from or written to the vendor's prompt cache.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    #: Prompt tokens read from the vendor's prompt cache (billed at the cached-input price).
    cached_tokens: int = 0
    #: Prompt tokens written to the vendor's prompt cache (billed at the cache-write price).
    cache_creation_tokens: int = 0
    #: Completion tokens spent on reasoning: a part of `completion_tokens`, not added to it.
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """One whole answer, as the vendor gave it."""

    id: str
    model: str
    content: str
    finish_reason: str
    usage: Usage
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    reasoning_parts: tuple[ReasoningPart, ...] = ()


# -- stream events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Meta:
    """The vendor's completion id and model, once the stream has said them."""

    id: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """More of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of the `index`-th tool call (0, 1, ... in order of first appearance).

    `id` and `name` come in a call's first fragment only; `arguments` fragments are joined.
    """

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """More reasoning text, or a piece of reasoning state (signature, redacted data)."""

    text: str = ""
    signature: str = ""
    redacted: str = ""
    tool_call_id: str = ""


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of a stream that ended normally: why, and what it used (None: not reported)."""

    reason: str
    usage: Usage | None = None


StreamEvent = Meta | TextDelta | ToolCallDelta | ReasoningDelta | Finish


class CompletionBuilder:
    """Folds stream events into the whole `Completion` they make up.

    `Meta`s set the id and model (the last non-empty one wins); text, tool-call and reasoning
    deltas are kept in order (`events`, what a cache replays); `Finish` sets the finish reason
    and usage. `build()` may be called at any time; a stream that has not finished builds with
    finish reason "" and, like one that finished without reporting usage, `Usage()`.
    """

    __slots__ = ("events", "finish_reason", "id", "model", "usage")

    def __init__(self, id: str = "", model: str = "") -> None:
        self.id = id
        self.model = model
        #: The content events fed so far (text, tool-call and reasoning deltas), in order.
        self.events: list[StreamEvent] = []
        #: Set by `Finish`; None while the stream has not finished.
        self.finish_reason: str | None = None
        #: The usage `Finish` reported; None when it reported none (or has not come).
        self.usage: Usage | None = None

    @property
    def finished(self) -> bool:
        """Whether a `Finish` has been fed."""
        return self.finish_reason is not None

    def feed(self, event: StreamEvent) -> None:
        """Take in one event."""
        if isinstance(event, Meta):
            self.id = event.id or self.id
            self.model = event.model or self.model
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
            self.usage = event.usage
        else:
            self.events.append(event)

    def build(self) -> Completion:
        """The `Completion` the events fed so far make up."""
        text: list[str] = []
        calls: dict[int, list[str]] = {}  # index -> [id, name, arguments...]
        reasoning = _ReasoningFolder()
        for event in self.events:
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ToolCallDelta):
                call = calls.setdefault(event.index, ["", ""])
                call[0] = call[0] or event.id
                call[1] = call[1] or event.name
                call.append(event.arguments)
            elif isinstance(event, ReasoningDelta):
                reasoning.feed(event)
        tool_calls = tuple(
            ToolCall(c[0], c[1], "".join(c[2:]) or "{}") for _, c in sorted(calls.items())
        )
        return Completion(
            id=self.id,
            model=self.model,
            content="".join(text),
            finish_reason=self.finish_reason or "",
            usage=self.usage or Usage(),
            tool_calls=tool_calls,
            reasoning=reasoning.text,
            reasoning_parts=reasoning.parts(),
        )


class _ReasoningFolder:
    """Reasoning deltas as parts: text runs until a signature (or a tool call id) closes the
    part it belongs to; redacted data is a part of its own."""

    __slots__ = ("_done", "_run", "_texts")

    def __init__(self) -> None:
        self._texts: list[str] = []
        self._run: list[str] = []
        self._done: list[ReasoningPart] = []

    @property
    def text(self) -> str:
        return "".join(self._texts)

    def feed(self, delta: ReasoningDelta) -> None:
        if delta.redacted:
            self._close()
            self._done.append(ReasoningPart(redacted=delta.redacted))
        if delta.text:
            self._texts.append(delta.text)
            self._run.append(delta.text)
        if delta.signature or delta.tool_call_id:
            text = "".join(self._run)
            self._done.append(ReasoningPart(text, delta.signature, "", delta.tool_call_id))
            self._run = []

    def parts(self) -> tuple[ReasoningPart, ...]:
        self._close()
        return tuple(self._done)

    def _close(self) -> None:
        if self._run:
            self._done.append(ReasoningPart("".join(self._run)))
            self._run = []
