"""Ollama's `/api/chat` wire format: our request as its body, its reply as our completion.

Pure converters, no I/O (`providers.ollama` does that). How our values map:

- Messages: `{"role", "content", "images", "thinking", "tool_calls", "tool_name"}`. Text parts
  join into `content`; images go as raw base64 in `images` (no `data:` prefix: Ollama decodes
  the strings as Go `[]byte`); Ollama fetches no URLs, so an https image is the gateway's to
  inline (`image_urls` is not declared). An assistant turn's tool calls carry their arguments
  as an object, and its reasoning text goes back as `thinking`; other vendors' opaque reasoning
  state (signatures, redacted data) means nothing to Ollama and is left out. A tool result is
  role "tool" with `tool_name`, the name looked up by `tool_call_id` from the earlier call
  (Ollama needs no answer to every call, so none is demanded).
- Tools: OpenAI-like `{"type": "function", "function": {...}}`. Ollama has no tool-choice
  switch: AUTO is its behaviour and NONE is honoured by sending no tools (the model is shown
  none, and Ollama's template tool parser only runs with tools: `server/routes.go`);
  REQUIRED, a named tool and turning parallel calls off cannot be honoured.
- `format`: "json" for a JSON object, the JSON Schema itself for a schema.
- `think`: models that take levels (gpt-oss) get "low"/"medium"/"high"; others take only a
  switch, `false` for "none" and `true` for "medium" (Ollama's own reading of `true`).
- `options.seed` for the seed; `num_predict` for max tokens.
- Replies: `message.tool_calls` are whole (`{"id"?, "function": {"index", "name",
  "arguments": {...}}}`), the id kept or minted; `done_reason` "stop" after calls is our
  "tool_calls"; `message.thinking` is the reasoning. Ollama reports no reasoning tokens.

Sources: ollama/ollama `api/types.go` (`ChatRequest`, `Message`, `ToolCall`, `ThinkValue`),
`docs/api.md` ("Generate a chat completion", tools, thinking, structured outputs), the
`ollama` Python SDK's `_types.py` (`Message.tool_name`, `thinking`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Final

from providers.base import Capabilities
from providers.types import (
    ChatRequest,
    Completion,
    ImagePart,
    Message,
    ReasoningPart,
    ResponseFormat,
    ResponseFormatType,
    Sampling,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoiceMode,
    Usage,
)
from providers.wire import (
    MalformedReplyError,
    UnsupportedContentError,
    arguments_object,
    as_object,
    int_field,
    json_arguments,
    mint_call_id,
    str_field,
)

#: Our role names that Ollama spells differently (it knows system/user/assistant/tool).
_ROLES: Final[Mapping[str, str]] = {"developer": "system"}
#: Ollama's `done_reason` in our words. "load" and "unload" answer a request without messages
#: (Ollama loads or unloads the model and generates nothing): nothing was cut short, so "stop".
#: Values not listed pass through as the vendor said them.
_FINISH_REASONS: Final[Mapping[str, str]] = {
    "stop": "stop",
    "length": "length",
    "load": "stop",
    "unload": "stop",
}
#: Model families whose `think` takes a level (gpt-oss reasons at low/medium/high and cannot
#: be switched off); every other model's `think` is a switch.
_LEVELLED_FAMILIES: Final = ("gpt-oss",)
#: `reasoning_effort` -> `think`, for levelled models and for the rest.
_LEVELS: Final[Mapping[str, bool | str]] = {"low": "low", "medium": "medium", "high": "high"}
_SWITCH: Final[Mapping[str, bool | str]] = {"none": False, "medium": True}
#: What every model can be asked through Ollama; whether the model itself has tools, vision
#: or thinking only the server knows, and it refuses with a 400 naming what is missing.
_COMMON: Final = Capabilities(
    tools=True,
    tool_choices=frozenset({ToolChoiceMode.AUTO, ToolChoiceMode.NONE}),
    images=True,
    json_object=True,
    json_schema=True,
    seed=True,
)
_EMPTY_PARAMETERS: Final[Mapping[str, object]] = {"type": "object", "properties": {}}


# -- capabilities ------------------------------------------------------------------------------


def capabilities_for(model: str) -> Capabilities:
    """What the adapter honours for `model`: the same for every model but the reasoning efforts."""
    return _LEVELLED if _takes_levels(model) else _SWITCHED


def _takes_levels(model: str) -> bool:
    """Whether `model` ("gpt-oss:20b", "library/gpt-oss", ...) belongs to a levelled family."""
    base = model.rsplit("/", 1)[-1].split(":", 1)[0].lower()
    return base.startswith(_LEVELLED_FAMILIES)


def _think_values(model: str) -> Mapping[str, bool | str]:
    return _LEVELS if _takes_levels(model) else _SWITCH


_LEVELLED: Final = replace(_COMMON, reasoning_efforts=frozenset(_LEVELS))
_SWITCHED: Final = replace(_COMMON, reasoning_efforts=frozenset(_SWITCH))


# -- our request as Ollama's body ------------------------------------------------------------


def to_wire(request: ChatRequest, *, stream: bool) -> dict[str, object]:
    """Build the `/api/chat` body; `UnsupportedContentError` for what Ollama cannot take."""
    body: dict[str, object] = {
        "model": request.model,
        "messages": messages_to_wire(request.messages),
        "stream": stream,  # always explicit: Ollama's default is to stream
    }
    choice = request.tool_choice
    if request.tools and (choice is None or choice.mode is not ToolChoiceMode.NONE):
        if choice is not None and choice.mode is not ToolChoiceMode.AUTO:
            raise UnsupportedContentError(f"tool_choice {choice.mode.name}")
        body["tools"] = [tool_to_wire(tool) for tool in request.tools]
    if request.parallel_tool_calls is False:
        raise UnsupportedContentError("parallel_tool_calls false")
    form = format_to_wire(request.response_format)
    if form is not None:
        body["format"] = form
    if request.reasoning_effort is not None:
        body["think"] = think_to_wire(request.reasoning_effort, request.model)
    options = options_to_wire(request.sampling)
    if options:
        body["options"] = options
    return body


def options_to_wire(sampling: Sampling) -> dict[str, object]:
    """`options`, with only the parameters that are set."""
    options: dict[str, object] = {}
    if sampling.temperature is not None:
        options["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        options["top_p"] = sampling.top_p
    if sampling.max_tokens is not None:
        options["num_predict"] = sampling.max_tokens
    if sampling.stop:
        options["stop"] = list(sampling.stop)
    if sampling.seed is not None:
        options["seed"] = sampling.seed
    return options


def messages_to_wire(messages: Sequence[Message]) -> list[dict[str, object]]:
    """The conversation; a tool result names the tool its `tool_call_id` called."""
    names: dict[str, str] = {}  # call id -> tool name, from the turns so far
    out: list[dict[str, object]] = []
    for message in messages:
        out.append(message_to_wire(message, names))
        names.update((call.id, call.name) for call in message.tool_calls)
    return out


def message_to_wire(message: Message, names: Mapping[str, str]) -> dict[str, object]:
    """One message; `names` maps the ids of earlier calls to their tools' names."""
    wire: dict[str, object] = {"role": _ROLES.get(message.role, message.role)}
    wire["content"] = message.text
    images = [image_to_wire(part) for part in message.parts if isinstance(part, ImagePart)]
    if images:
        if message.role == "tool":
            raise UnsupportedContentError("an image in a tool result (ImagePart)")
        wire["images"] = images
    thinking = "".join(part.text for part in message.reasoning)
    if thinking:
        wire["thinking"] = thinking
    if message.tool_calls:
        wire["tool_calls"] = [call_to_wire(call) for call in message.tool_calls]
    if message.role == "tool":
        name = names.get(message.tool_call_id)
        if name is None:
            raise UnsupportedContentError(
                f"a tool result whose tool_call_id {message.tool_call_id[:64]!r} answers no "
                "earlier call"
            )
        wire["tool_name"] = name
        wire["tool_call_id"] = message.tool_call_id
    return wire


