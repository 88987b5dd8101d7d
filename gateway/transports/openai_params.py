"""The fields the core names in a refusal, named as OpenAI names them in the caller's body.

The core names a field by our request's shape (`messages[0].parts[1].image`,
`tools[0].parameters`, `response_format.schema`, `inputs[2]`); an OpenAI client sent
`messages[0].content[1]`, `tools[0].function.parameters`, `response_format.json_schema.schema`,
`input[2]`, and expects `param` to point into what it sent. These map one to the other, given
the body the call came in (a message's content sent as a string is `messages[i].content`
whole; a single `input` is `input`). A name that is already OpenAI's is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

_PART: Final = re.compile(r"messages\[(\d+)\]\.parts\[(\d+)\](.*)")
_CALL_FIELD: Final = re.compile(r"(messages\[\d+\]\.tool_calls\[\d+\])\.(name|arguments)")
_REASONING: Final = re.compile(r"(messages\[\d+\])\.reasoning")
_TOOL_FIELD: Final = re.compile(r"(tools\[\d+\])\.(name|description|parameters)(.*)")
_INPUT: Final = re.compile(r"inputs(\[\d+\])?")
#: What follows a part's position in our name, as it follows in OpenAI's content part.
_PART_FIELDS: Final[Mapping[str, str]] = {
    "": "",
    ".text": ".text",
    ".image": "",
    ".image.url": ".image_url.url",
    ".image.media_type": ".image_url.url",  # the media type is in the data: URL
    ".image.detail": ".image_url.detail",
}
_RENAMED: Final[Mapping[str, str]] = {
    "tool_choice.name": "tool_choice.function.name",
    "response_format.schema": "response_format.json_schema.schema",
    "response_format.name": "response_format.json_schema.name",
}


def chat_param(field: str, body: Mapping[str, Any]) -> str:
    """`field` of a Chat Completions call as OpenAI names it in `body`."""
    if field in _RENAMED:
        return _RENAMED[field]
    if field == "max_tokens" and "max_tokens" not in body and "max_completion_tokens" in body:
        return "max_completion_tokens"
    if match := _PART.fullmatch(field):
        message, part, rest = int(match.group(1)), match.group(2), match.group(3)
        where = f"messages[{message}].content"
        if isinstance(_content(body, message), str):
            return where
        return f"{where}[{part}]{_PART_FIELDS.get(rest, '')}"
    if match := _CALL_FIELD.fullmatch(field):
        return f"{match.group(1)}.function.{match.group(2)}"
    if match := _REASONING.fullmatch(field):
        return f"{match.group(1)}.tool_calls"  # the reasoning state came in the call ids
    if match := _TOOL_FIELD.fullmatch(field):
        return f"{match.group(1)}.function.{match.group(2)}{match.group(3)}"
    return field


def embeddings_param(field: str, body: Mapping[str, Any]) -> str:
    """`field` of an Embeddings call as OpenAI names it in `body`."""
    match = _INPUT.fullmatch(field)
    if match is None:
        return field
    sent = body.get("input")
    single = isinstance(sent, str) or (
        isinstance(sent, list) and bool(sent) and not isinstance(sent[0], str | list)
    )
    return "input" if single else f"input{match.group(1) or ''}"


def _content(body: Mapping[str, Any], index: int) -> object:
    messages = body.get("messages")
    if not isinstance(messages, list) or not 0 <= index < len(messages):
        return None
    message = messages[index]
    return message.get("content") if isinstance(message, dict) else None
