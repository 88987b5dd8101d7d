"""What every provider adapter is: the `Provider` protocol, a deployment's settings, a kind's spec.

Adapters turn a `providers.types.ChatRequest` into their vendor's wire format and the vendor's
answer back into a `Completion` (or a stream of `StreamEvent`s). They raise only
`UpstreamError` subclasses for provider failures. They never read the environment and never
retry: the gateway owns the one retry policy.

Each adapter says what it can do with a model beyond text in and text out (`Capabilities`:
tools, images, structured output, reasoning...); `check_capabilities` names the first thing a
request uses that a deployment cannot honour, so the gateway refuses it (or skips that
deployment) before anything is sent, instead of the adapter dropping it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from providers.keys import KeyPool
from providers.types import (
    ChatRequest,
    Completion,
    ImagePart,
    ResponseFormatType,
    StreamEvent,
    TextPart,
    ToolChoiceMode,
)

if TYPE_CHECKING:
    from providers.http.client import UpstreamClient


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a deployment can do with one model beyond text in and text out.

    The default is text only: an adapter declares each thing it sends to its vendor faithfully,
    and nothing else, so a request that uses more is refused rather than sent without it.
    """

    #: Tool definitions, tool calls in the answer, and tool calls and results in the history.
    tools: bool = False
    #: The tool choice modes it honours (with `tools`).
    tool_choices: frozenset[ToolChoiceMode] = frozenset({ToolChoiceMode.AUTO})
    #: Whether it can turn parallel tool calls off (`parallel_tool_calls` false).
    parallel_tool_calls_off: bool = False
    #: Images given as data (data: URLs, or bytes and a media type).
    images: bool = False
    #: https image URLs the vendor fetches itself (without, the gateway fetches them and sends
    #: their bytes).
    image_urls: bool = False
    #: Images in a tool result.
    tool_result_images: bool = False
    #: `response_format` JSON_OBJECT and JSON_SCHEMA, natively.
    json_object: bool = False
    json_schema: bool = False
    #: Whether a JSON answer (either type) can be asked for together with tools.
    json_with_tools: bool = True
    #: The `reasoning_effort` values it honours ("none" needs no entry on a model that does not
    #: reason).
    reasoning_efforts: frozenset[str] = frozenset()
    #: Whether it takes a sampling seed.
    seed: bool = False


#: What an adapter that declares nothing can do: text in, text out.
TEXT_ONLY: Final = Capabilities()


def check_capabilities(
    request: ChatRequest, capabilities: Capabilities, provider: str
) -> str | None:
    """The first thing `request` uses that `capabilities` cannot honour, as a message starting
    with the field (the API's name for it) and naming `provider`; None when it can serve it."""
    can = capabilities
    if request.tools and not can.tools:
        return f"tools: {_cannot(provider)} call tools"
    choice = request.tool_choice
    if choice is not None and choice.mode not in can.tool_choices:
        return f"tool_choice: {_cannot(provider)} honour mode {choice.mode.name}"
    if request.parallel_tool_calls is False and not can.parallel_tool_calls_off:
        return f"parallel_tool_calls: {_cannot(provider)} turn parallel tool calls off"
    for index, message in enumerate(request.messages):
        if not can.tools and (message.tool_calls or message.role == "tool"):
            what = "tool_calls" if message.tool_calls else "role"
            return f"messages[{index}].{what}: {_cannot(provider)} take tool calls or tool results"
        parts = message.parts
        if len(parts) == 1 and type(parts[0]) is TextPart:
            continue  # nearly every message: one text part
        for number, part in enumerate(parts):
            if type(part) is not ImagePart:
                continue
            field = f"messages[{index}].parts[{number}].image"
            if not can.images:
                return f"{field}: {_cannot(provider)} take images"
            if message.role == "tool" and not can.tool_result_images:
                return f"{field}: {_cannot(provider)} take images in a tool result"
    if request.response_format is not None:
        problem = _format_problem(request, can, _cannot(provider))
        if problem is not None:
            return problem
    effort = request.reasoning_effort
    # "none" asks nothing of a model that does not reason (one that lists no effort).
    trivially_none = effort == "none" and not can.reasoning_efforts
    if effort is not None and effort not in can.reasoning_efforts and not trivially_none:
        return f"reasoning_effort: {_cannot(provider)} honour {effort!r}"
    if request.sampling.seed is not None and not can.seed:
        return f"seed: {_cannot(provider)} take a seed"
    return None


def _cannot(provider: str) -> str:
    """How a capability message names the deployment (made only when there is a problem)."""
    return f"provider {provider!r} cannot"


def _format_problem(request: ChatRequest, can: Capabilities, cannot: str) -> str | None:
    form = request.response_format
    if form is None or form.type is ResponseFormatType.TEXT:
        return None
    if form.type is ResponseFormatType.JSON_OBJECT and not can.json_object:
        return f"response_format.type: {cannot} answer with a JSON object"
    if form.type is ResponseFormatType.JSON_SCHEMA and not can.json_schema:
        return f"response_format.type: {cannot} answer with JSON following a schema"
    if request.tools and not can.json_with_tools:
        return f"response_format: {cannot} answer in JSON when tools are given"
    return None


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

    def capabilities(self, model: str) -> Capabilities:
        """What the deployment can do with `model` (the provider's own model name)."""
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
