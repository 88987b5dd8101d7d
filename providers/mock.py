"""The built-in mock provider: deterministic answers, no network.

It answers every model it is asked for with the same text for the same conversation, paced by a
configurable first-token latency (`latency_ms`) and token rate (`tokens_per_second`, 0 for no
pacing). Tokens are whitespace-separated words. It is what the gateway serves when no real
provider is configured (or next to them with `MOCK_ENABLED=true`), and what demos and benchmarks
use.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator
from typing import Final

from providers.base import (
    AdapterSpec,
    Capabilities,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ProviderSettings,
    Usage,
)
from providers.http.client import UpstreamClient
from providers.keys import KeyPool

REPLY_PREFIX = "This is a mock completion from ai-gateway. You said:"
ECHO_WORDS = 48
TOKENS_PER_MESSAGE = 3


class MockProvider:
    """A `Provider` that makes its answers up, the same way every time."""

    def __init__(
        self,
        settings: ProviderSettings,
        session: UpstreamClient | None = None,
        keys: KeyPool | None = None,
    ) -> None:
        self._name = settings.name
        self._latency = settings.number_option("latency_ms", 0.0) / 1000.0
        rate = settings.number_option("tokens_per_second", 0.0)
        self._token_interval = 1.0 / rate if rate > 0 else 0.0

    @property
    def name(self) -> str:
        """The deployment name."""
        return self._name

    @property
    def kind(self) -> str:
        """Always "mock"."""
        return "mock"

    @property
    def capabilities(self) -> Capabilities:
        """The mock streams and reports usage."""
        return Capabilities()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Return the whole mock answer after the time its tokens would take."""
        words, finish_reason = _reply_words(request)
        await asyncio.sleep(self._latency + self._token_interval * len(words))
        return ChatResponse(
            id=_completion_id(request),
            model=request.model,
            content=" ".join(words),
            finish_reason=finish_reason,
            usage=_usage(request, len(words)),
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Yield the mock answer a word at a time, then the finish reason and usage."""
        words, finish_reason = _reply_words(request)
        completion_id = _completion_id(request)
        await asyncio.sleep(self._latency)
        for index, word in enumerate(words):
            if index and self._token_interval:
                await asyncio.sleep(self._token_interval)
            delta = word if index == 0 else " " + word
            yield ChatChunk(delta=delta, id=completion_id, model=request.model)
        yield ChatChunk(
            id=completion_id,
            model=request.model,
            finish_reason=finish_reason,
            usage=_usage(request, len(words)),
        )

    async def aclose(self) -> None:
        """Nothing to release."""


def _reply_words(request: ChatRequest) -> tuple[list[str], str]:
    said = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    words = REPLY_PREFIX.split() + (said.split()[:ECHO_WORDS] or ["nothing."])
    if request.max_tokens is not None and len(words) > request.max_tokens:
        return words[: request.max_tokens], "length"
    return words, "stop"


def _usage(request: ChatRequest, completion_tokens: int) -> Usage:
    prompt = sum(len(m.content.split()) + TOKENS_PER_MESSAGE for m in request.messages)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion_tokens,
        total_tokens=prompt + completion_tokens,
    )


def _completion_id(request: ChatRequest) -> str:
    digest = hashlib.sha256()
    for message in request.messages:
        digest.update(message.role.encode() + b"\0" + message.content.encode() + b"\0")
    return "mock-" + digest.hexdigest()[:24]


SPEC: Final = AdapterSpec(
    kind="mock",
    factory=MockProvider,
    env_prefix="MOCK",
    default_models=("mock",),
    env_options={"latency_ms": "LATENCY_MS", "tokens_per_second": "TOKENS_PER_SECOND"},
    number_options=frozenset({"latency_ms", "tokens_per_second"}),
    built_in=True,
)
