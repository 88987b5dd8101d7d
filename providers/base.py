"""What every provider adapter speaks: our own request/response values and the `Provider` protocol.

Adapters turn a `ChatRequest` into their vendor's wire format and the vendor's answer back into
a `ChatResponse` (or a stream of `ChatChunk`). They raise only `gateway.errors.UpstreamError`
subclasses for provider failures. They never read the environment and never retry: the gateway
owns the one retry policy.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from providers.keys import KeyPool

if TYPE_CHECKING:
    from providers.http.client import UpstreamClient


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

    #: Every prompt token, including those read from or written to the vendor's prompt cache.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    #: Prompt tokens read from the vendor's prompt cache (billed at the cached-input price).
    cached_tokens: int = 0
    #: Prompt tokens written to the vendor's prompt cache (billed at the cache-write price).
    cache_creation_tokens: int = 0


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
    #: The deployment's API keys, used round-robin (empty for servers that need none).
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    #: Adapter-specific options (mock latency and token rate, API versions...).
    options: Mapping[str, object] = field(default_factory=dict)

    def option(self, key: str, default: str) -> str:
        """An option as text, or `default` when it is not set."""
        value = self.options.get(key)
        return default if value is None or value == "" else str(value)

    def number_option(self, key: str, default: float) -> float:
        """An option as a number, or `default` when it is not set (config checked it)."""
        value = self.options.get(key)
        return float(value) if isinstance(value, int | float | str) and value != "" else default


ProviderFactory = Callable[[ProviderSettings, "UpstreamClient", KeyPool], Provider]


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    """What the registry and the config need to know about one adapter kind.

    A deployment of this kind is configured from the environment when `<env_prefix>_API_KEY`
    (comma-separated for a key pool) or `<env_prefix>_BASE_URL` is set, or from the YAML file.
    """

    kind: str
    factory: ProviderFactory
    #: Prefix of the kind's environment variables, such as "ANTHROPIC"; "" for none.
    env_prefix: str = ""
    #: Used when no base URL is configured; "" means one must be.
    default_base_url: str = ""
    #: Models a deployment lists when its config names none.
    default_models: tuple[str, ...] = ()
    #: Option -> environment variable after the prefix, e.g. {"api_version": "API_VERSION"}.
    env_options: Mapping[str, str] = field(default_factory=dict)
    #: Options that must be numbers (checked when the config is loaded).
    number_options: frozenset[str] = frozenset()
    #: Whether the kind needs no key or URL (the built-in mock: on when no real provider is).
    built_in: bool = False
