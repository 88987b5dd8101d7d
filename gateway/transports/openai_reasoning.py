"""Reasoning state across the OpenAI shape, carried in the ids of the tool calls.

Anthropic's thinking blocks (text and signature, or redacted data) and Gemini's thought
signatures must go back to the vendor with the assistant turn that called tools, or the next
turn of a tool loop fails. Chat Completions has no field for them, and a client echoes back only
what it knows: `role`, `content` and `tool_calls` (many rebuild the message from just those). The
one thing every client returns as it got it is a tool call's `id` (also as the tool result's
`tool_call_id`), so the state rides there:

    <vendor's id>~gw1~<base64url(zlib(JSON of the parts))>[~gw1~<more parts>...]

The parts not tied to a call go on the first call; a Gemini signature tied to a call goes on
that call. In a stream, a part that arrives after its call's id was sent is sent as a further
`id` fragment (`~gw1~...`), which the SDKs' accumulators join to the id. On the way in, each id
is cut back to the vendor's own, and the parts become the turn's `reasoning` again, so the
vendor never sees the suffix. Reasoning *text* alone is also sent as `reasoning_content`, which
is informational: only the parts carried in the ids are sent back.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Sequence
from typing import Final

import orjson

from gateway.errors import InvalidArgumentError
from providers.types import ReasoningPart, ToolCall

MARKER: Final = "~gw1~"
_FIELDS: Final = ("text", "signature", "redacted", "tool_call_id")


def encode_parts(parts: Sequence[ReasoningPart]) -> str:
    """`parts` as one id segment, `~gw1~` included ("" for no parts)."""
    if not parts:
        return ""
    rows = [[getattr(p, name) for name in _FIELDS] for p in parts]
    packed = zlib.compress(orjson.dumps(rows), 6)
    return MARKER + base64.urlsafe_b64encode(packed).rstrip(b"=").decode()


def split_id(carried: str, where: str) -> tuple[str, tuple[ReasoningPart, ...]]:
    """The vendor's id and the reasoning parts a carried id holds."""
    if MARKER not in carried:
        return carried, ()
    own, *segments = carried.split(MARKER)
    parts: list[ReasoningPart] = []
    for segment in segments:
        parts.extend(_decode(segment, where))
    return own, tuple(parts)


def _decode(segment: str, where: str) -> list[ReasoningPart]:
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        rows = orjson.loads(raw)
        parts = [ReasoningPart(*(str(value) for value in row)) for row in rows]
    except (binascii.Error, zlib.error, orjson.JSONDecodeError, TypeError, ValueError):
        raise InvalidArgumentError(
            f"{where}: the reasoning state in this id is damaged; send the id as it was given"
        ) from None
    return parts


def parts_for_calls(
    calls: Sequence[ToolCall], parts: Sequence[ReasoningPart]
) -> list[tuple[ReasoningPart, ...]]:
    """Which parts each call's id carries: parts tied to a call on it, the rest on the first."""
    position: dict[str, int] = {}
    for index, call in enumerate(calls):
        position.setdefault(call.id, index)
    carried: list[list[ReasoningPart]] = [[] for _ in calls]
    for part in parts:
        at = position.get(part.tool_call_id)
        if at is not None:
            carried[at].append(part)
        elif carried:
            carried[0].append(part)
    return [tuple(group) for group in carried]


def carried_ids(calls: Sequence[ToolCall], parts: Sequence[ReasoningPart]) -> list[str]:
    """Each call's id with the reasoning parts it carries."""
    groups = parts_for_calls(calls, parts)
    return [call.id + encode_parts(group) for call, group in zip(calls, groups, strict=True)]


def gather(parts: Iterable[tuple[ReasoningPart, ...]]) -> tuple[ReasoningPart, ...]:
    """The parts of several ids as the turn's reasoning, in order."""
    return tuple(part for group in parts for part in group)
