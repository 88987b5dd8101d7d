"""The values one call is made of, as the pipeline sees it: no protobuf, no wire format.

A transport turns what it received into a `CompletionRequest` and renders what comes back: an
`Answer`, or a stream of `StreamItem`s (a `StreamHead`, the answer's events, a closing `Done`).
The conversation and what it asks of the model are the adapters' own values
(`providers.types`), shared with the pipeline unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from providers.embed_types import Embeddings, EmbedRequest
from providers.types import ChatRequest, Completion, StreamEvent

# -- requests ------------------------------------------------------------------------------------


class Priority(enum.IntEnum):
    """How a call waits for admission when the gateway is saturated (higher goes first)."""

    #: Not set: admitted as NORMAL.
    UNSPECIFIED = 0
    LOW = 1
    NORMAL = 2
    HIGH = 3


@dataclass(frozen=True, slots=True)
class Routing:
    """Where a call may go besides its model's own route."""

    #: The deployment the call is pinned to ("" lets the model decide).
    provider: str = ""
    #: Models to try, in order, when the requested one cannot answer.
    fallback_models: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """The call's own cache behaviour."""

    #: Look the answer up (else go to the provider, though the answer may still be stored).
    lookup: bool = True
    #: Store the answer.
    store: bool = True
    #: Seconds to keep the answer; None: the gateway's default.
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One call as a caller asked it.

    `chat` is what the model is asked, with the model name as the caller gave it (a configured
    name, an alias or "provider/model") and no per-call I/O: routing turns it into each try's
    request. The rest says how the gateway serves it.
    """

    chat: ChatRequest
    routing: Routing = field(default_factory=Routing)
    #: Caller labels such as "tenant" and "use_case".
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Seconds the whole call may take, retries included; None: the gateway's default.
    timeout: float | None = None
    #: The `Priority` value as sent (validation refuses one that is not a `Priority`).
    priority: int = Priority.UNSPECIFIED
    cache: CachePolicy = field(default_factory=CachePolicy)

    @property
    def model(self) -> str:
        """The model the caller asked for."""
        return self.chat.model

    @property
    def deterministic(self) -> bool:
        """Only answers to temperature 0 are the same every time, so only they are cached."""
        return self.chat.sampling.temperature == 0.0


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """One embedding call as a caller asked it (the `CompletionRequest` of embeddings).

    `embed` is what the model is asked, with the model name as the caller gave it and no
    per-call I/O; the rest says how the gateway serves it, as for a completion.
    """

    embed: EmbedRequest
    routing: Routing = field(default_factory=Routing)
    metadata: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    priority: int = Priority.UNSPECIFIED
    cache: CachePolicy = field(default_factory=CachePolicy)

    @property
    def model(self) -> str:
        """The model the caller asked for."""
        return self.embed.model

    @property
    def deterministic(self) -> bool:
        """Embeddings are the same every time: every one may be cached."""
        return True


# -- attempts ------------------------------------------------------------------------------------


class AttemptOutcome(enum.Enum):
    """How one try against one deployment ended."""

    SUCCESS = enum.auto()
    #: The provider failed or answered with an error.
    ERROR = enum.auto()
    #: The try ran out of time (its own limit, or the caller's deadline).
    TIMEOUT = enum.auto()
    #: The provider refused for its own rate limit.
    RATE_LIMITED = enum.auto()
    #: The deployment's circuit was open, so it was not called.
    CIRCUIT_OPEN = enum.auto()
    #: The caller went away during the try.
    CANCELLED = enum.auto()
    #: The deployment cannot serve what the request uses (images, tools...): it was not called.
    UNSUPPORTED = enum.auto()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try against one deployment: which, how it ended, how long it took."""

    #: The deployment tried, and the model name it was asked for.
    provider: str
    model: str
    outcome: AttemptOutcome
    #: Seconds from the try's start to its end.
    latency: float
    #: The code of the error the try ended with ("UNAVAILABLE"...); "" when it did not fail.
    error_code: str = ""
    #: Why routing chose the deployment (group, strategy, reason; complexity score and tier);
    #: "" when the model is not routed through a group or route.
    routing: str = ""
    #: The complexity tier that chose the deployment ("" when none did).
    tier: str = ""


# -- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """A call's whole answer: the completion, who gave it, what it cost, how it was got."""

    completion: Completion
    #: The deployment that answered.
    provider: str
    cost_usd: float
    #: Whether it came from the gateway's cache (then it cost nothing and made no tries).
    cached: bool = False
    attempts: tuple[Attempt, ...] = ()
    #: False when the vendor's stream ended without usage (the completion's usage is then 0).
    usage_reported: bool = True


@dataclass(frozen=True, slots=True)
class EmbeddingAnswer:
    """An embedding call's answer: the vectors, who gave them, what they cost, how got."""

    embeddings: Embeddings
    #: The deployment that answered.
    provider: str
    cost_usd: float
    cached: bool = False
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamHead:
    """Who is answering a stream: the completion's id and model, the deployment, the cache.

    It comes before the stream's first event, and again if the vendor changes its id or model.
    """

    id: str
    model: str
    provider: str
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Done:
    """The end of a stream that finished: the whole answer, accounted."""

    answer: Answer


#: What a streamed call yields: heads, the answer's text and other deltas, then one `Done`.
StreamItem = StreamHead | StreamEvent | Done

# -- deployments ---------------------------------------------------------------------------------


class CircuitState(enum.Enum):
    """A deployment's circuit breaker."""

    CLOSED = enum.auto()
    OPEN = enum.auto()
    HALF_OPEN = enum.auto()


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """What calls to one model of a deployment cost (USD per million tokens), and from where."""

    model: str
    #: "list", "config" or "none" (no known price: calls cost 0).
    source: str
    input: float = 0.0
    output: float = 0.0
    cached_input: float = 0.0
    cache_write: float = 0.0


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """One deployment's state (or an adapter kind with none configured) for ProviderStatus."""

    name: str
    kind: str
    models: tuple[str, ...]
    configured: bool = False
    #: None for a kind that is not configured.
    circuit: CircuitState | None = None
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    next_probe_at: datetime | None = None
    #: The class of the last error ("UpstreamUnavailableError"); never a message.
    last_error: str = ""
    healthy: bool = False
    keys_total: int = 0
    keys_available: int = 0
    price_source: str = ""
    prices: tuple[ModelPrice, ...] = ()
    #: Its models that serve model groups, as this replica sees them.
    members: tuple[MemberStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """One model of a deployment serving model groups, as this replica sees it."""

    model: str
    groups: tuple[str, ...]
    in_flight: int = 0
    #: Recent whole latency of unary calls and time to first token of streams, in seconds.
    latency: float | None = None
    time_to_first_token: float | None = None
    #: Limit name ("rpm", "tpm", "concurrent") -> share used, as last seen.
    capacity_used: Mapping[str, float] = field(default_factory=dict)
    #: "<group>/<strategy>/<reason>" -> calls routing sent to it first.
    chosen: Mapping[str, int] = field(default_factory=dict)
