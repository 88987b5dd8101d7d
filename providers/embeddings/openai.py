"""OpenAI embeddings (`POST {base_url}/embeddings`): OpenAI, Azure OpenAI, compatible servers.

Request `{"model", "input": [texts] | [[token ids]], "encoding_format": "float", "dimensions"?}`
(OpenAI and compatible servers embed token arrays as well as texts); reply
`{"object": "list", "data": [{"index", "embedding"}], "model", "usage": {"prompt_tokens",
"total_tokens"}}`. OpenAI takes at most 2048 inputs a request. It has no input type: a caller's
`input_type` is a hint this vendor has no use for. Azure serves the same format at
`{endpoint}/openai/deployments/{deployment}/embeddings?api-version=...` with an `api-key` header.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import quote

from providers import azure_openai, openai
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
from providers.wire import MalformedReplyError, as_object, bearer_auth, int_field, str_field

#: OpenAI's limit on inputs per request ("array too long ... maximum length 2048").
MAX_INPUTS: Final = 2048


def to_wire(request: EmbedRequest) -> dict[str, object]:
    """The embeddings request body: texts or token arrays, floats, `dimensions` only when
    asked."""
    inputs = [list(tokens) for tokens in request.tokens] if request.tokens else list(request.inputs)
    body: dict[str, object] = {"model": request.model, "input": inputs, "encoding_format": "float"}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def from_wire(body: Mapping[str, object], request: EmbedRequest) -> Embeddings:
    """The vectors of an embedding `list`, put in input order by their `index`."""
    data = list_field(body, "data", "reply")
    vectors: list[tuple[float, ...] | None] = [None] * len(data)
    for position, raw in enumerate(data):
        item = as_object(raw, f"data[{position}]")
        index = item.get("index", position)
        if not isinstance(index, int) or not 0 <= index < len(data) or vectors[index] is not None:
            raise MalformedReplyError(f"data[{position}].index is not a fresh position")
        vectors[index] = vector_of(item.get("embedding"), f"data[{position}].embedding")
    raw_usage = body.get("usage")
    usage, estimated = estimated_usage(request), True
    if raw_usage is not None:
        counted = as_object(raw_usage, "usage")
        prompt = int_field(counted, "prompt_tokens")
        total = int_field(counted, "total_tokens") if "total_tokens" in counted else prompt
        usage, estimated = Usage(prompt_tokens=prompt, total_tokens=total), False
    return Embeddings(
        model=str_field(body, "model") or request.model,
        vectors=tuple(v for v in vectors if v is not None),
        usage=usage,
        usage_estimated=estimated,
    )


class OpenAIEmbedder(HttpEmbedder):
    """One OpenAI (or OpenAI-compatible) deployment's embeddings."""

    _kind = openai.KIND
    batch_limit = MAX_INPUTS
    takes_tokens = True

    def __init__(
        self,
        settings: ProviderSettings,
        session: UpstreamClient,
        keys: KeyPool,
        *,
        auth: Callable[[str], Mapping[str, str]] = bearer_auth,
        path: str = "/embeddings",
    ) -> None:
        super().__init__(
            settings, session, keys, path=path, read_error=openai.vendor_error, auth=auth
        )

    def _to_wire(self, request: EmbedRequest) -> object:
        return to_wire(request)

    def _from_wire(self, body: Mapping[str, object], request: EmbedRequest) -> Embeddings:
        return from_wire(body, request)


class AzureOpenAIEmbedder(OpenAIEmbedder):
    """One Azure OpenAI resource's embeddings; the model name is the deployment's name."""

    _kind = azure_openai.KIND

    def __init__(self, settings: ProviderSettings, session: UpstreamClient, keys: KeyPool) -> None:
        super().__init__(
            settings, session, keys, auth=azure_openai.api_key_auth, path="/openai/deployments/"
        )
        version = settings.option("api_version", azure_openai.DEFAULT_API_VERSION)
        self._query = "/embeddings?api-version=" + quote(version, safe="")

    def _url_for(self, request: EmbedRequest) -> str:
        segment = self._model_segment(request.model)
        return self._url + segment + self._query


SPEC: Final = EmbedderSpec(
    kind=openai.KIND,
    factory=OpenAIEmbedder,
    models=("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"),
)
AZURE_SPEC: Final = EmbedderSpec(kind=azure_openai.KIND, factory=AzureOpenAIEmbedder)