def image_to_wire(image: ImagePart) -> str:
    """An image as Ollama takes it: its bytes in standard base64, without a `data:` prefix."""
    if image.data:
        return base64.b64encode(image.data).decode("ascii")
    head, comma, payload = image.url.partition(",")
    if image.url.startswith("data:") and comma and head.endswith(";base64"):
        return payload
    raise UnsupportedContentError(
        "an image URL (ImagePart): Ollama takes images as data, not as links to fetch"
    )


def call_to_wire(call: ToolCall) -> dict[str, object]:
    """An earlier tool call: Ollama's arguments are an object, not JSON text."""
    return {"id": call.id, "function": {"name": call.name, "arguments": _arguments(call)}}


def _arguments(call: ToolCall) -> object:
    arguments = arguments_object(call.arguments)
    if arguments is None:
        raise UnsupportedContentError(f"tool call {call.id[:64]!r} whose arguments are no object")
    return arguments


def tool_to_wire(tool: Tool) -> dict[str, object]:
    """A tool definition; a tool without arguments gets an empty object schema."""
    function: dict[str, object] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = dict(tool.parameters) if tool.parameters else _EMPTY_PARAMETERS
    return {"type": "function", "function": function}


def format_to_wire(form: ResponseFormat | None) -> object:
    """`format`: "json", the schema, or None for text."""
    if form is None or form.type is ResponseFormatType.TEXT:
        return None
    if form.type is ResponseFormatType.JSON_OBJECT:
        return "json"
    if form.schema is None:
        raise UnsupportedContentError("a JSON_SCHEMA response format without a schema")
    return dict(form.schema)


