"""Our answers in OpenAI's shapes: `chat.completion`, `chat.completion.chunk`, errors, models.

Pure rendering, to the shapes the official SDK validates strictly (`openai-python`
`types/chat/chat_completion.py`, `chat_completion_chunk.py`, `completion_usage.py`,
`types/model.py`): `finish_reason` one of stop, length, tool_calls, content_filter;
`message.content` null when the model only called tools; usage with
`prompt_tokens_details.cached_tokens` and `completion_tokens_details.reasoning_tokens`;
reasoning text as `reasoning_content` (message and delta) and reasoning state in the tool call
ids (`openai_reasoning`).

A stream's chunks come from `ChunkWriter`, one per stream: the first chunk of each choice
carries `delta.role: "assistant"`; tool-call deltas keep the dense indexes the adapters give,
with id and name on a call's first delta only; with `include_usage` every chunk has
`"usage": null` and one last chunk has `choices: []` and the usage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from gateway.pipeline.types import Answer, Done, StreamHead, StreamItem
from gateway.transports import openai_reasoning
from providers.types import (
    Completion,
    ReasoningDelta,
    ReasoningPart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

FINISH_REASONS: Final = frozenset({"stop", "length", "tool_calls", "content_filter"})


def finish_reason(completion: Completion) -> str:
    """The completion's finish reason as one OpenAI knows ("tool_calls" whenever it called)."""
    if completion.tool_calls and completion.finish_reason in ("", "stop"):
        return "tool_calls"
    reason = completion.finish_reason
    return reason if reason in FINISH_REASONS else "stop"


def usage_object(usage: Usage) -> dict[str, Any]:
    """Token counts as OpenAI's `usage`."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def sum_usage(usages: Sequence[Usage]) -> Usage:
    """The tokens of several calls (one per choice) together."""
    return Usage(
        sum(u.prompt_tokens for u in usages),
        sum(u.completion_tokens for u in usages),
        sum(u.total_tokens for u in usages),
        sum(u.cached_tokens for u in usages),
        sum(u.cache_creation_tokens for u in usages),
        sum(u.reasoning_tokens for u in usages),
    )


def chat_completion(answers: Sequence[Answer], model: str, created: int) -> bytes:
    """The `chat.completion` for one answer per choice."""
    first = answers[0].completion
    choices = [
        {
            "index": index,
            "message": _message(answer.completion),
            "logprobs": None,
            "finish_reason": finish_reason(answer.completion),
        }
        for index, answer in enumerate(answers)
    ]
    return orjson.dumps(
        {
            "id": first.id or "chatcmpl-gateway",
            "object": "chat.completion",
            "created": created,
            "model": first.model or model,
            "choices": choices,
            "usage": usage_object(sum_usage([a.completion.usage for a in answers])),
            "system_fingerprint": None,
        }
    )


def _message(completion: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.content if completion.content or not completion.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if completion.tool_calls:
        state = [p for p in completion.reasoning_parts if p.signature or p.redacted]
        ids = openai_reasoning.carried_ids(completion.tool_calls, state)
        message["tool_calls"] = [
            _tool_call(call, id) for call, id in zip(completion.tool_calls, ids, strict=True)
        ]
    if completion.reasoning:
        message["reasoning_content"] = completion.reasoning
    return message


def _tool_call(call: ToolCall, carried_id: str) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments or "{}"}
    return {"id": carried_id, "type": "function", "function": function}


class ChunkWriter:
    """Renders one stream's items (of one or more choices) as SSE `chat.completion.chunk`s."""

    def __init__(self, model: str, created: int, *, include_usage: bool, choices: int) -> None:
        self._model = model
        self._created = created
        self._include_usage = include_usage
        self._id = ""
        self._choices = [_ChoiceState() for _ in range(choices)]
        self._usages: list[Usage] = []
        #: The deployment that answered (each choice's), and whether from the cache.
        self.heads: list[StreamHead | None] = [None] * choices

    def render(self, index: int, item: StreamItem) -> bytes:
        """The SSE events for choice `index`'s `item` (b"" when it sends none)."""
        state = self._choices[index]
        if isinstance(item, StreamHead):
            self.heads[index] = item
            self._id = self._id or item.id
            self._model = item.model or self._model
            return b""
        if isinstance(item, Done):
            return self._finish(index, state, item.answer)
        delta: dict[str, Any]
        if isinstance(item, TextDelta):
            if not item.text:
                return b""
            delta = {"content": item.text}
        elif isinstance(item, ToolCallDelta):
            delta = {"tool_calls": [state.tool_delta(item)]}
            state.called = True
        elif isinstance(item, ReasoningDelta):
            late = state.reasoning(item)
            if late is not None:
                delta = {"tool_calls": [late]}
            elif item.text:
                delta = {"reasoning_content": item.text}
            else:
                return b""
        else:
            return b""
        return self._chunk(index, state, delta, None)

    def closing(self) -> bytes:
        """What follows the last choice's end: the usage chunk (when asked for), `[DONE]`."""
        tail = b""
        if self._include_usage:
            usage = usage_object(sum_usage(self._usages))
            tail = _event(self._envelope() | {"choices": [], "usage": usage})
        return tail + b"data: [DONE]\n\n"

    def _finish(self, index: int, state: _ChoiceState, answer: Answer) -> bytes:
        self._usages.append(answer.completion.usage)
        reason = finish_reason(answer.completion)
        if state.called and reason == "stop":
            reason = "tool_calls"
        return self._chunk(index, state, {}, reason)

    def _chunk(
        self, index: int, state: _ChoiceState, delta: dict[str, Any], reason: str | None
    ) -> bytes:
        if not state.started:
            state.started = True
            delta = {"role": "assistant", **delta}
            if "content" not in delta and "tool_calls" not in delta:
                delta["content"] = ""
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
        return _event(self._envelope() | {"choices": [choice]})

    def _envelope(self) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "id": self._id or "chatcmpl-gateway",
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
        }
        if self._include_usage:
            envelope["usage"] = None
        return envelope


