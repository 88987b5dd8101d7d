"""The Gemini GenerateContentRequest body for a `ChatRequest`, and what a Gemini model can honour.

A pure converter (`to_wire`) and the per-model `Capabilities` rule (`capabilities_for`); the
I/O and the reply side live in `providers.gemini`. Field names are the REST (proto JSON) names
of the Gemini API (python-genai `types.py`, ai.google.dev/api/generate-content):

- Turns: system and developer text becomes `systemInstruction`; user text and images
  (`inlineData`, base64) a "user" Content; an assistant turn a "model" Content of its thought
  parts, its text and one `functionCall` part per call, each thought signature back on the part
  it came with; tool results `functionResponse` parts (the function's name looked up by
  `tool_call_id` from the call, a text result wrapped as `{"output": text}`, the key Google's
  `FunctionResponse.response` docs name) in one "user" Content per batch. Consecutive turns of
  one role are merged into one Content.
- A call must be answered by the tool results right after its turn, and a result must answer a
  call of the turn right before it: Gemini 400s otherwise ("the number of function response
  parts is equal to the number of function call parts"), so the adapter refuses first.
- Gemini 3 refuses a function call turn of the current exchange whose first call has no thought
  signature (ai.google.dev/gemini-api/docs/thought-signatures); a history that did not come
  from Gemini (another provider, a hand-written example) gets the documented dummy signature.
- Gemini fetches no arbitrary https URL (vercel/ai#10349: "Unsupported file uri"), so images go
  inline; the gateway fetches and inlines https images before the adapter sees them.
- Tools as `functionDeclarations` with `parametersJsonSchema` (JSON Schema, unlike the OpenAPI
  subset of `parameters`); tool choice as `toolConfig.functionCallingConfig` (auto AUTO, none
  NONE, required ANY, a named tool ANY + `allowedFunctionNames`). Gemini has no switch for
  parallel calls. JSON answers: `responseMimeType` "application/json", plus
  `responseJsonSchema` for a schema; with tools only on Gemini 3 (earlier models answer "Tool
  use with a response mime type: 'application/json' is unsupported"), so the adapter refuses
  the pair before then. Reasoning: `thinkingConfig` (`thinkingBudget` on 2.5,
  `thinkingLevel` on 3) with `includeThoughts` so the thoughts come back. `seed` as is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Final

from providers.base import Capabilities
from providers.types import (
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    ResponseFormatType,
    TextPart,
    Tool,
    ToolChoice,
    ToolChoiceMode,
)
from providers.wire import UnsupportedContentError, arguments_object

Part = dict[str, object]

_ROLES: Final[Mapping[str, str]] = {"user": "user", "assistant": "model", "tool": "user"}
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
#: Google's documented stand-in for a function call turn that Gemini did not sign.
SKIP_SIGNATURE: Final = "skip_thought_signature_validator"
_MODES: Final[Mapping[ToolChoiceMode, str]] = {
    ToolChoiceMode.AUTO: "AUTO",
    ToolChoiceMode.NONE: "NONE",
    ToolChoiceMode.REQUIRED: "ANY",
    ToolChoiceMode.TOOL: "ANY",
}
#: Gemini 2.5 `thinkingBudget` per effort: inside every 2.5 model's range (pro 128-32768,
#: flash 0-24576, flash-lite 512-24576); "none" is 0, which only the flash models take.
_BUDGETS: Final[Mapping[str, int]] = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
}
_EFFORTS_25: Final = frozenset({"minimal", "low", "medium", "high"})
#: Gemini 3 Pro thinks at LOW or HIGH, Gemini 3 Flash also at MINIMAL and MEDIUM; no 3 model
#: turns thinking off (ai.google.dev/gemini-api/docs/thinking).
_EFFORTS_3_PRO: Final = frozenset({"low", "high"})
_EFFORTS_3: Final = frozenset({"minimal", "low", "medium", "high"})
_ALL_CHOICES: Final = frozenset(ToolChoiceMode)


def capabilities_for(model: str) -> Capabilities:
    """What the adapter honours with `model`: everything but https image URLs, parallel calls
    off and images in tool results (and, before Gemini 3, a JSON answer with tools); reasoning
    efforts by model family (none on 2.0 and older).
    """
    return Capabilities(
        tools=True,
        tool_choices=_ALL_CHOICES,
        images=True,
        json_object=True,
        json_schema=True,
        # Before Gemini 3: "Tool use with a response mime type: 'application/json' is unsupported".
        json_with_tools=is_gemini_3(model),
        reasoning_efforts=reasoning_efforts(model),
        seed=True,
    )


def reasoning_efforts(model: str) -> frozenset[str]:
    """The `reasoning_effort` values `model` takes (bare name, "models/" prefix allowed)."""
    name = model.removeprefix("models/")
    if name.startswith("gemini-3"):
        return _EFFORTS_3_PRO if "-pro" in name else _EFFORTS_3
    if name.startswith("gemini-2.5"):
        return _EFFORTS_25 if "-pro" in name else _EFFORTS_25 | {"none"}
    return frozenset()


def is_gemini_3(model: str) -> bool:
    """Whether `model` is a Gemini 3 model: it thinks in levels, and refuses a function call
    turn without its thought signature."""
    return model.removeprefix("models/").startswith("gemini-3")


# -- the body ------------------------------------------------------------------------------------


def to_wire(request: ChatRequest) -> dict[str, object]:
    """Build the GenerateContentRequest body, sending only what is set.

    Raises `UnsupportedContentError` for what Gemini cannot take or would refuse: an image URL
    that is not a data: URL, a call left unanswered, a result that answers no call right before.
    """
    system, contents = _contents(request.messages, is_gemini_3(request.model))
    body: dict[str, object] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
        if request.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _calling_config(request.tool_choice)}
    config = _generation_config(request)
    if config:
        body["generationConfig"] = config
    return body


def _contents(
    messages: Sequence[Message], sign: bool
) -> tuple[list[Part], list[dict[str, object]]]:
    system: list[Part] = []
    turns: list[tuple[str, list[Part]]] = []
    pending: dict[str, str] = {}  # the calls of the last model turn not answered yet: id -> name
    for index, message in enumerate(messages):
        if message.role in _SYSTEM_ROLES:
            system.extend(_text_parts(message))
            continue
        if message.role == "tool":
            name = pending.pop(message.tool_call_id, None)
            if name is None:
                raise UnsupportedContentError(
                    f"messages[{index}].tool_call_id: answers no call of the assistant turn "
                    "right before it, the only place Gemini takes a tool result"
                )
            parts = [_function_response(message, index, name)]
        else:
            _all_answered(pending, index)
            if message.role == "assistant":
                parts = _model_parts(message)
                pending = {call.id: call.name for call in message.tool_calls}
            else:
                parts = _user_parts(message, index)
        if not parts:
            continue  # Gemini rejects an empty text part
        role = _ROLES.get(message.role, "user")
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(parts)
        else:
            turns.append((role, parts))
    _all_answered(pending, len(messages))
    _sign_unsigned_turns(turns, sign)
    return system, [{"role": role, "parts": parts} for role, parts in turns]


def _all_answered(pending: Mapping[str, str], index: int) -> None:
    if pending:
        raise UnsupportedContentError(
            f"messages[{index}]: tool call {next(iter(pending))!r} has no tool result right "
            "after its turn, and Gemini needs one for every call"
        )


def _text_parts(message: Message) -> list[Part]:
    return [{"text": p.text} for p in message.parts if isinstance(p, TextPart) and p.text]


def _user_parts(message: Message, index: int) -> list[Part]:
    parts: list[Part] = []
    for number, part in enumerate(message.parts):
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        else:
            parts.append(_image(part, f"messages[{index}].parts[{number}]"))
    return parts


def _image(image: ImagePart, where: str) -> Part:
    if image.data:
        data, media_type = base64.b64encode(image.data).decode(), image.media_type
    elif image.url.startswith("data:"):
        header, _, data = image.url.partition(",")
        media_type = header.removeprefix("data:").removesuffix(";base64")
        try:
            base64.b64decode(data, validate=True)
        except binascii.Error:
            raise UnsupportedContentError(f"{where}.image.url: the data is not base64") from None
    else:
        raise UnsupportedContentError(
            f"{where}.image.url: Gemini fetches no image URL; send the image as data"
        )
    return {"inlineData": {"mimeType": media_type, "data": data}}


def _model_parts(message: Message) -> list[Part]:
    """Thought parts, then the text, then the calls, each signature back on the part it was on.

    A signature that came with a call goes on that call's part; one that came with text (an
    answer without calls) on the last text part, or, with no text, on its own thought part.
    """
    call_signatures: dict[str, str] = {}
    thoughts: list[Part] = []
    text_signature = ""
    for reasoning in message.reasoning:
        if reasoning.text:
            thoughts.append({"text": reasoning.text, "thought": True})
        if reasoning.tool_call_id:
            call_signatures[reasoning.tool_call_id] = reasoning.signature
        elif reasoning.signature:
            text_signature = reasoning.signature
            if not message.text and thoughts:
                thoughts[-1]["thoughtSignature"] = reasoning.signature
    texts = _text_parts(message)
    if texts and text_signature:
        texts[-1]["thoughtSignature"] = text_signature
    calls: list[Part] = []
    for call in message.tool_calls:
        part: Part = {
            "functionCall": {"id": call.id, "name": call.name, "args": _args(call.arguments)}
        }
        if call_signatures.get(call.id):
            part["thoughtSignature"] = call_signatures[call.id]
        calls.append(part)
    return [*thoughts, *texts, *calls]


def _sign_unsigned_turns(turns: list[tuple[str, list[Part]]], sign: bool) -> None:
    """Gemini 3: a model turn whose first call carries no signature gets Google's dummy one."""
    if not sign:
        return
    for role, parts in turns:
        first = next((p for p in parts if "functionCall" in p), None)
        if role == "model" and first is not None and not first.get("thoughtSignature"):
            first["thoughtSignature"] = SKIP_SIGNATURE


