"""Validation of what agents send: message parts and images, tool calls and results, tools, the
tool choice, the response format and the reasoning effort.

These are the rules every vendor shares (a tool result answers an earlier call, a named tool
choice names a declared tool, a JSON-schema answer has a schema...); what one vendor cannot do is
its adapter's `Capabilities`, checked when the call is planned. Each problem is an
`InvalidArgumentError` whose message starts with the field, named as the API names it.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence
from typing import Final

import orjson

from gateway.errors import InvalidArgumentError
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

MAX_TOOLS = 128
MAX_TOOL_DESCRIPTION_CHARS = 16_384
MAX_IMAGE_URL_CHARS = 8192
#: The image types every vendor that takes images reads.
IMAGE_MEDIA_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
IMAGE_DETAILS: Final = frozenset({"", "auto", "low", "high"})
#: Roles whose turns may hold images: the caller's, and a tool's result.
IMAGE_ROLES: Final = frozenset({"user", "tool"})

#: Tool and schema names every vendor accepts.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)


def check_messages(messages: Sequence[Message]) -> None:
    """Parts, images, tool calls and tool results of every message, and how they refer."""
    called: set[str] = set()
    answered: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        for number, part in enumerate(message.parts):
            if type(part) is TextPart:
                if not part.text:
                    raise InvalidArgumentError(f"{where}.parts[{number}].text: must not be empty")
            elif isinstance(part, ImagePart):
                if message.role not in IMAGE_ROLES:
                    raise InvalidArgumentError(
                        f"{where}.parts[{number}].image: images go in user or tool turns, "
                        f"not {message.role!r}"
                    )
                check_image(f"{where}.parts[{number}].image", part)
        if message.tool_calls:
            if message.role != "assistant":
                raise InvalidArgumentError(
                    f"{where}.tool_calls: only an assistant turn calls tools"
                )
            for number, call in enumerate(message.tool_calls):
                _check_call(f"{where}.tool_calls[{number}]", call.id, call.name, call.arguments)
                if call.id in called:
                    raise InvalidArgumentError(
                        f"{where}.tool_calls[{number}].id: {call.id!r} is used by an earlier call"
                    )
                called.add(call.id)
        if message.reasoning and message.role != "assistant":
            raise InvalidArgumentError(f"{where}.reasoning: only on an assistant turn")
        if message.role == "tool":
            _check_result(where, message.tool_call_id, called, answered)
        elif message.tool_call_id:
            raise InvalidArgumentError(f"{where}.tool_call_id: only on a message of role 'tool'")


def _check_call(where: str, id: str, name: str, arguments: str) -> None:
    if not id:
        raise InvalidArgumentError(f"{where}.id: required")
    if not name:
        raise InvalidArgumentError(f"{where}.name: required")
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidArgumentError(f"{where}.arguments: must be a JSON object, as text")


def _check_result(where: str, call_id: str, called: set[str], answered: set[str]) -> None:
    if not call_id:
        raise InvalidArgumentError(f"{where}.tool_call_id: required on a message of role 'tool'")
    if call_id not in called:
        raise InvalidArgumentError(
            f"{where}.tool_call_id: {call_id!r} answers no tool call of an earlier assistant turn"
        )
    if call_id in answered:
        raise InvalidArgumentError(f"{where}.tool_call_id: {call_id!r} is already answered")
    answered.add(call_id)


def check_image(where: str, image: ImagePart) -> None:
    """An https: or data: URL, or bytes with an image media type; never both, never neither."""
    if image.detail not in IMAGE_DETAILS:
        raise InvalidArgumentError(
            f"{where}.detail: must be auto, low or high (or unset), got {image.detail[:16]!r}"
        )
    if image.url and image.data:
        raise InvalidArgumentError(f"{where}: set url or data, not both")
    if image.data:
        _check_media_type(f"{where}.media_type", image.media_type)
        return
    url = image.url
    if not url:
        raise InvalidArgumentError(f"{where}: set url (https: or data:) or data")
    if url.startswith("data:"):
        match = _DATA_URL.fullmatch(url)
        if match is None:
            raise InvalidArgumentError(
                f"{where}.url: a data: URL must be 'data:<media type>;base64,<data>'"
            )
        _check_media_type(f"{where}.url", match.group(1))
        try:
            base64.b64decode(match.group(2), validate=True)
        except binascii.Error:
            raise InvalidArgumentError(f"{where}.url: the data is not base64") from None
        return
    if not url.startswith("https://"):
        raise InvalidArgumentError(f"{where}.url: must be an https: or data: URL")
    if len(url) > MAX_IMAGE_URL_CHARS:
        raise InvalidArgumentError(f"{where}.url: longer than {MAX_IMAGE_URL_CHARS} characters")
    if image.media_type:
        _check_media_type(f"{where}.media_type", image.media_type)


def _check_media_type(where: str, media_type: str) -> None:
    if media_type not in IMAGE_MEDIA_TYPES:
        raise InvalidArgumentError(
            f"{where}: the media type must be one of {', '.join(sorted(IMAGE_MEDIA_TYPES))}, "
            f"got {media_type[:64]!r}"
        )


def check_tools(chat: ChatRequest) -> None:
    """The tools, the tool choice and the parallel switch."""
    tools = chat.tools
    if len(tools) > MAX_TOOLS:
        raise InvalidArgumentError(f"tools: more than {MAX_TOOLS} tools")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        _check_tool(f"tools[{index}]", tool)
        if tool.name in names:
            raise InvalidArgumentError(f"tools[{index}].name: {tool.name!r} is declared twice")
        names.add(tool.name)
    choice = chat.tool_choice
    if choice is not None:
        if not tools:
            raise InvalidArgumentError("tool_choice: only with tools")
        if choice.mode is ToolChoiceMode.TOOL:
            if choice.name not in names:
                raise InvalidArgumentError(
                    f"tool_choice.name: must name one of the request's tools, got {choice.name!r}"
                )
        elif choice.name:
            raise InvalidArgumentError("tool_choice.name: only with mode TOOL")
    if chat.parallel_tool_calls is not None and not tools:
        raise InvalidArgumentError("parallel_tool_calls: only with tools")


def _check_tool(where: str, tool: Tool) -> None:
    if _NAME.fullmatch(tool.name) is None:
        raise InvalidArgumentError(
            f"{where}.name: 1 to 64 letters, digits, '_' or '-', got {tool.name[:80]!r}"
        )
    if len(tool.description) > MAX_TOOL_DESCRIPTION_CHARS:
        raise InvalidArgumentError(
            f"{where}.description: longer than {MAX_TOOL_DESCRIPTION_CHARS} characters"
        )
    if tool.parameters:
        if tool.parameters.get("type", "object") != "object":
            raise InvalidArgumentError(f"{where}.parameters: must be an object schema")
        _check_numbers(f"{where}.parameters", tool.parameters)


def check_response_format(form: ResponseFormat | None) -> ResponseFormat | None:
    """`form` checked; None for plain text (asked for or not)."""
    if form is None:
        return None
    if form.type is not ResponseFormatType.JSON_SCHEMA:
        if form.schema is not None or form.name:
            raise InvalidArgumentError(
                "response_format.schema: a schema and its name go with type JSON_SCHEMA only"
            )
        return None if form.type is ResponseFormatType.TEXT else form
    if not form.schema:
        raise InvalidArgumentError("response_format.schema: required with type JSON_SCHEMA")
    if form.name and _NAME.fullmatch(form.name) is None:
        raise InvalidArgumentError(
            f"response_format.name: 1 to 64 letters, digits, '_' or '-', got {form.name[:80]!r}"
        )
    _check_numbers("response_format.schema", form.schema)
    return form


def check_reasoning_effort(effort: str | None) -> None:
    """One of `REASONING_EFFORTS`, or unset."""
    if effort is not None and effort not in REASONING_EFFORTS:
        raise InvalidArgumentError(
            f"reasoning_effort: must be one of {', '.join(REASONING_EFFORTS)}, got {effort[:32]!r}"
        )


def _check_numbers(where: str, value: object) -> None:
    """Refuse NaN and infinities in a schema: JSON has no way to say them."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"{where}: numbers must be finite")
    if isinstance(value, dict):
        for item in value.values():
            _check_numbers(where, item)
    elif isinstance(value, list):
        for item in value:
            _check_numbers(where, item)
