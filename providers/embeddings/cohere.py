"""Cohere v2 embeddings: `POST {base_url}/v2/embed`.

Request `{"model", "texts", "input_type", "embedding_types": ["float"], "output_dimension"?}`,
at most 96 texts a request; `input_type` is required by Cohere, so the caller's wins and
`search_document` stands in when there is none. Reply `{"embeddings": {"float": [[...]]},
"meta": {"billed_units": {"input_tokens"}}}`; without billed units the local estimate is used
and marked as one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from providers import cohere
from providers.base import ProviderSettings
from providers.embed_types import DEFAULT_INPUT_TYPE, Embeddings, EmbedRequest
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
from providers.wire import as_object, bearer_auth, int_field, str_field

#: "Maximum number of texts per call is `96`" (cohere-python `v2/raw_client.py`).
MAX_INPUTS: Final = 96


def to_wire(request: EmbedRequest) -> dict[str, object]:
    """The v2 Embed body, asking for float vectors."""
    body: dict[str, object] = {
        "model": request.model,
        "texts": list(request.inputs),
        "input_type": request.input_type or DEFAULT_INPUT_TYPE,
        "embedding_types": ["float"],
    }
    if request.dimensions is not None:
        body["output_dimension"] = request.dimensions
    return body


def from_wire(body: Mapping[str, object], request: EmbedRequest) -> Embeddings:
    """The float vectors of an `embeddings_by_type` reply, and the billed input tokens."""
    by_type = as_object(body.get("embeddings"), "embeddings")
    floats = list_field(by_type, "float", "embeddings")
    vectors = tuple(vector_of(v, f"embeddings.float[{i}]") for i, v in enumerate(floats))
    usage, estimated = estimated_usage(request), True
    meta = body.get("meta")
    billed = as_object(meta, "meta").get("billed_units") if meta is not None else None
    units = as_object(billed, "meta.billed_units") if billed is not None else {}
    if "input_tokens" in units:
        tokens = int_field(units, "input_tokens")
        usage, estimated = Usage(prompt_tokens=tokens, total_tokens=tokens), False
    model = str_field(body, "model") or request.model
    return Embeddings(model, vectors, usage, usage_estimated=estimated)


class CohereEmbedder(HttpEmbedder):
    """One Cohere deployment's embeddings."""

    _kind = cohere.KIND
    batch_limit = MAX_INPUTS

    def __init__(self, settings: ProviderSettings, session: UpstreamClient, keys: KeyPool) -> None:
        super().__init__(
            settings,
            session,
            keys,
            path="/v2/embed",
            read_error=cohere.vendor_error,
            auth=bearer_auth,
            key_rejected_statuses=cohere.KEY_REJECTED_STATUSES,
        )

    def _to_wire(self, request: EmbedRequest) -> object:
        return to_wire(request)

    def _from_wire(self, body: Mapping[str, object], request: EmbedRequest) -> Embeddings:
        return from_wire(body, request)


SPEC: Final = EmbedderSpec(
    kind=cohere.KIND,
    factory=CohereEmbedder,
    models=(
        "embed-v4.0",
        "embed-english-v3.0",
        "embed-multilingual-v3.0",
        "embed-english-light-v3.0",
        "embed-multilingual-light-v3.0",
    ),
)
