"""A failed try is judged by one table, before a stream's first event and after it alike.

A scripted deployment (a `Provider` that plays back events, then raises) stands in for a vendor,
so the service is driven exactly as the transports drive it; the ledger row records each try.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from gateway.errors import GatewayError
from gateway.pipeline.call import CallContext
from gateway.pipeline.types import CompletionRequest, StreamItem
from gateway.runtime.assembly import build_core
from gateway.store.records import RequestRecord
from providers.base import TEXT_ONLY, Capabilities, ProviderSettings
from providers.errors import UpstreamRateLimitedError
from providers.keys import KeyPool
from providers.registry import Deployment, ProviderRegistry
from providers.types import ChatRequest, Completion, Message, Meta, StreamEvent, TextDelta
from tests.conftest import test_settings

NAME = "scripted"


class Scripted:
    """A deployment that streams `events`, then raises `error` (every call the same)."""

    kind = "scripted"

    def __init__(self, events: tuple[StreamEvent, ...], error: Exception) -> None:
        self.name = NAME
        self._events = events
        self._error = error
        self.calls = 0

    def capabilities(self, model: str) -> Capabilities:
        return TEXT_ONLY

    async def complete(self, request: ChatRequest) -> Completion:
        self.calls += 1
        raise self._error

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.calls += 1
        for event in self._events:
            yield event
        raise self._error

    async def aclose(self) -> None:
        pass


def rate_limited() -> UpstreamRateLimitedError:
    return UpstreamRateLimitedError(
        f"provider {NAME!r} is rate limiting the gateway (HTTP 429)", provider=NAME
    )


async def stream_once(provider: Scripted) -> tuple[list[StreamItem], RequestRecord]:
    """Stream one call through the service; its messages until it failed, and its ledger row."""
    settings = ProviderSettings(name=NAME, kind="mock", models=("m",))
    registry = ProviderRegistry([Deployment(settings, provider, KeyPool((), cooldown=60))], {})
    rows: list[RequestRecord] = []
    core = build_core(test_settings(primary_retries=0), registry, None, usage=rows.append)
    core.open_for_calls()
    request = CompletionRequest(ChatRequest("m", (Message.of_text("user", "hi"),)))
    received: list[StreamItem] = []

    async def drain() -> None:
        async for message in core.stream_complete(request, CallContext("grpc", "req-1")):
            received.append(message)

    with pytest.raises(GatewayError) as caught:
        await drain()
    (row,) = rows
    assert row.status == caught.value.code_name
    return received, row


async def test_a_429_before_the_first_event_is_recorded_rate_limited() -> None:
    _, row = await stream_once(Scripted((Meta("c-1", "m"),), rate_limited()))

    assert row.status == "RESOURCE_EXHAUSTED"
    assert [a.outcome for a in row.attempts] == ["RATE_LIMITED"]


async def test_a_429_after_the_first_event_is_recorded_rate_limited_too() -> None:
    received, row = await stream_once(
        Scripted((Meta("c-1", "m"), TextDelta("Hel"), TextDelta("lo")), rate_limited())
    )

    assert [i.text for i in received if isinstance(i, TextDelta)] == ["Hel", "lo"]
    assert row.status == "RESOURCE_EXHAUSTED"
    assert [a.outcome for a in row.attempts] == ["RATE_LIMITED"]
