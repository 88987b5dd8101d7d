"""Cohere v2 Chat requests: what a deployment can do with a model, and the request body.

`capabilities(model)` says what the adapter honours for a model, by Cohere's model families
(docs.cohere.com/docs/models and `cohere-python` v7.3 `v2/raw_client.py`):

- tools on every Command model; none on the vision models (Command A Vision, Aya Vision) or the
  Aya chat models, which Cohere documents without tool use;
- `tool_choice` REQUIRED and NONE on Command R7B and newer ("only compatible with models
  Command-r7b and newer"), so not on the Command R / R+ models; a named choice never (Cohere's
  `tool_choice` is `"REQUIRED" | "NONE"`); no switch to turn parallel calls off;
- images (data URIs and web URLs, which Cohere fetches: `ImageUrl.url` "can be either a base64
  data URI or a web URL") on the vision models only, never in a tool result (tool content is
  text and documents);
- JSON answers (`response_format` json_object, with an optional `json_schema`) everywhere;
- `reasoning_effort` on the reasoning models (a "reasoning" model name: Command A Reasoning),
  whose reasoning is hybrid, so "none" switches it off;
- `seed` everywhere.

`to_wire` maps a request onto the body. Cohere cannot give a JSON answer when tools are sent
("not supported when used in combinations with the `documents` or `tools` parameters"), so that
pair is refused (`RefusedRequestError`) rather than one of them dropped; the adapter turns a refusal
into a bad request naming the field and itself, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from providers.base import Capabilities
from providers.types import (
    REASONING_EFFORTS,
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    ResponseFormatType,
    TextPart,
    Tool,
    ToolChoiceMode,
)
from providers.wire import RefusedRequestError, image_url, integral

_ROLES: Final[Mapping[str, str]] = {"developer": "system"}
_ALL_CHOICES: Final = frozenset({ToolChoiceMode.AUTO, ToolChoiceMode.NONE, ToolChoiceMode.REQUIRED})
_AUTO_ONLY: Final = frozenset({ToolChoiceMode.AUTO})
_CHOICES: Final[Mapping[ToolChoiceMode, str]] = {
    ToolChoiceMode.NONE: "NONE",
    ToolChoiceMode.REQUIRED: "REQUIRED",
}
#: Thinking token budgets by effort. Cohere recommends unlimited thinking (so "high" sets no
#: budget) and, with a budget, at least 1K tokens left for the answer (docs.cohere.com/docs/
#: reasoning).
_THINKING_BUDGETS: Final[Mapping[str, int | None]] = {
    "minimal": 512,
    "low": 2048,
    "medium": 8192,
    "high": None,
}
#: Roles whose one text part is the whole message.
_TEXT_ROLES: Final = frozenset({"system", "user"})
_NO_ARGUMENTS: Final[Mapping[str, object]] = {"type": "object", "properties": {}}


# -- capabilities -------------------------------------------------------------------------------


def capabilities(model: str) -> Capabilities:
    """What the adapter honours for `model` (rules in the module docstring)."""
    name = model.lower()
    vision = "vision" in name
    tools = not vision and not name.startswith("aya")
    # Command R and R+ (not R7B) predate `tool_choice`.
    legacy = name.startswith("command-r") and not name.startswith("command-r7b")
    reasoning = "reasoning" in name
    return Capabilities(
        tools=tools,
        tool_choices=_ALL_CHOICES if tools and not legacy else _AUTO_ONLY,
        images=vision,
        image_urls=vision,
        json_object=True,
        json_schema=True,
        json_with_tools=False,  # Cohere refuses response_format with tools
        reasoning_efforts=frozenset(REASONING_EFFORTS) if reasoning else frozenset(),
        seed=True,
    )


# -- the body -----------------------------------------------------------------------------------


def to_wire(request: ChatRequest, *, stream: bool) -> dict[str, object]:
    """Build the v2 Chat request body, sending only what is set; `RefusedRequestError` for what
    Cohere cannot be sent."""
    body: dict[str, object] = {
        "model": request.model,
        "messages": [_message(i, m) for i, m in enumerate(request.messages)],
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
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if request.tools:
        _add_tools(body, request)
    form = request.response_format
    if form is not None and form.type is not ResponseFormatType.TEXT:
        if request.tools:
            raise RefusedRequestError(
                "response_format",
                "cannot answer in JSON when tools are given (Cohere refuses both)",
            )
        body["response_format"] = _response_format(form)
    thinking = _thinking(request)
    if thinking is not None:
        body["thinking"] = thinking
    if stream:
        body["stream"] = True
    return body


def _add_tools(body: dict[str, object], request: ChatRequest) -> None:
    body["tools"] = [_tool(tool) for tool in request.tools]
    # Cohere's strictness is one switch for all tools: holding a non-strict tool to its schema
    # too is still a faithful answer, so one strict tool turns it on.
    if any(tool.strict for tool in request.tools):
        body["strict_tools"] = True
    choice = request.tool_choice
    if choice is not None and choice.mode is not ToolChoiceMode.AUTO:
        wire = _CHOICES.get(choice.mode)
        if wire is None:
            raise RefusedRequestError("tool_choice", f"cannot honour mode {choice.mode.name}")
        body["tool_choice"] = wire
    if request.parallel_tool_calls is False:
        raise RefusedRequestError("parallel_tool_calls", "cannot turn parallel tool calls off")


def _tool(tool: Tool) -> dict[str, object]:
    function: dict[str, object] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = integral(tool.parameters) if tool.parameters else _NO_ARGUMENTS
    return {"type": "function", "function": function}


def _response_format(form: ResponseFormat) -> dict[str, object]:
    wire: dict[str, object] = {"type": "json_object"}
    if form.type is ResponseFormatType.JSON_SCHEMA and form.schema:
        wire["json_schema"] = integral(form.schema)
    return wire


def _thinking(request: ChatRequest) -> dict[str, object] | None:
    effort = request.reasoning_effort
    if effort is None:
        return None
    if effort == "none":
        # Only a reasoning model has thinking to switch off; the others are sent nothing.
        reasons = bool(capabilities(request.model).reasoning_efforts)
        return {"type": "disabled"} if reasons else None
    budget = _THINKING_BUDGETS.get(effort)
    return {"type": "enabled"} if budget is None else {"type": "enabled", "token_budget": budget}


# -- messages -----------------------------------------------------------------------------------


def _message(index: int, message: Message) -> dict[str, object]:
    role = _ROLES.get(message.role, message.role)
    parts = message.parts
    if len(parts) == 1 and type(parts[0]) is TextPart and role in _TEXT_ROLES:
        return {"role": role, "content": parts[0].text}  # nearly every message
    if role == "assistant":
        return _assistant(message)
    if role == "tool":
        wire: dict[str, object] = {"role": "tool"}
        if message.tool_call_id:
            wire["tool_call_id"] = message.tool_call_id
        wire["content"] = _text(index, message, "a tool result")
        return wire
    if role == "user" and any(type(p) is ImagePart for p in message.parts):
        return {"role": role, "content": [_part(p) for p in message.parts]}
    return {"role": role, "content": _text(index, message, f"a {role} turn")}


def _assistant(message: Message) -> dict[str, object]:
    """An assistant turn: its thinking as content items, its text as the tool plan when it
    called tools (as Cohere answers), else as text."""
    wire: dict[str, object] = {"role": "assistant"}
    text = message.text
    thinking = [
        {"type": "thinking", "thinking": part.text} for part in message.reasoning if part.text
    ]
    if message.tool_calls:
        if thinking:
            wire["content"] = thinking
        if text:
            wire["tool_plan"] = text
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments or "{}"},
            }
            for call in message.tool_calls
        ]
    elif thinking:
        wire["content"] = [*thinking, *([{"type": "text", "text": text}] if text else [])]
    else:
        wire["content"] = text
    return wire


def _text(index: int, message: Message, what: str) -> str:
    """The turn's text; `RefusedRequestError` for anything Cohere does not take there."""
    if not message.tool_calls and all(type(p) is TextPart for p in message.parts):
        return message.text
    raise RefusedRequestError(f"messages[{index}]", f"cannot take images or tool calls in {what}")


def _part(part: TextPart | ImagePart) -> dict[str, object]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    image: dict[str, object] = {"url": image_url(part)}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}
