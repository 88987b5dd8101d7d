"""The Anthropic Messages request body: our `ChatRequest` in Anthropic's wire format.

Pure functions, no I/O (`providers.anthropic` sends what `to_wire` builds). The shapes are
`anthropic-sdk-python` v2.17 `types/message_create_params.py` and the param types it names:

- System and developer turns are joined into the top-level `system` string.
- An assistant turn is its thinking blocks (reasoning parts with a signature, redacted data),
  then its non-blank text, then a `tool_use` block per call (`input` an object).
- A run of user and tool turns that holds tool results is one user turn: the `tool_result`
  blocks first, then the user text and images (Anthropic: "Messages following `tool_use`
  blocks must begin with a matching number of `tool_result` blocks"). Every call must be
  answered in the turn right after it; a request that leaves one unanswered is refused here.
- Images: `base64` sources for data: URLs and bytes, `url` sources for https URLs.
- Tools become `{name, description, input_schema}` (`strict`, with the schema in structured
  outputs' subset, from Claude 4.5); the tool choice `auto`/`none`/`any`/`tool`,
  with `disable_parallel_tool_use` for `parallel_tool_calls` false.
- JSON_SCHEMA answers use `output_config.format` (`anthropic_schema`); Anthropic has no
  schema-less JSON mode, so JSON_OBJECT is refused.
- `reasoning_effort` is thinking: before Claude 4.6 extended thinking, `{"type": "enabled",
  "budget_tokens"}` (at least 1024, below `max_tokens`); from 4.6 adaptive thinking with
  `output_config.effort` (4.7 and later refuse the budget form, and `disabled`). The effort's
  budget is added to the answer's `max_tokens` either way, since Anthropic counts thinking in
  it. "none" is `{"type": "disabled"}` (left out from 4.7: thinking is off unless asked for).
  Thinking refuses a forced tool choice, a temperature other than 1 and a `top_p` below 0.95,
  so those are refused here.

What Anthropic would refuse is `RefusedRequestError` (the field and why), raised before sending.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Final

import orjson

from providers.anthropic_schema import output_schema
from providers.types import (
    ChatRequest,
    ImagePart,
    Message,
    ReasoningPart,
    ResponseFormatType,
    TextPart,
    Tool,
    ToolChoice,
    ToolChoiceMode,
)
from providers.wire import RefusedRequestError, integral

_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
#: A Claude model's version in its name: `claude-<family>-<major>[-<minor>]` (a date is no
#: minor) or, before Claude 4, `claude-<major>-<minor>-<family>`.
_CLAUDE_VERSION: Final = re.compile(
    r"claude-(?:(?:opus|sonnet|haiku)-(?P<major>\d+)(?:-(?P<minor>\d{1,2})(?!\d))?"
    r"|(?P<old_major>\d+)-(?P<old_minor>\d{1,2})-(?:opus|sonnet|haiku))"
)
#: Thinking tokens per `reasoning_effort` (Anthropic's floor is 1024).
THINKING_BUDGETS: Final[Mapping[str, int]] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
}
#: `output_config.effort` per `reasoning_effort`, for adaptive thinking.
ADAPTIVE_EFFORTS: Final[Mapping[str, str]] = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
}
#: The first Claude version that thinks adaptively, and the first that thinks only so.
ADAPTIVE_FROM: Final = (4, 6)
ADAPTIVE_ONLY_FROM: Final = (4, 7)
#: The first Claude version with structured outputs (JSON-schema answers, strict tools).
STRUCTURED_FROM: Final = (4, 5)
#: The lowest `top_p` Anthropic takes with thinking on.
_THINKING_MIN_TOP_P: Final = 0.95
_CHOICES: Final[Mapping[ToolChoiceMode, str]] = {
    ToolChoiceMode.AUTO: "auto",
    ToolChoiceMode.NONE: "none",
    ToolChoiceMode.REQUIRED: "any",
    ToolChoiceMode.TOOL: "tool",
}
_EMPTY_SCHEMA: Final[Mapping[str, object]] = {"type": "object", "properties": {}}

Block = dict[str, object]


def to_wire(request: ChatRequest, *, max_tokens: int, stream: bool) -> dict[str, object]:
    """Build the Messages request body; `max_tokens` applies when the request sets none."""
    system, turns = _conversation(request.messages)
    sampling = request.sampling
    answer_tokens = max_tokens if sampling.max_tokens is None else sampling.max_tokens
    body: dict[str, object] = {"model": request.model, "max_tokens": answer_tokens}
    body["messages"] = turns
    if system:
        body["system"] = system
    if sampling.temperature is not None:
        body["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        body["top_p"] = sampling.top_p
    if sampling.stop:
        body["stop_sequences"] = list(sampling.stop)
    if sampling.seed is not None:
        raise RefusedRequestError("seed", "cannot take a seed: Anthropic's API has none")
    if request.tools:
        strict = (claude_version(request.model) or (0, 0)) >= STRUCTURED_FROM
        body["tools"] = [_tool(tool, strict_ok=strict) for tool in request.tools]
    choice = _tool_choice(request.tool_choice, request.parallel_tool_calls)
    if choice is not None:
        body["tool_choice"] = choice
    _add_output_format(body, request)
    _add_thinking(body, request, answer_tokens)
    if stream:
        body["stream"] = True
    return body


def claude_version(model: str) -> tuple[int, int] | None:
    """(major, minor) of a Claude model name: `claude-sonnet-4-5-20250929` is (4, 5),
    `claude-sonnet-4-20250514` (4, 0), `claude-3-7-sonnet-latest` (3, 7); None for others."""
    match = _CLAUDE_VERSION.search(model)
    if match is None:
        return None
    major = match.group("major") or match.group("old_major")
    minor = match.group("minor") or match.group("old_minor") or "0"
    return int(major), int(minor)


# -- the conversation ---------------------------------------------------------------------------


def _conversation(messages: Sequence[Message]) -> tuple[str, list[Block]]:
    """The `system` string and the turns; runs of user and tool turns merged around results."""
    system: list[str] = []
    turns: list[Block] = []
    run: list[tuple[int, Message]] = []  # consecutive user and tool turns, with their index
    asked: tuple[int, Message] | None = None  # the last assistant turn that called tools
    for index, message in enumerate(messages):
        if message.role in _SYSTEM_ROLES:
            system.append(message.text)
        elif message.role == "assistant":
            turns += _user_turns(run, asked)
            run = []
            turns.append({"role": "assistant", "content": _assistant_content(message)})
            asked = (index, message) if message.tool_calls else None
        else:
            run.append((index, message))
    turns += _user_turns(run, asked)
    return "\n\n".join(text for text in system if text), turns


def _user_turns(run: list[tuple[int, Message]], asked: tuple[int, Message] | None) -> list[Block]:
    """The user turns a run makes: each as it is, or, holding tool results, one merged turn."""
    _check_answers(run, asked)
    if not any(m.role == "tool" for _, m in run):
        return [{"role": "user", "content": _content(m.parts)} for _, m in run]
    results = [_tool_result(m) for _, m in run if m.role == "tool"]
    others = [block for _, m in run if m.role != "tool" for block in _blocks(m.parts)]
    return [{"role": "user", "content": results + others}]


def _check_answers(run: list[tuple[int, Message]], asked: tuple[int, Message] | None) -> None:
    """Every call of `asked` is answered in `run`, and every result in `run` answers one."""
    calls = {call.id for call in asked[1].tool_calls} if asked is not None else set()
    answered = set()
    for index, message in run:
        if message.role != "tool":
            continue
        if message.tool_call_id not in calls:
            raise RefusedRequestError(
                f"messages[{index}].tool_call_id",
                "needs each tool result right after the assistant turn that made the call "
                f"(Anthropic), and {message.tool_call_id[:64]!r} is not one of that turn's calls",
            )
        answered.add(message.tool_call_id)
    if asked is None:
        return
    for number, call in enumerate(asked[1].tool_calls):
        if call.id not in answered:
            raise RefusedRequestError(
                f"messages[{asked[0]}].tool_calls[{number}]",
                f"needs a tool result for call {call.id[:64]!r} in the turn right after it "
                "(Anthropic refuses a tool_use without its tool_result)",
            )


def _assistant_content(message: Message) -> str | list[Block]:
    """Thinking blocks, then non-blank text, then the calls; plain text stays a string."""
    blocks = [block for part in message.reasoning for block in _thinking_block(part)]
    # Anthropic refuses empty and whitespace-only text blocks; an assistant turn that only
    # called tools often carries one.
    blocks += [_text(p.text) for p in message.parts if type(p) is TextPart and p.text.strip()]
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": _arguments(c.arguments)}
        for c in message.tool_calls
    ]
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return str(blocks[0]["text"])
    return blocks if blocks else message.text


def _thinking_block(part: ReasoningPart) -> list[Block]:
    """The block Anthropic issued for `part`; none for reasoning it cannot take back (text
    without a signature, another vendor's state tied to a tool call)."""
    if part.redacted:
        return [{"type": "redacted_thinking", "data": part.redacted}]
    if part.signature and not part.tool_call_id:
        return [{"type": "thinking", "thinking": part.text, "signature": part.signature}]
    return []


def _arguments(arguments: str) -> object:
    """A call's arguments as the object `tool_use.input` is ({} for none)."""
    return orjson.loads(arguments) if arguments else {}


def _tool_result(message: Message) -> Block:
    result: Block = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    if any(type(p) is ImagePart for p in message.parts):
        result["content"] = _blocks(message.parts)
    elif message.text:
        result["content"] = message.text
    return result


def _content(parts: Sequence[TextPart | ImagePart]) -> str | list[Block]:
    """A user turn's content: one text as a string (nearly every turn), else blocks."""
    if len(parts) == 1 and type(parts[0]) is TextPart:
        return parts[0].text
    return _blocks(parts) if parts else ""


def _blocks(parts: Sequence[TextPart | ImagePart]) -> list[Block]:
    return [
        _text(part.text) if isinstance(part, TextPart) else _image(part)
        for part in parts
        if not isinstance(part, TextPart) or part.text
    ]


def _text(text: str) -> Block:
    return {"type": "text", "text": text}


def _image(image: ImagePart) -> Block:
    """A `base64` source for data, a `url` source for an https URL (Anthropic fetches it).

    Anthropic takes no `detail`: the model sees the image as sent.
    """
    if image.data:
        data, media_type = base64.b64encode(image.data).decode(), image.media_type
    elif image.url.startswith("data:"):
        header, _, data = image.url.partition(",")
        media_type = header[len("data:") :].split(";", 1)[0]
    else:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


# -- tools, answer format, thinking -----------------------------------------------------------


def _tool(tool: Tool, *, strict_ok: bool) -> Block:
    """A tool definition; `strict` only where the model has structured outputs (the field
    asks for it "where the vendor can")."""
    schema: Mapping[str, object] = tool.parameters or _EMPTY_SCHEMA
    if "type" not in schema:
        schema = {"type": "object", **schema}
    wire: Block = {"name": tool.name}
    if tool.description:
        wire["description"] = tool.description
    if tool.strict and strict_ok:
        # Strict tools hold arguments to the schema, which must be in structured outputs' subset.
        wire["input_schema"] = output_schema(schema)
        wire["strict"] = True
    else:
        wire["input_schema"] = integral(schema)
    return wire


def _tool_choice(choice: ToolChoice | None, parallel: bool | None) -> Block | None:
    if choice is None and parallel is not False:
        return None
    mode = ToolChoiceMode.AUTO if choice is None else choice.mode
    wire: Block = {"type": _CHOICES[mode]}
    if mode is ToolChoiceMode.TOOL and choice is not None:
        wire["name"] = choice.name
    if parallel is False and mode is not ToolChoiceMode.NONE:
        wire["disable_parallel_tool_use"] = True
    return wire


def _add_output_format(body: dict[str, object], request: ChatRequest) -> None:
    form = request.response_format
    if form is None or form.type is ResponseFormatType.TEXT:
        return
    if form.type is ResponseFormatType.JSON_OBJECT or form.schema is None:
        raise RefusedRequestError(
            "response_format.type",
            "cannot answer with a JSON object without a schema: Anthropic has no JSON mode",
        )
    body["output_config"] = {
        "format": {"type": "json_schema", "schema": output_schema(form.schema)}
    }


def _add_thinking(body: dict[str, object], request: ChatRequest, answer_tokens: int) -> None:
    """Thinking in the form the model takes: a budget before Claude 4.6, adaptive (with an
    effort) from 4.6, and from 4.7 on only adaptive (no `disabled` either: left out, thinking
    is off)."""
    effort = request.reasoning_effort
    if effort is None:
        return
    version = claude_version(request.model) or (0, 0)
    if effort == "none":
        if version < ADAPTIVE_ONLY_FROM:
            body["thinking"] = {"type": "disabled"}
        return
    budget = THINKING_BUDGETS[effort]
    if version >= ADAPTIVE_FROM:
        # Summarized: Claude 4.7 and later omit the thinking text unless asked for it.
        body["thinking"] = {"type": "adaptive", "display": "summarized"}
        config = body.get("output_config")
        body["output_config"] = {
            **(config if isinstance(config, dict) else {}),
            "effort": ADAPTIVE_EFFORTS[effort],
        }
    else:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    body["max_tokens"] = answer_tokens + budget
    _check_thinking(request)


def _check_thinking(request: ChatRequest) -> None:
    """What Anthropic refuses while thinking is on, named by its field."""
    while_thinking = f"while reasoning (reasoning_effort {request.reasoning_effort!r})"
    choice = request.tool_choice
    if choice is not None and choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.TOOL):
        raise RefusedRequestError("tool_choice", f"cannot force a tool call {while_thinking}")
    sampling = request.sampling
    if sampling.temperature is not None and sampling.temperature != 1:
        raise RefusedRequestError("temperature", f"takes only 1 {while_thinking}")
    if sampling.top_p is not None and sampling.top_p < _THINKING_MIN_TOP_P:
        raise RefusedRequestError("top_p", f"takes only 0.95 to 1 {while_thinking}")
    _check_thinking_replayed(request.messages)


def _check_thinking_replayed(messages: Sequence[Message]) -> None:
    """The assistant turn whose calls the last turn answers carries its thinking blocks.

    Anthropic refuses the next turn of a tool loop with thinking on otherwise ("a final
    `assistant` message must start with a thinking block").
    """
    index = len(messages) - 1
    answered = False
    while index >= 0 and messages[index].role != "assistant":
        answered = answered or messages[index].role == "tool"
        index -= 1
    if index < 0 or not answered:
        return
    if not any(_thinking_block(part) for part in messages[index].reasoning):
        raise RefusedRequestError(
            f"messages[{index}].reasoning",
            "needs the thinking blocks of a turn that called tools sent back (its reasoning "
            "parts, with their signatures) while reasoning is on",
        )
