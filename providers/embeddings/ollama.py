"""Ollama embeddings: `POST {base_url}/api/embed`.

Request `{"model", "input": [texts], "dimensions"?}`; reply `{"model", "embeddings": [[...]],
"prompt_eval_count"}`. Ollama sets no limit on inputs; batches of 512 keep one request's body
and the server's time on it bounded. Without `prompt_eval_count` the local estimate is used and
marked as one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from providers import ollama
from providers.base import ProviderSettings
from providers.embed_types import Embeddings, EmbedRequest
from providers.embeddings.base import (
    EmbedderSpec,
    HttpEmbedder,
    estimated_usage,
    list_field,
    vector_of,
)
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.types import Usage
from providers.wire import bearer_auth, int_field, str_field

MAX_INPUTS: Final = 512


def to_wire(request: EmbedRequest) -> dict[str, object]:
    """The `/api/embed` body."""
    body: dict[str, object] = {"model": request.model, "input": list(request.inputs)}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def from_wire(body: Mapping[str, object], request: EmbedRequest) -> Embeddings:
    """The vectors in input order, and the prompt tokens Ollama counted."""
    embeddings = list_field(body, "embeddings", "reply")
    vectors = tuple(vector_of(v, f"embeddings[{i}]") for i, v in enumerate(embeddings))
    usage, estimated = estimated_usage(request), True
    if "prompt_eval_count" in body:
        tokens = int_field(body, "prompt_eval_count")
        usage, estimated = Usage(prompt_tokens=tokens, total_tokens=tokens), False
    model = str_field(body, "model") or request.model
    return Embeddings(model, vectors, usage, usage_estimated=estimated)


class OllamaEmbedder(HttpEmbedder):
    """One Ollama server's embeddings; a key, when configured, goes as a bearer token."""

    _kind = ollama.KIND
    batch_limit = MAX_INPUTS

    def __init__(self, settings: ProviderSettings, session: UpstreamClient, keys: KeyPool) -> None:
        super().__init__(
            settings,
            session,
            keys,
            path="/api/embed",
            read_error=ollama.vendor_error,
            auth=bearer_auth,
        )

    def _to_wire(self, request: EmbedRequest) -> object:
        return to_wire(request)

    def _from_wire(self, body: Mapping[str, object], request: EmbedRequest) -> Embeddings:
        return from_wire(body, request)


SPEC: Final = EmbedderSpec(kind=ollama.KIND, factory=OllamaEmbedder)
