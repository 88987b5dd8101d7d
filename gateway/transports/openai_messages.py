"""OpenAI chat messages as our `Message`s: every role and form, honoured or refused.

A message is a role (`system`, `developer`, `user`, `assistant`, `tool`) with content as a
string or parts (`text`, `image_url`), an assistant turn's `tool_calls`, a tool turn's
`tool_call_id`. Tool call ids come back cut to the vendor's own, the reasoning state they carried
(`openai_reasoning`) restored as the turn's reasoning. The fields the SDK echoes back with an
assistant turn it returned (`refusal`, `annotations`, `audio`, `function_call`) are accepted
empty; an echoed `reasoning_content` is accepted and not sent on (the text the gateway sent,
informational only). A participant `name` and other content part types are refused.
"""

from __future__ import annotations

from typing import Final

from gateway.errors import InvalidArgumentError
from gateway.transports import openai_reasoning
from gateway.transports.openai_errors import UnsupportedParamError
from providers.types import ImagePart, Message, Part, ReasoningPart, TextPart, ToolCall

_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool"})
_MESSAGE_FIELDS: Final = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content"}
)
#: Fields of an assistant message the SDK echoes back as it got them: null/empty asks nothing.
_ECHOED_EMPTY: Final = frozenset({"refusal", "annotations", "audio", "function_call"})


def messages(raw: object) -> tuple[Message, ...]:
    """The body's `messages` as ours; `InvalidArgumentError` naming the message and field."""
    if not isinstance(raw, list) or not raw:
        raise InvalidArgumentError("messages: required, a non-empty array")
    return tuple(_message(index, item) for index, item in enumerate(raw))


def _message(index: int, raw: object) -> Message:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"{where}: must be an object")
    for key, value in raw.items():
        if key in _MESSAGE_FIELDS:
            continue
        if key in _ECHOED_EMPTY and not value:
            continue
        raise InvalidArgumentError(f"{where}.{key}: not supported")
    role = raw.get("role")
    if role not in _ROLES:
        raise InvalidArgumentError(f"{where}.role: must be one of {', '.join(sorted(_ROLES))}")
    if raw.get("name") is not None:
        raise UnsupportedParamError(f"{where}.name", "participant names are not supported")
    parts = _content(where, raw.get("content"))
    calls: tuple[ToolCall, ...] = ()
    reasoning: tuple[ReasoningPart, ...] = ()
    if raw.get("tool_calls"):
        calls, reasoning = _tool_calls(where, raw["tool_calls"])
    tool_call_id = ""
    if role == "tool":
        carried = raw.get("tool_call_id")
        if not isinstance(carried, str) or not carried:
            raise InvalidArgumentError(f"{where}.tool_call_id: required in a tool message")
        tool_call_id, _ = openai_reasoning.split_id(carried, f"{where}.tool_call_id")
    thought = raw.get("reasoning_content")
    if thought is not None and (role != "assistant" or not isinstance(thought, str)):
        raise InvalidArgumentError(f"{where}.reasoning_content: a string, on assistant turns")
    # The text is what the gateway sent (informational); the state that goes back to the vendor
    # is the one carried in the tool call ids.
    return Message(role, parts, calls, tool_call_id, reasoning)


def _content(where: str, content: object) -> tuple[Part, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (TextPart(content),) if content else ()
    if not isinstance(content, list):
        raise InvalidArgumentError(f"{where}.content: must be a string or an array of parts")
    return tuple(_part(f"{where}.content[{number}]", p) for number, p in enumerate(content))


def _part(where: str, raw: object) -> Part:
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"{where}: must be an object")
    kind = raw.get("type")
    if kind == "text":
        text = raw.get("text")
        if not isinstance(text, str):
            raise InvalidArgumentError(f"{where}.text: must be a string")
        return TextPart(text)
    if kind == "image_url":
        image = raw.get("image_url")
        if not isinstance(image, dict) or not isinstance(image.get("url"), str):
            raise InvalidArgumentError(f"{where}.image_url.url: required, a string")
        detail = image.get("detail") or ""
        if not isinstance(detail, str):
            raise InvalidArgumentError(f"{where}.image_url.detail: must be a string")
        return ImagePart(url=image["url"], detail=detail)
    raise UnsupportedParamError(f"{where}.type", f"content parts of type {kind!r} not supported")


def _tool_calls(where: str, raw: object) -> tuple[tuple[ToolCall, ...], tuple[ReasoningPart, ...]]:
    if not isinstance(raw, list):
        raise InvalidArgumentError(f"{where}.tool_calls: must be an array")
    calls: list[ToolCall] = []
    carried: list[tuple[ReasoningPart, ...]] = []
    for number, item in enumerate(raw):
        here = f"{where}.tool_calls[{number}]"
        if not isinstance(item, dict) or item.get("type", "function") != "function":
            raise InvalidArgumentError(f"{here}: must be a function call")
        function = item.get("function")
        if not isinstance(function, dict):
            raise InvalidArgumentError(f"{here}.function: required")
        name, arguments, call_id = function.get("name"), function.get("arguments"), item.get("id")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise InvalidArgumentError(f"{here}: id and function.name are required strings")
        if not isinstance(arguments, str):
            raise InvalidArgumentError(f"{here}.function.arguments: must be a JSON string")
        own, parts = openai_reasoning.split_id(call_id, f"{here}.id")
        calls.append(ToolCall(own, name, arguments or "{}"))
        carried.append(parts)
    return tuple(calls), openai_reasoning.gather(carried)
