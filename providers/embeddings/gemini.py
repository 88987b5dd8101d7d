"""Gemini embeddings: `POST {base_url}/{version}/models/{model}:batchEmbedContents`.

Request `{"requests": [{"model": "models/{model}", "content": {"parts": [{"text"}]},
"taskType"?, "outputDimensionality"?}]}`, at most 100 a request; reply `{"embeddings":
[{"values"}]}` in request order, with no token usage: the gateway's estimate stands in, marked
as one. The caller's `input_type` becomes Gemini's `taskType` (Cohere's names are mapped, Gemini's
own upper-case names pass through).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

from providers import gemini
from providers.base import ProviderSettings
from providers.embed_types import Embeddings, EmbedRequest
from providers.embeddings.base import (
    EmbedderSpec,
    HttpEmbedder,
    estimated_usage,
    list_field,
    vector_of,
)
from providers.errors import UpstreamBadRequestError
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.wire import as_object

#: "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch".
MAX_INPUTS: Final = 100
#: Our (Cohere's) input types as Gemini task types.
TASK_TYPES: Final[Mapping[str, str]] = {
    "search_document": "RETRIEVAL_DOCUMENT",
    "search_query": "RETRIEVAL_QUERY",
    "classification": "CLASSIFICATION",
    "clustering": "CLUSTERING",
}
#: Gemini's own task types (ai.google.dev/api/embeddings#TaskType).
GEMINI_TASK_TYPES: Final = frozenset(
    {
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)


def task_type(input_type: str) -> str | None:
    """Gemini's task type for `input_type`, or None when it has none."""
    if input_type in GEMINI_TASK_TYPES:
        return input_type
    return TASK_TYPES.get(input_type)


def to_wire(request: EmbedRequest, *, task: str | None) -> dict[str, object]:
    """The `batchEmbedContents` body: one request per input, each naming the model."""
    model = "models/" + request.model.removeprefix("models/")
    requests: list[dict[str, object]] = []
    for text in request.inputs:
        item: dict[str, object] = {"model": model, "content": {"parts": [{"text": text}]}}
        if task is not None:
            item["taskType"] = task
        if request.dimensions is not None:
            item["outputDimensionality"] = request.dimensions
        requests.append(item)
    return {"requests": requests}


def from_wire(body: Mapping[str, object], request: EmbedRequest) -> Embeddings:
    """The batch's vectors, in request order; the usage is the local estimate."""
    embeddings = list_field(body, "embeddings", "reply")
    vectors = tuple(
        vector_of(as_object(item, f"embeddings[{i}]").get("values"), f"embeddings[{i}].values")
        for i, item in enumerate(embeddings)
    )
    return Embeddings(request.model, vectors, estimated_usage(request), usage_estimated=True)


class GeminiEmbedder(HttpEmbedder):
    """One Gemini API deployment's embeddings (option `api_version` as for chat)."""

    _kind = gemini.KIND
    batch_limit = MAX_INPUTS

    def __init__(self, settings: ProviderSettings, session: UpstreamClient, keys: KeyPool) -> None:
        version = quote(settings.option("api_version", gemini.DEFAULT_API_VERSION), safe="")
        super().__init__(
            settings,
            session,
            keys,
            path=f"/{version}/models/",
            read_error=gemini.vendor_error,
            auth=gemini.api_key_auth,
        )

    def _url_for(self, request: EmbedRequest) -> str:
        model = request.model.removeprefix("models/")
        segment = self._model_segment(model)
        return self._url + segment + ":batchEmbedContents"

    def _to_wire(self, request: EmbedRequest) -> object:
        task = None
        if request.input_type is not None:
            task = task_type(request.input_type)
            if task is None:
                raise UpstreamBadRequestError(
                    f"input_type: gemini has no task type for {request.input_type!r}",
                    provider=self._name,
                )
        return to_wire(request, task=task)

    def _from_wire(self, body: Mapping[str, object], request: EmbedRequest) -> Embeddings:
        return from_wire(body, request)


SPEC: Final = EmbedderSpec(
    kind=gemini.KIND, factory=GeminiEmbedder, models=("gemini-embedding-001", "text-embedding-004")
)
