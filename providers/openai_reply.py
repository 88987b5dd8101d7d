"""Reading OpenAI's answers: a whole `chat.completion`, and the pieces a stream shares with it.

Tool calls keep OpenAI's ids (a unique one is minted where a compatible server sent none or
repeated one), arguments are JSON text ("{}" for none, an object some compatible servers send
made text), and the finish is "tool_calls" whenever a call was made (OpenAI says "stop" after a
named tool choice). A refusal (`message.refusal`, what a structured-output request may get) is
the content, with finish "content_filter". Reasoning text comes only from compatible servers
(`reasoning_content`: vLLM, DeepSeek, llama.cpp; `reasoning`: newer vLLM, routers): OpenAI
reports reasoning only as `completion_tokens_details.reasoning_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from providers.types import Completion, ToolCall, Usage
from providers.wire import (
    MalformedReplyError,
    arguments_text,
    as_object,
    int_field,
    mint_call_id,
    str_field,
)

#: Finish reasons of an answer that ended on its own (not cut, not filtered).
_ENDED: Final = frozenset({"stop", "tool_calls", "function_call"})
_REASONING_KEYS: Final = ("reasoning_content", "reasoning")
_NO_USAGE: Final = Usage()


def from_wire(body: object) -> Completion:
    """Convert a `chat.completion` object; raise `MalformedReplyError` if it is not one."""
    reply = as_object(body, "reply")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedReplyError("reply has no choices")
    choice = as_object(choices[0], "choices[0]")
    message = as_object(choice.get("message"), "choices[0].message")
    content = str_field(message, "content") or ""
    refusal = str_field(message, "refusal") or ""
    raw_calls = message.get("tool_calls")
    calls = () if raw_calls is None else _calls_from_wire(raw_calls)
    reason = str_field(choice, "finish_reason") or "stop"
    if calls or refusal:
        reason = finish_reason(reason, called=bool(calls), refused=bool(refusal))
    return Completion(
        id=str_field(reply, "id") or "",
        model=str_field(reply, "model") or "",
        content=content or refusal,
        finish_reason=reason,
        usage=usage_from_wire(reply.get("usage")) or _NO_USAGE,
        tool_calls=calls,
        reasoning=reasoning_text(message),
    )


def finish_reason(reason: str, *, called: bool, refused: bool) -> str:
    """OpenAI's finish reason, made "tool_calls" after calls and "content_filter" after a
    refusal, unless the answer was cut ("length") or filtered."""
    if reason in _ENDED and called:
        return "tool_calls"
    if reason in _ENDED and refused:
        return "content_filter"
    return reason


def _calls_from_wire(raw: object) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise MalformedReplyError("tool_calls is not a list")
    calls: list[ToolCall] = []
    seen: set[str] = set()
    for position, item in enumerate(raw):
        entry = as_object(item, f"tool_calls[{position}]")
        function = as_object(entry.get("function"), f"tool_calls[{position}].function")
        call_id = str_field(entry, "id") or ""
        if not call_id or call_id in seen:
            call_id = mint_call_id()
        seen.add(call_id)
        name = str_field(function, "name") or ""
        calls.append(ToolCall(call_id, name, arguments_text(function) or "{}"))
    return tuple(calls)


def reasoning_text(obj: Mapping[str, object]) -> str:
    """Reasoning text where a compatible server puts it (vLLM, DeepSeek, llama.cpp:
    `reasoning_content`; newer vLLM and routers: `reasoning`); OpenAI sends none."""
    for key in _REASONING_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def usage_from_wire(raw: object) -> Usage | None:
    """Convert a `usage` object (None when absent); cached prompt tokens come from its details."""
    if raw is None:
        return None
    usage = as_object(raw, "usage")
    prompt, completion = int_field(usage, "prompt_tokens"), int_field(usage, "completion_tokens")
    details = usage.get("prompt_tokens_details")
    cached = 0
    if details is not None:
        cached = int_field(as_object(details, "usage details"), "cached_tokens")
    total = int_field(usage, "total_tokens") if "total_tokens" in usage else prompt + completion
    reasoning = 0
    completion_details = usage.get("completion_tokens_details")
    if completion_details is not None:
        reasoning = int_field(as_object(completion_details, "usage details"), "reasoning_tokens")
    return Usage(prompt, completion, total, cached, 0, reasoning)
