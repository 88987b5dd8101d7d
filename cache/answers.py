"""What the cache stores: a finished answer, with the pieces a stream delivered it in."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from providers.types import Usage

_WORD_PIECES = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A completed answer as it was first served."""

    id: str
    model: str
    provider: str
    content: str
    finish_reason: str
    usage: Usage
    #: What the first answer cost: the saving when the cached copy is served.
    cost_usd: float
    #: The text pieces of the stream that produced it (None for a unary answer).
    deltas: tuple[str, ...] | None = None

    def pieces(self) -> tuple[str, ...]:
        """The text in stream pieces: the original ones, or word by word for a unary answer."""
        if self.deltas is not None:
            return self.deltas
        return tuple(_WORD_PIECES.findall(self.content))

    def encode(self) -> bytes:
        """The stored form."""
        u = self.usage
        return orjson.dumps(
            {
                "id": self.id,
                "model": self.model,
                "provider": self.provider,
                "content": self.content,
                "finish_reason": self.finish_reason,
                "usage": [
                    u.prompt_tokens,
                    u.completion_tokens,
                    u.total_tokens,
                    u.cached_tokens,
                    u.cache_creation_tokens,
                ],
                "cost_usd": self.cost_usd,
                "deltas": self.deltas,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> CachedAnswer:
        """Read a stored answer; raises ValueError (or KeyError/TypeError) when it is not one."""
        data = orjson.loads(raw)
        deltas = data.get("deltas")
        return cls(
            id=str(data["id"]),
            model=str(data["model"]),
            provider=str(data["provider"]),
            content=str(data["content"]),
            finish_reason=str(data["finish_reason"]),
            usage=Usage(*(int(n) for n in data["usage"])),
            cost_usd=float(data["cost_usd"]),
            deltas=tuple(str(d) for d in deltas) if deltas is not None else None,
        )
