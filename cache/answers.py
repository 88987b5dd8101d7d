"""What the cache stores: a finished answer (with the events a stream delivered it in), or
embeddings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from providers.embed_types import Embeddings
from providers.types import (
    Completion,
    ReasoningDelta,
    ReasoningPart,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

_WORD_PIECES: Final = re.compile(r"\S+\s*|\s+")
#: The content events a stream is replayed with, by the name they are stored under.
_EVENTS: Final[dict[str, type[TextDelta | ToolCallDelta | ReasoningDelta]]] = {
    kind.__name__: kind for kind in (TextDelta, ToolCallDelta, ReasoningDelta)
}


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A completed answer as it was first served."""

    completion: Completion
    #: The deployment that answered.
    provider: str
    #: What the first answer cost: the saving when the cached copy is served.
    cost_usd: float
    #: The content events of the stream that produced it (None for a unary answer).
    events: tuple[StreamEvent, ...] | None = None

    def replay(self) -> tuple[StreamEvent, ...]:
        """The answer as stream events: the original ones, or, for a unary answer, its
        reasoning, its text word by word and each tool call whole, folding into the same
        completion."""
        if self.events is not None:
            return self.events
        completion = self.completion
        events: list[StreamEvent] = [*_reasoning_events(completion)]
        events += [TextDelta(piece) for piece in _WORD_PIECES.findall(completion.content)]
        events += [
            ToolCallDelta(index, call.id, call.name, call.arguments)
            for index, call in enumerate(completion.tool_calls)
        ]
        return tuple(events)

    def encode(self) -> bytes:
        """The stored form: every field of the completion, and each event with its kind."""
        events = None if self.events is None else [[type(e).__name__, e] for e in self.events]
        return orjson.dumps(
            {
                "completion": self.completion,
                "provider": self.provider,
                "cost_usd": self.cost_usd,
                "events": events,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> CachedAnswer:
        """Read a stored answer; raises ValueError (or KeyError/TypeError) when it is not one."""
        data = orjson.loads(raw)
        events = data["events"]
        return cls(
            completion=_completion(data["completion"]),
            provider=str(data["provider"]),
            cost_usd=float(data["cost_usd"]),
            events=None if events is None else tuple(_EVENTS[k](**e) for k, e in events),
        )


def _reasoning_events(completion: Completion) -> list[ReasoningDelta]:
    """Reasoning deltas that fold into the completion's reasoning text and parts."""
    parts = completion.reasoning_parts
    if not parts or "".join(p.text for p in parts) != completion.reasoning:
        # No parts (or parts that do not spell the text): the text alone.
        return [ReasoningDelta(completion.reasoning)] if completion.reasoning else []
    events: list[ReasoningDelta] = []
    for part in parts:
        if part.redacted:
            events.append(ReasoningDelta(redacted=part.redacted))
        elif part.signature or part.tool_call_id:
            events.append(ReasoningDelta(part.text, part.signature, "", part.tool_call_id))
        elif part.text:
            events.append(ReasoningDelta(part.text))
    return events


def _completion(data: dict[str, Any]) -> Completion:
    return Completion(
        **{
            **data,
            "usage": Usage(**data["usage"]),
            "tool_calls": tuple(ToolCall(**call) for call in data["tool_calls"]),
            "reasoning_parts": tuple(ReasoningPart(**part) for part in data["reasoning_parts"]),
        }
    )


@dataclass(frozen=True, slots=True)
class CachedEmbeddings:
    """An embedding answer as it was first served."""

    embeddings: Embeddings
    #: The deployment that answered.
    provider: str
    #: What the first answer cost: the saving when the cached copy is served.
    cost_usd: float

    def encode(self) -> bytes:
        """The stored form: the vectors, the model, the usage and who answered."""
        return orjson.dumps(
            {"embeddings": self.embeddings, "provider": self.provider, "cost_usd": self.cost_usd}
        )

    @classmethod
    def decode(cls, raw: bytes) -> CachedEmbeddings:
        """Read stored embeddings; raises ValueError (or KeyError/TypeError) when they are not."""
        data = orjson.loads(raw)
        stored = data["embeddings"]
        embeddings = Embeddings(
            model=str(stored["model"]),
            vectors=tuple(tuple(float(x) for x in vector) for vector in stored["vectors"]),
            usage=Usage(**stored["usage"]),
            usage_estimated=bool(stored["usage_estimated"]),
        )
        return cls(embeddings, str(data["provider"]), float(data["cost_usd"]))