class _ChoiceState:
    """What one choice of a stream has sent: its role chunk, its tool calls' ids."""

    __slots__ = ("called", "ids", "pending", "run", "started")

    def __init__(self) -> None:
        self.started = False
        self.called = False
        #: Tool call index -> the vendor's id, for the calls whose first delta went out.
        self.ids: dict[int, str] = {}
        #: Reasoning parts not yet carried by an id.
        self.pending: list[ReasoningPart] = []
        #: Reasoning text since the last signature: the text a signature closes signs.
        self.run: list[str] = []

    def tool_delta(self, item: ToolCallDelta) -> dict[str, Any]:
        function: dict[str, Any] = {"arguments": item.arguments}
        delta: dict[str, Any] = {"index": item.index, "function": function}
        if item.index in self.ids or not (item.id or item.name):
            return delta
        self.ids[item.index] = item.id
        mine = [p for p in self.pending if p.tool_call_id in ("", item.id)]
        if item.index != 0:
            mine = [p for p in mine if p.tool_call_id == item.id]
        self.pending = [p for p in self.pending if p not in mine]
        delta["id"] = item.id + openai_reasoning.encode_parts(mine)
        delta["type"] = "function"
        function["name"] = item.name
        return delta

    def reasoning(self, item: ReasoningDelta) -> dict[str, Any] | None:
        """Keep a piece of reasoning state; a tool-call delta when its call's id went out."""
        if item.redacted:
            self.run = []
            part = ReasoningPart(redacted=item.redacted)
        elif item.signature:
            text, self.run = "".join(self.run), []
            part = ReasoningPart(text, item.signature, "", item.tool_call_id)
        else:
            self.run.append(item.text)
            return None
        for index, own in self.ids.items():
            if item.tool_call_id == own or (not item.tool_call_id and index == 0):
                # Accumulators join `id` fragments; they expect `function` on every delta.
                late = openai_reasoning.encode_parts([part])
                return {"index": index, "id": late, "function": {"arguments": ""}}
        self.pending.append(part)
        return None


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"