def think_to_wire(effort: str, model: str) -> bool | str:
    """`think` for `reasoning_effort` on `model`; `UnsupportedContentError` if it has none."""
    value = _think_values(model).get(effort)
    if value is None:
        raise UnsupportedContentError(f"reasoning_effort {effort!r} on model {model[:64]!r}")
    return value


# -- Ollama's reply as ours ------------------------------------------------------------------


def from_wire(body: object, *, completion_id: str) -> Completion:
    """Convert a whole `/api/chat` reply; it has no id of its own, so the caller gives one."""
    reply = as_object(body, "reply")
    message = as_object(reply.get("message"), "message")
    calls = tuple(calls_from_wire(message))
    thinking = str_field(message, "thinking") or ""
    return Completion(
        id=completion_id,
        model=str_field(reply, "model") or "",
        content=str_field(message, "content") or "",
        finish_reason=finish_reason_from_wire(reply, called=bool(calls)),
        usage=usage_from_wire(reply),
        tool_calls=calls,
        reasoning=thinking,
        # As a stream's reasoning deltas fold: one part of text, sent back as `thinking`.
        reasoning_parts=(ReasoningPart(thinking),) if thinking else (),
    )


def calls_from_wire(message: Mapping[str, object]) -> Iterator[ToolCall]:
    """The whole tool calls of a message (or stream line), in order: ids kept or minted."""
    calls = message.get("tool_calls")
    if calls is None:
        return
    if not isinstance(calls, list):
        raise MalformedReplyError("tool_calls is not a list")
    for raw in calls:
        call = as_object(raw, "tool call")
        function = as_object(call.get("function"), "tool call function")
        name = str_field(function, "name")
        if not name:
            raise MalformedReplyError("tool call has no name")
        arguments = function.get("arguments")
        text = json_arguments(
            None if arguments is None else as_object(arguments, "tool call arguments")
        )
        yield ToolCall(str_field(call, "id") or mint_call_id(), name, text)


def call_delta(call: ToolCall, index: int) -> ToolCallDelta:
    """A whole call as the one delta a stream gives it."""
    return ToolCallDelta(index, call.id, call.name, call.arguments)


def finish_reason_from_wire(reply: Mapping[str, object], *, called: bool) -> str:
    """`done_reason` in our words: "tool_calls" when the model called tools and was not cut.

    Ollama says "stop" after calls; a server too old to send any reason finished normally.
    """
    reason = str_field(reply, "done_reason") or "stop"
    ours = _FINISH_REASONS.get(reason, reason)
    return "tool_calls" if called and ours == "stop" else ours


def usage_from_wire(reply: Mapping[str, object]) -> Usage:
    """Token counts of a finished reply; Ollama reports no cached or reasoning tokens apart."""
    prompt, completion = int_field(reply, "prompt_eval_count"), int_field(reply, "eval_count")
    return Usage(prompt, completion, prompt + completion)
