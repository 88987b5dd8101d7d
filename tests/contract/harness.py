"""What a vendor's own contract tests are wired with: its deployment, its request, its stream.

A vendor's test module declares `VENDOR = Vendor(...)` (the fake, the adapter's `SPEC`, and the
deployment the tests configure against the fake); `conftest.py` turns it into the `fake` and
`provider` fixtures, and `VENDOR.adapter(...)` builds a differently configured one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from providers.base import AdapterSpec, Provider, ProviderSettings
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.types import (
    CallIO,
    ChatRequest,
    Completion,
    CompletionBuilder,
    Finish,
    Message,
    Meta,
    Sampling,
    StreamEvent,
    TextDelta,
)
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


def chat(
    model: str,
    *turns: tuple[str, str] | Message,
    temperature: float | None = None,
    max_tokens: int | None = None,
    top_p: float | None = None,
    stop: tuple[str, ...] = (),
    timeout: float | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> ChatRequest:
    """A request for `model` of `turns` ((role, text) pairs or messages) and these settings."""
    messages = tuple(t if isinstance(t, Message) else Message.of_text(*t) for t in turns)
    return ChatRequest(
        model=model,
        messages=messages,
        sampling=Sampling(temperature, max_tokens, top_p, stop),
        io=CallIO(timeout, headers),
    )


def hello(model: str) -> ChatRequest:
    """The request most vendor tests send: one user turn, "Say hello", to `model`."""
    return chat(model, ("user", "Say hello"))


async def collect(
    provider: Provider,
    request: ChatRequest,
    into: list[StreamEvent] | None = None,
    first: asyncio.Event | None = None,
) -> list[StreamEvent]:
    """Stream `request` into `into` (a new list if None), setting `first` at the first content.

    Events land in `into` as they arrive, so a test sees what came before a failure.
    """
    events = [] if into is None else into
    async for event in provider.stream(request):
        events.append(event)
        if first is not None and not isinstance(event, Meta):
            first.set()
    return events


def deltas(events: list[StreamEvent]) -> list[str]:
    """The text of each `TextDelta`, in order."""
    return [e.text for e in events if isinstance(e, TextDelta)]


def finish(events: list[StreamEvent]) -> Finish:
    """The stream's closing event (its last), checked to be the only `Finish`."""
    assert isinstance(events[-1], Finish), f"the stream ended with {events[-1]!r}"
    assert sum(isinstance(e, Finish) for e in events) == 1
    return events[-1]


def sent(fake: VendorFake, number: int = 0) -> dict[str, Any]:
    """The body of the `number`-th request the fake answered."""
    return fake.requests[number].body


def folded(events: list[StreamEvent]) -> Completion:
    """The whole answer the events make up."""
    built = CompletionBuilder()
    for event in events:
        built.feed(event)
    return built.build()