def _args(arguments: str) -> object:
    value = arguments_object(arguments)
    if value is None:  # validation refuses these before an adapter is asked
        raise UnsupportedContentError("tool_calls.arguments: not a JSON object")
    return value


def _function_response(message: Message, index: int, name: str) -> Part:
    for number, part in enumerate(message.parts):
        if not isinstance(part, TextPart):
            raise UnsupportedContentError(
                f"messages[{index}].parts[{number}].image: Gemini takes no image in a tool result"
            )
    response = {"id": message.tool_call_id, "name": name, "response": {"output": message.text}}
    return {"functionResponse": response}


# -- tools and config ----------------------------------------------------------------------------


def _declaration(tool: Tool) -> dict[str, object]:
    declaration: dict[str, object] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    if tool.parameters:
        declaration["parametersJsonSchema"] = _json_schema(tool.parameters)
    return declaration


def _json_schema(schema: Mapping[str, object]) -> dict[str, object]:
    """The schema as Gemini's JSON Schema fields take it: `$schema` (a dialect URI it does not
    list among the keywords it reads) left out."""
    return {key: value for key, value in schema.items() if key != "$schema"}


def _calling_config(choice: ToolChoice) -> dict[str, object]:
    config: dict[str, object] = {"mode": _MODES[choice.mode]}
    if choice.mode is ToolChoiceMode.TOOL:
        config["allowedFunctionNames"] = [choice.name]
    return config


