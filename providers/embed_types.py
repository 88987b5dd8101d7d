"""What an embedding call is, as an adapter sees it: the request, the answer, the protocol.

`EmbedRequest` and `Embeddings` are the one shape of an embedding call for the pipeline and the
adapters alike (a transport converts at its edge: the native `Embed` RPC, `POST /v1/embed`, and
the OpenAI-shaped `/v1/embeddings` all make an `EmbedRequest`). `Embedder` is what a deployment
that can embed offers next to its `Provider`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from providers.types import CallIO, Usage

#: What Cohere calls a text meant to be searched: the usual pick when the caller names none.
DEFAULT_INPUT_TYPE = "search_document"


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    """An embedding request: the model is the provider's own name once routed.

    Every field but `io` is what the request asks, and all of it is in the cache key.
    """

    model: str
    #: The texts to embed; the answer has one vector per input, in order.
    inputs: tuple[str, ...]
    #: Values per vector, where the model can shorten its vectors; None for its default.
    dimensions: int | None = None
    #: What the vectors are for ("search_document", "search_query"...); None for the default.
    input_type: str | None = None
    #: Token arrays to embed instead of texts (then `inputs` is empty): only deployments whose
    #: `Embedder.takes_tokens` is true are given them.
    tokens: tuple[tuple[int, ...], ...] = ()
    io: CallIO = field(default_factory=CallIO)

    @property
    def count(self) -> int:
        """How many vectors the request asks for: one per text or token array."""
        return len(self.inputs) + len(self.tokens)


@dataclass(frozen=True, slots=True)
class Embeddings:
    """An embedding answer: one vector per input, in the order of the inputs."""

    model: str
    vectors: tuple[tuple[float, ...], ...]
    #: Prompt tokens (and their total); `estimated` when the vendor reported none.
    usage: Usage
    #: True when `usage` is the gateway's own estimate, not the vendor's count.
    usage_estimated: bool = False


@runtime_checkable
class Embedder(Protocol):
    """The embedding side of one provider deployment."""

    @property
    def name(self) -> str:
        """The deployment name (the same as its `Provider`'s)."""
        ...

    @property
    def takes_tokens(self) -> bool:
        """Whether requests may carry token arrays (`EmbedRequest.tokens`) instead of texts."""
        ...

    async def embed(self, request: EmbedRequest) -> Embeddings:
        """One vector per input, in order, or raise an `UpstreamError`."""
        ...


def estimated_tokens(request: EmbedRequest) -> int:
    """A local token estimate for inputs a vendor did not count: about four characters a token
    of text, and each token array's own length."""
    texts = sum(max(1, (len(text) + 3) // 4) for text in request.inputs)
    return texts + sum(len(tokens) for tokens in request.tokens)
