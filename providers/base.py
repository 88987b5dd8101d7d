"""What every provider adapter speaks: our own request/response values and the `Provider` protocol.

Adapters turn a `ChatRequest` into their vendor's wire format and the vendor's answer back into
a `ChatResponse` (or a stream of `ChatChunk`). They raise only `gateway.errors.UpstreamError`
subclasses for provider failures. They never read the environment and never retry: the gateway
owns the one retry policy.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A completion request as an adapter sees it: the model is the provider's own model name."""

    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    #: Seconds the adapter may spend on this call (connect to last byte); None means no bound.
    timeout: float | None = None
    #: Extra headers to send upstream (the request id, trace context); never credentials.
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """One whole completion."""

    id: str
    model: str
    content: str
    finish_reason: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """One piece of a streamed completion.

    The last chunk of a stream that ended normally carries `finish_reason` and `usage`; an
    adapter whose stream ends any other way raises instead of returning.
    """

    delta: str = ""
    id: str = ""
    model: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter can do."""

    streaming: bool = True
    stream_usage: bool = True


@runtime_checkable
class Provider(Protocol):
    """One provider deployment: a named adapter instance with its base URL and credentials."""

    @property
    def name(self) -> str:
        """The deployment name used for routing, pinning and status."""
        ...

    @property
    def kind(self) -> str:
        """The adapter kind, such as "openai" or "mock"."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What this adapter supports."""
        ...

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Return one whole completion or raise an `UpstreamError`."""
        ...

    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Yield chunks; the last one has `finish_reason` and `usage`, or the iterator raises."""
        ...

    async def aclose(self) -> None:
        """Release what the adapter holds (not the shared HTTP session, which it does not own)."""
        ...


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Configuration of one provider deployment, as loaded from the environment and YAML."""

    name: str
    kind: str
    models: tuple[str, ...] = ()
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    #: Adapter-specific options (mock latency and token rate, extra vendor headers...).
    options: Mapping[str, object] = field(default_factory=dict)
