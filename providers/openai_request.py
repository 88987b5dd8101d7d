"""The Chat Completions request body: messages, tools, tool choice, response format, reasoning.

`to_wire` is pure. Messages go as OpenAI words them (`types/chat/chat_completion_*_param.py` in
`openai-python`): a single text part as a plain string, anything else as content parts
(`{"type": "text"}`, `{"type": "image_url", "image_url": {"url", "detail"}}`, bytes as a
base64 data URL); an assistant turn's calls as `tool_calls` (`content` null when it said
nothing); a tool result as `{"role": "tool", "tool_call_id", "content"}`. Reasoning parts of
the history are not sent: Chat Completions returns no reasoning state to send back.

OpenAI refuses a history where an assistant turn's calls are not all answered by the tool
messages right after it, or a tool message that does not follow the turn it answers:
`RefusedRequestError` says so (with the field) before anything is sent. Schemas (tool
parameters, a JSON-schema answer) go with integral numbers as integers; a strict one has its
objects closed (`additionalProperties: false` where the caller left it unsaid), which OpenAI's
strict mode requires; `required` is left as the caller wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from providers.openai_models import profile_of
from providers.types import (
    ChatRequest,
    Message,
    Part,
    ResponseFormat,
    ResponseFormatType,
    TextPart,
    Tool,
    ToolChoice,
    ToolChoiceMode,
)
from providers.wire import RefusedRequestError, image_url, integral

#: The name a JSON-schema answer goes under when the caller gave none (OpenAI requires one).
DEFAULT_SCHEMA_NAME: Final = "response"
_EMPTY_OBJECT: Final[Mapping[str, object]] = {"type": "object", "properties": {}}
#: JSON Schema keywords holding a map of subschemas, one subschema, or a list of them.
_SCHEMA_MAPS: Final = frozenset({"properties", "$defs", "definitions", "patternProperties"})
_SCHEMA_ONE: Final = frozenset({"items", "additionalProperties", "not", "contains"})
_SCHEMA_LISTS: Final = frozenset({"anyOf", "allOf", "oneOf", "prefixItems"})


def to_wire(request: ChatRequest, *, stream: bool) -> dict[str, object]:
    """Build the Chat Completions request body, sending only the parameters that are set."""
    profile = profile_of(request.model)
    body: dict[str, object] = {"model": request.model, "messages": messages(request.messages)}
    sampling = request.sampling
    if sampling.temperature is not None:
        body["temperature"] = sampling.temperature
    if sampling.max_tokens is not None:
        limit = "max_completion_tokens" if profile.completion_tokens_limit else "max_tokens"
        body[limit] = sampling.max_tokens
    if sampling.top_p is not None:
        body["top_p"] = sampling.top_p
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if request.tools:
        body["tools"] = [tool(t) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = tool_choice(request.tool_choice)
        parallel = request.parallel_tool_calls
        # True is the default: a model without the switch is asked nothing.
        if parallel is False or (parallel is True and profile.parallel_switch):
            body["parallel_tool_calls"] = parallel
    if request.response_format is not None:
        form = response_format(request.response_format)
        if form is not None:
            body["response_format"] = form
    effort = request.reasoning_effort
    # "none" to a model that takes no effort asks for what it does anyway: nothing is sent.
    if effort is not None and (effort != "none" or profile.capabilities.reasoning_efforts):
        body["reasoning_effort"] = effort
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# -- messages -----------------------------------------------------------------------------------


def messages(turns: Sequence[Message]) -> list[dict[str, object]]:
    """The conversation in OpenAI's words, its tool calls checked to be answered right after."""
    out: list[dict[str, object]] = []
    unanswered: dict[str, int] = {}  # call id -> position of the call, for the turn just before
    caller = -1  # the assistant turn those calls belong to
    for index, message in enumerate(turns):
        role, parts = message.role, message.parts
        if (
            not unanswered
            and len(parts) == 1
            and type(parts[0]) is TextPart
            and role != "tool"
            and not message.tool_calls
        ):
            out.append({"role": role, "content": parts[0].text})  # nearly every message
            continue
        if role == "tool":
            if unanswered.pop(message.tool_call_id, None) is None:
                raise RefusedRequestError(
                    f"messages[{index}].tool_call_id",
                    "cannot send this: a tool result must come right after the assistant turn "
                    f"whose call it answers; {message.tool_call_id!r} is no call of the turn "
                    "before it",
                )
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id,
                    "content": content(index, message),
                }
            )
            continue
        if unanswered:
            _unanswered(caller, unanswered)
        if role == "assistant":
            out.append(assistant(index, message))
            if message.tool_calls:
                caller = index
                unanswered = {call.id: n for n, call in enumerate(message.tool_calls)}
        else:
            out.append({"role": role, "content": content(index, message)})
    if unanswered:
        _unanswered(caller, unanswered)
    return out