def _generation_config(request: ChatRequest) -> dict[str, object]:
    sampling = request.sampling
    settings = (
        ("temperature", sampling.temperature),
        ("topP", sampling.top_p),
        ("maxOutputTokens", sampling.max_tokens),
        ("stopSequences", list(sampling.stop) or None),
        ("seed", sampling.seed),
    )
    config: dict[str, object] = {name: value for name, value in settings if value is not None}
    form = _format_config(request.response_format)
    if form and request.tools and not is_gemini_3(request.model):
        raise UnsupportedContentError(
            "response_format: Gemini models before Gemini 3 cannot answer in JSON with tools"
        )
    config.update(form)
    effort = request.reasoning_effort
    if effort is not None and effort in reasoning_efforts(request.model):
        # "none" to a model that does not think asks nothing of it: no thinkingConfig at all.
        config["thinkingConfig"] = _thinking_config(request.model, effort)
    return config


def _format_config(form: ResponseFormat | None) -> dict[str, object]:
    if form is None or form.type is ResponseFormatType.TEXT:
        return {}
    config: dict[str, object] = {"responseMimeType": "application/json"}
    if form.type is ResponseFormatType.JSON_SCHEMA and form.schema is not None:
        config["responseJsonSchema"] = _json_schema(form.schema)
    return config


def _thinking_config(model: str, effort: str) -> dict[str, object]:
    if is_gemini_3(model):
        return {"thinkingLevel": effort.upper(), "includeThoughts": True}
    if effort == "none":
        return {"thinkingBudget": 0}
    return {"thinkingBudget": _BUDGETS[effort], "includeThoughts": True}
