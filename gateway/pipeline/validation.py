"""Validation of completion requests, shared by both transports.

`parse_params` checks a `CompleteRequest` or `StreamCompleteRequest` (the two share their
fields) and turns it into `CompletionParams`, plain values the core works with. Every problem
is an `InvalidArgumentError` whose message starts with the field it is about.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.errors import InvalidArgumentError
from gateway.v1 import gateway_pb2 as pb
from providers.types import CallIO, ChatRequest, Message, Sampling

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_MODEL_CHARS = 256
MAX_MESSAGES = 4096
MAX_STOP_SEQUENCES = 16
MAX_FALLBACK_MODELS = 8
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_TIMEOUT_SECONDS = 3600.0

CompletionMessage = pb.CompleteRequest | pb.StreamCompleteRequest
_DOT_SEGMENTS = frozenset({".", ".."})
_PRIORITIES = frozenset(pb.Priority.values())


@dataclass(frozen=True, slots=True)
class CompletionParams:
    """A validated completion request."""

    model: str
    messages: tuple[Message, ...]
    temperature: float | None
    max_tokens: int | None
    top_p: float | None
    stop: tuple[str, ...]
    provider: str
    fallback_models: tuple[str, ...]
    metadata: Mapping[str, str]
    timeout: float | None
    #: The `Priority` enum value (0 when unset).
    priority: int = 0
    #: The request's cache policy: look answers up, store this one, and for how long.
    cache_lookup: bool = True
    cache_store: bool = True
    cache_ttl: float | None = None

    @property
    def deterministic(self) -> bool:
        """Only answers to `temperature` 0 are the same every time, so only they are cached."""
        return self.temperature == 0.0

    def to_chat(
        self, model: str, *, timeout: float | None, headers: tuple[tuple[str, str], ...]
    ) -> ChatRequest:
        """The adapter-facing request for the routed `model`."""
        return ChatRequest(
            model=model,
            messages=self.messages,
            sampling=Sampling(self.temperature, self.max_tokens, self.top_p, self.stop),
            io=CallIO(timeout, headers),
        )


def parse_params(request: CompletionMessage) -> CompletionParams:
    """Validate `request`; raise `InvalidArgumentError` naming the first bad field."""
    _check_priority(request.priority)
    return CompletionParams(
        model=_model(request.model),
        messages=_messages(request.messages),
        temperature=_temperature(request),
        max_tokens=_max_tokens(request),
        top_p=_top_p(request),
        stop=_stop(request.stop),
        provider=request.provider.strip(),
        fallback_models=_fallback_models(request.fallback_models),
        metadata=_metadata(request.metadata),
        timeout=_timeout(request),
        priority=int(request.priority),
        cache_lookup=not request.cache.no_cache,
        cache_store=not request.cache.no_store,
        cache_ttl=_cache_ttl(request),
    )


def _model(model: str) -> str:
    model = model.strip()
    if not model:
        raise InvalidArgumentError("model: required")
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidArgumentError(f"model: longer than {MAX_MODEL_CHARS} characters")
    _check_model_name("model", model)
    return model


def _check_model_name(field: str, model: str) -> None:
    """Refuse a name no deployment serves and that would change a URL it is put in.

    Some vendors name the model in the URL path (Azure deployments, Gemini models): a
    dot-segment ("." or "..", also after "<provider>/") would walk up that path, and control
    characters, "?" and "#" end the path. No model anywhere is named like that.
    """
    if any(unicodedata.category(c) == "Cc" for c in model):
        raise InvalidArgumentError(f"{field}: must not contain control characters")
    if "?" in model or "#" in model:
        raise InvalidArgumentError(f"{field}: must not contain '?' or '#', got {model!r}")
    if any(segment in _DOT_SEGMENTS for segment in model.split("/")):
        raise InvalidArgumentError(
            f"{field}: '.' and '..' are not model names (nor parts of one between '/'), "
            f"got {model!r}"
        )


def _messages(messages: Sequence[pb.Message]) -> tuple[Message, ...]:
    if not messages:
        raise InvalidArgumentError("messages: must hold at least one message")
    if len(messages) > MAX_MESSAGES:
        raise InvalidArgumentError(f"messages: more than {MAX_MESSAGES} messages")
    parsed = []
    for index, message in enumerate(messages):
        if message.role not in ROLES:
            raise InvalidArgumentError(
                f"messages[{index}].role: must be one of {', '.join(ROLES)}, got {message.role!r}"
            )
        if not message.content and message.role != "assistant":
            raise InvalidArgumentError(f"messages[{index}].content: must not be empty")
        parsed.append(Message.of_text(message.role, message.content))
    return tuple(parsed)


def _temperature(request: CompletionMessage) -> float | None:
    if not request.HasField("temperature"):
        return None
    value = request.temperature
    if not (math.isfinite(value) and 0.0 <= value <= 2.0):
        raise InvalidArgumentError(f"temperature: must be between 0 and 2, got {value}")
    return value


def _max_tokens(request: CompletionMessage) -> int | None:
    if not request.HasField("max_tokens"):
        return None
    if request.max_tokens <= 0:
        raise InvalidArgumentError(
            f"max_tokens: must be a positive integer, got {request.max_tokens}"
        )
    return request.max_tokens


def _top_p(request: CompletionMessage) -> float | None:
    if not request.HasField("top_p"):
        return None
    value = request.top_p
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise InvalidArgumentError(f"top_p: must be above 0 and at most 1, got {value}")
    return value


def _stop(stop: Sequence[str]) -> tuple[str, ...]:
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidArgumentError(f"stop: more than {MAX_STOP_SEQUENCES} sequences")
    if any(not s for s in stop):
        raise InvalidArgumentError("stop: sequences must not be empty")
    return tuple(stop)


def _fallback_models(models: Sequence[str]) -> tuple[str, ...]:
    if len(models) > MAX_FALLBACK_MODELS:
        raise InvalidArgumentError(f"fallback_models: more than {MAX_FALLBACK_MODELS} models")
    if any(not m.strip() for m in models):
        raise InvalidArgumentError("fallback_models: model names must not be empty")
    names = tuple(m.strip() for m in models)
    for index, name in enumerate(names):
        _check_model_name(f"fallback_models[{index}]", name)
    return names


def _metadata(metadata: Mapping[str, str]) -> Mapping[str, str]:
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise InvalidArgumentError(f"metadata: more than {MAX_METADATA_ENTRIES} entries")
    for key, value in metadata.items():
        if not key or len(key) > MAX_METADATA_KEY_CHARS:
            raise InvalidArgumentError(
                f"metadata: keys must be 1 to {MAX_METADATA_KEY_CHARS} characters"
            )
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidArgumentError(
                f"metadata.{key}: longer than {MAX_METADATA_VALUE_CHARS} characters"
            )
    return dict(metadata)


def _timeout(request: CompletionMessage) -> float | None:
    if not request.HasField("timeout"):
        return None
    seconds = request.timeout.seconds + request.timeout.nanos / 1e9
    if not 0.0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise InvalidArgumentError(
            f"timeout: must be above 0s and at most {MAX_TIMEOUT_SECONDS:g}s, got {seconds:g}s"
        )
    return seconds


def _cache_ttl(request: CompletionMessage) -> float | None:
    if not request.cache.HasField("ttl"):
        return None
    seconds = request.cache.ttl.seconds + request.cache.ttl.nanos / 1e9
    if seconds <= 0:
        raise InvalidArgumentError(f"cache.ttl: must be above 0s, got {seconds:g}s")
    return seconds


def _check_priority(priority: int) -> None:
    if priority not in _PRIORITIES:
        raise InvalidArgumentError(f"priority: unknown value {priority}")


def parse_timeout_header(value: str) -> float:
    """Seconds from an `x-request-timeout` value: "2" or "2s" (seconds), or "1500ms"."""
    text = value.strip().lower()
    scale = 1.0
    if text.endswith("ms"):
        text, scale = text[:-2], 0.001
    elif text.endswith("s"):
        text = text[:-1]
    try:
        seconds = float(text) * scale
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0.0 < seconds <= MAX_TIMEOUT_SECONDS):
        raise InvalidArgumentError(
            f"x-request-timeout: must be a duration such as '1.5s' or '1500ms' above 0 and at "
            f"most {MAX_TIMEOUT_SECONDS:g}s, got {value[:32]!r}"
        )
    return seconds
