"""The Azure OpenAI adapter: OpenAI's Chat Completions format at Azure's URLs, with Azure's key.

Azure serves each model deployment at
`POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version={version}`, where
the base URL is the resource endpoint (`https://<resource>.openai.azure.com`) and the key goes
in an `api-key` header. The caller's model name IS the deployment name. Bodies, replies, streams
and error objects are OpenAI's, so this module reuses `providers.openai` whole and holds only
what differs. Azure's additions are read there without special cases: a stream's first chunk
carries `prompt_filter_results` with `choices: []` and no usage (skipped like any chunk without
text), a prompt refused by the content filter is HTTP 400 with code "content_filter"
(`ContentFilteredError`), and a filtered completion ends with finish_reason "content_filter".

What a deployment can do follows OpenAI's rule by name (`providers.openai_models`), as most
deployments are named after their model ("gpt-4o", "o4-mini"); a name of no known family is an
OpenAI chat model that does not reason (Azure fetches https images itself). Reasoning efforts
need API version 2024-12-01-preview or later (Azure's o-series reference: `reasoning_effort`
arrived with it), so with an older `api_version` a deployment takes none.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Final
from urllib.parse import quote

from providers.base import AdapterSpec, Capabilities, ProviderSettings
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.openai import OpenAIProvider
from providers.openai_models import CHAT_MODEL, profile_of
from providers.types import ChatRequest
from providers.wire import key_header

KIND: Final = "azure_openai"
#: The latest GA data-plane inference version with dated versions (Azure's REST reference).
DEFAULT_API_VERSION: Final = "2024-10-21"
#: The first API version that takes `reasoning_effort`.
REASONING_API_VERSION: Final = "2024-12-01-preview"


#: Azure's key header (not a bearer token).
api_key_auth: Final = key_header("api-key")


class AzureOpenAIProvider(OpenAIProvider):
    """One Azure OpenAI resource; each model name is one of its deployments.

    The `api_version` option picks the REST API version (default `DEFAULT_API_VERSION`).
    """

    _kind = KIND

    def __init__(self, settings: ProviderSettings, session: UpstreamClient, keys: KeyPool) -> None:
        super().__init__(settings, session, keys, auth=api_key_auth, path="/openai/deployments/")
        version = settings.option("api_version", DEFAULT_API_VERSION)
        self._query = "/chat/completions?api-version=" + quote(version, safe="")
        # Dated versions compare as text; an undated one ("latest", "preview") is the newest.
        self._reasons = not version[:1].isdigit() or version >= REASONING_API_VERSION

    def capabilities(self, model: str) -> Capabilities:
        """OpenAI's rule by deployment name; no reasoning effort before its API version."""
        capabilities = profile_of(model, CHAT_MODEL).capabilities
        if self._reasons or not capabilities.reasoning_efforts:
            return capabilities
        return _without_efforts(capabilities)

    def _url_for(self, request: ChatRequest, *, stream: bool) -> str:
        # One segment: a model name must not reach another path or add query parameters.
        return self._url + self._model_segment(request.model) + self._query


@functools.lru_cache(maxsize=32)  # one copy per model family, not one per call
def _without_efforts(capabilities: Capabilities) -> Capabilities:
    return replace(capabilities, reasoning_efforts=frozenset())


SPEC: Final = AdapterSpec(
    kind=KIND,
    factory=AzureOpenAIProvider,
    env_prefix="AZURE_OPENAI",
    # Required: the resource endpoint, https://<resource>.openai.azure.com.
    default_base_url="",
    # Deployment names are the resource owner's choice: reached as "azure_openai/<deployment>"
    # or listed with AZURE_OPENAI_MODELS.
    default_models=(),
    env_options={"api_version": "API_VERSION"},
)