def _unanswered(index: int, calls: Mapping[str, int]) -> None:
    call_id, number = next(iter(calls.items()))
    raise RefusedRequestError(
        f"messages[{index}].tool_calls[{number}]",
        "cannot send this: every call needs its tool result in the messages right after the "
        f"assistant turn that made it; nothing answers {call_id!r}",
    )


def assistant(index: int, message: Message) -> dict[str, object]:
    """An assistant turn: its text (null when it only called tools) and its calls."""
    if not message.tool_calls:
        return {"role": "assistant", "content": content(index, message)}
    return {
        "role": "assistant",
        "content": content(index, message) if message.parts else None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments or "{}"},
            }
            for call in message.tool_calls
        ],
    }


def content(index: int, message: Message) -> str | list[dict[str, object]]:
    """A message's content: one text part as a string, else content parts in order."""
    parts = message.parts
    if not parts:
        return ""
    if len(parts) == 1 and type(parts[0]) is TextPart:
        return parts[0].text  # nearly every message
    return [_part(index, number, part, message.role) for number, part in enumerate(parts)]


def _part(index: int, number: int, part: Part, role: str) -> dict[str, object]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if role != "user":  # OpenAI takes images from the user only (tool messages: text parts)
        raise RefusedRequestError(
            f"messages[{index}].parts[{number}].image",
            f"cannot send this: OpenAI takes images in user turns only, not in a {role!r} turn",
        )
    image: dict[str, object] = {"url": image_url(part)}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


# -- tools, choice, format ----------------------------------------------------------------------


def tool(definition: Tool) -> dict[str, object]:
    """A function tool."""
    function: dict[str, object] = {"name": definition.name}
    if definition.description:
        function["description"] = definition.description
    if definition.parameters or definition.strict:
        function["parameters"] = schema(definition.parameters or _EMPTY_OBJECT, definition.strict)
    if definition.strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def tool_choice(choice: ToolChoice) -> object:
    """ "auto", "none", "required", or the named function."""
    if choice.mode is ToolChoiceMode.TOOL:
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode.value


def response_format(form: ResponseFormat) -> dict[str, object] | None:
    """`json_object`, or `json_schema` with its name, schema and strictness; None for text."""
    if form.type is ResponseFormatType.JSON_OBJECT:
        return {"type": "json_object"}
    if form.type is not ResponseFormatType.JSON_SCHEMA:
        return None
    spec: dict[str, object] = {
        "name": form.name or DEFAULT_SCHEMA_NAME,
        "schema": schema(form.schema or _EMPTY_OBJECT, form.strict),
    }
    if form.strict:
        spec["strict"] = True
    return {"type": "json_schema", "json_schema": spec}


def schema(value: Mapping[str, object], strict: bool) -> dict[str, object]:
    """A copy of a JSON Schema with integral numbers as integers; with `strict`, every object
    closed where the caller did not say (`additionalProperties: false`)."""
    out: dict[str, object] = {}
    for key, item in value.items():
        if key in _SCHEMA_MAPS and isinstance(item, Mapping):
            out[key] = {
                name: schema(sub, strict) if isinstance(sub, Mapping) else integral(sub)
                for name, sub in item.items()
            }
        elif key in _SCHEMA_ONE and isinstance(item, Mapping):
            out[key] = schema(item, strict)
        elif key in _SCHEMA_LISTS and isinstance(item, list):
            out[key] = [schema(s, strict) if isinstance(s, Mapping) else integral(s) for s in item]
        else:
            out[key] = integral(item)
    if strict and "additionalProperties" not in out and _is_object_schema(out):
        out["additionalProperties"] = False
    return out


def _is_object_schema(value: Mapping[str, object]) -> bool:
    kind = value.get("type")
    if kind is None:
        return "properties" in value
    return kind == "object" or (isinstance(kind, list) and "object" in kind)
