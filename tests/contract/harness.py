"""What a vendor's own contract tests are wired with: its deployment, its request, its stream.

A vendor's test module declares `VENDOR = Vendor(...)` (the fake, the adapter's `SPEC`, and the
deployment the tests configure against the fake); `conftest.py` turns it into the `fake` and
`provider` fixtures, and `VENDOR.adapter(...)` builds a differently configured one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from providers.base import (
    AdapterSpec,
    ChatChunk,
    ChatMessage,
    ChatRequest,
    Provider,
    ProviderSettings,
)
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from tests.fakes.base import VendorFake

#: Seconds a rejected or rate-limited key rests in these tests: longer than any test runs.
KEY_COOLDOWN = 60.0


@dataclass(frozen=True)
class Vendor:
    """A vendor's fake, its adapter kind, and the deployment its tests point at the fake."""

    fake: Callable[[], VendorFake]
    spec: AdapterSpec
    #: The deployment name the adapter reports (and names in its errors).
    name: str
    keys: tuple[str, ...] = ()

    def adapter(
        self,
        session: UpstreamClient,
        base_url: str,
        *,
        keys: tuple[str, ...] | None = None,
        **options: object,
    ) -> Provider:
        """This deployment at `base_url`, with other `keys` or adapter `options` if given."""
        keys = self.keys if keys is None else keys
        settings = ProviderSettings(
            name=self.name,
            kind=self.spec.kind,
            base_url=base_url,
            api_keys=keys,
            options=options,
        )
        return self.spec.factory(settings, session, KeyPool(keys, cooldown=KEY_COOLDOWN))


def hello(model: str) -> ChatRequest:
    """The request most vendor tests send: one user turn, "Say hello", to `model`."""
    return ChatRequest(model=model, messages=(ChatMessage("user", "Say hello"),))


async def collect(
    provider: Provider,
    request: ChatRequest,
    into: list[ChatChunk] | None = None,
    first: asyncio.Event | None = None,
) -> list[ChatChunk]:
    """Stream `request` into `into` (a new list if None), setting `first` at the first chunk.

    Chunks land in `into` as they arrive, so a test sees what came before a failure.
    """
    chunks = [] if into is None else into
    async for chunk in provider.stream(request):
        chunks.append(chunk)
        if first is not None:
            first.set()
    return chunks
