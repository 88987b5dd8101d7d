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

from providers.base import TEXT_ONLY, AdapterSpec, Capabilities, ProviderSettings
from providers.http.client import UpstreamClient
from providers.keys import KeyPool
from providers.types import (
    ChatRequest,
    Completion,
    Finish,
    Meta,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.wire import UnsupportedContentError, text_of, unsupported_content

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

    def capabilities(self, model: str) -> Capabilities:
        """Text only (for now)."""
        return TEXT_ONLY

    async def complete(self, request: ChatRequest) -> Completion:
        """Return the whole mock answer after the time its tokens would take."""
        texts = self._texts(request)
        words, finish_reason = _reply_words(request, texts)
        await asyncio.sleep(self._latency + self._token_interval * len(words))
        return Completion(
            id=_completion_id(request, texts),
            model=request.model,
            content=" ".join(words),
            finish_reason=finish_reason,
            usage=_usage(texts, len(words)),
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Yield the mock answer a word at a time, then the finish reason and usage."""
        texts = self._texts(request)
        words, finish_reason = _reply_words(request, texts)
        yield Meta(_completion_id(request, texts), request.model)
        await asyncio.sleep(self._latency)
        for index, word in enumerate(words):
            if index and self._token_interval:
                await asyncio.sleep(self._token_interval)
            yield TextDelta(word if index == 0 else " " + word)
        yield Finish(finish_reason, _usage(texts, len(words)))

    async def aclose(self) -> None:
        """Nothing to release."""

    def _texts(self, request: ChatRequest) -> list[str]:
        """Each message's text; the mock, like every adapter so far, takes text only."""
        try:
            return [text_of(m) for m in request.messages]
        except UnsupportedContentError as exc:
            raise unsupported_content(exc, provider=self._name, kind=SPEC.kind) from None


def _reply_words(request: ChatRequest, texts: list[str]) -> tuple[list[str], str]:
    users = (text for m, text in zip(request.messages, texts, strict=True) if m.role == "user")
    said = ([*users] or [""])[-1]
    words = REPLY_PREFIX.split() + (said.split()[:ECHO_WORDS] or ["nothing."])
    max_tokens = request.sampling.max_tokens
    if max_tokens is not None and len(words) > max_tokens:
        return words[:max_tokens], "length"
    return words, "stop"


def _usage(texts: list[str], completion_tokens: int) -> Usage:
    prompt = sum(len(text.split()) + TOKENS_PER_MESSAGE for text in texts)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion_tokens,
        total_tokens=prompt + completion_tokens,
    )


def _completion_id(request: ChatRequest, texts: list[str]) -> str:
    digest = hashlib.sha256()
    for message, text in zip(request.messages, texts, strict=True):
        digest.update(message.role.encode() + b"\0" + text.encode() + b"\0")
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
