"""`HttpDeployment`: what every HTTP+JSON adapter of one deployment holds, chat or embeddings.

The deployment's name, its URL (base URL plus the adapter's path), the `JsonEndpoint` with the
deployment's keys, and the check that puts a model name into a URL path as one segment.
`HttpAdapter` (chat) and `HttpEmbedder` (embeddings) build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar, Final
from urllib.parse import quote

from providers.base import ProviderSettings
from providers.errors import UpstreamBadRequestError
from providers.http.client import UpstreamClient
from providers.http.endpoint import EVENT_STREAM, KEY_REJECTED_STATUSES, JsonEndpoint
from providers.keys import KeyPool
from providers.wire import VendorError

_DOT_SEGMENTS: Final = frozenset({".", ".."})


class HttpDeployment:
    """One deployment of an HTTP+JSON vendor, over a shared `UpstreamClient` (the caller's).

    Requests go to the base URL plus `path`; a vendor that names the model in the URL puts it
    there with `_model_segment`. Our headers (`auth` of a key, and `headers`) are set once on the
    endpoint; a request's own headers are added per call but never replace them.
    """

    #: The adapter kind, such as "openai"; each adapter class sets it.
    _kind: ClassVar[str]

    def __init__(
        self,
        settings: ProviderSettings,
        session: UpstreamClient,
        keys: KeyPool,
        *,
        path: str,
        read_error: Callable[[bytes], VendorError],
        auth: Callable[[str], Mapping[str, str]],
        headers: Mapping[str, str] | None = None,
        stream_accept: str = EVENT_STREAM,
        key_rejected_statuses: frozenset[int] = KEY_REJECTED_STATUSES,
    ) -> None:
        self._name = settings.name
        self._keys = keys
        self._url = settings.base_url.rstrip("/") + path
        self._endpoint = JsonEndpoint(
            session,
            provider=settings.name,
            read_error=read_error,
            keys=keys,
            auth=auth,
            headers=headers,
            stream_accept=stream_accept,
            key_rejected_statuses=key_rejected_statuses,
        )

    @property
    def name(self) -> str:
        """The deployment name."""
        return self._name

    def _model_segment(self, model: str) -> str:
        """`model` as exactly one URL path segment (percent-encoded), for vendors that put it there.

        A name with a "/", or a dot-segment ("." or ".."), would reach another path once a
        server or proxy on the way decodes and normalises the URL: it is refused, before
        anything is sent, as a request the provider cannot take (the caller's mistake).
        """
        if not model or model in _DOT_SEGMENTS or "/" in model:
            raise UpstreamBadRequestError(
                f"model: {self._kind} puts the model in its URL path, so {model!r} must be one "
                f"path segment (no '/', not '.' or '..')",
                provider=self._name,
            )
        return quote(model, safe="")
