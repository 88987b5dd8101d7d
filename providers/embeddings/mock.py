"""The built-in mock's embeddings: deterministic unit vectors, no network.

The same text always gets the same vector: SHA-256 of the text (with a block counter) gives the
values, normalised to unit length. `dimensions` sets the length (`DEFAULT_DIMENSIONS` without).
Usage is one token per word, as the mock counts for chat. Token arrays are embedded as the text
of their ids (one token each), as OpenAI-compatible servers take them.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Final

from providers.base import ProviderSettings
from providers.embed_types import Embeddings, EmbedRequest
from providers.embeddings.base import EmbedderSpec
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.types import Usage

DEFAULT_DIMENSIONS: Final = 8
#: Decimal places kept: short vectors for examples, and the same bytes on every platform.
PLACES: Final = 6


class MockEmbedder:
    """Embeds any model's inputs the same way every time."""

    takes_tokens = True

    def __init__(
        self,
        settings: ProviderSettings,
        session: UpstreamClient | None = None,
        keys: KeyPool | None = None,
    ) -> None:
        self._name = settings.name

    @property
    def name(self) -> str:
        """The deployment name."""
        return self._name

    async def embed(self, request: EmbedRequest) -> Embeddings:
        """One vector per input, in order."""
        size = request.dimensions or DEFAULT_DIMENSIONS
        texts = request.inputs or tuple(" ".join(map(str, ids)) for ids in request.tokens)
        vectors = tuple(mock_vector(text, size) for text in texts)
        tokens = sum(max(1, len(text.split())) for text in texts)
        return Embeddings(request.model, vectors, Usage(prompt_tokens=tokens, total_tokens=tokens))


def mock_vector(text: str, dimensions: int) -> tuple[float, ...]:
    """A unit vector of `dimensions` values derived from `text` alone."""
    raw: list[float] = []
    block = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(block.to_bytes(4, "big") + text.encode()).digest()
        raw += [word / 2**31 - 1.0 for word in struct.unpack(">8I", digest)]
        block += 1
    head = raw[:dimensions]
    norm = math.sqrt(sum(x * x for x in head)) or 1.0
    return tuple(round(x / norm, PLACES) for x in head)


SPEC: Final = EmbedderSpec(kind="mock", factory=MockEmbedder)
