"""What every provider adapter is: the `Provider` protocol, a deployment's settings, a kind's spec.

Adapters turn a `providers.types.ChatRequest` into their vendor's wire format and the vendor's
answer back into a `Completion` (or a stream of `StreamEvent`s). They raise only
`UpstreamError` subclasses for provider failures. They never read the environment and never
retry: the gateway owns the one retry policy.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from providers.keys import KeyPool
from providers.types import ChatRequest, Completion, StreamEvent

if TYPE_CHECKING:
    from providers.http.client import UpstreamClient


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

    async def complete(self, request: ChatRequest) -> Completion:
        """Return one whole completion or raise an `UpstreamError`."""
        ...

    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Yield the answer's events and one closing `Finish`, or raise.

        `Meta` comes whenever the vendor says its id or model; a stream that does not end with
        `Finish` raises instead.
        """
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
