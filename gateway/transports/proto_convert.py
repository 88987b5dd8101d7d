"""Protobuf in, pipeline values out, and back: the only place the core's values meet `gateway.v1`.

Pure converters, used by the gRPC servicer and the JSON app alike: a request message becomes a
`CompletionRequest` (unset optional fields stay None: validation is the core's), an `Answer`
a response, a stream's items its messages, deployments' states a `ProviderStatusResponse`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Final

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.pipeline.types import (
    Answer,
    Attempt,
    AttemptOutcome,
    CachePolicy,
    CircuitState,
    CompletionRequest,
    DeploymentStatus,
    Done,
    Routing,
    StreamHead,
    StreamItem,
)
from gateway.v1 import gateway_pb2 as pb
from providers.types import CallIO, ChatRequest, Message, Sampling, TextDelta, TextPart, Usage

#: Our attempt outcomes and circuit states as the API's enums.
ATTEMPT_OUTCOMES: Final = {
    outcome: pb.AttemptOutcome.Value(f"ATTEMPT_OUTCOME_{outcome.name}")
    for outcome in AttemptOutcome
}
CIRCUIT_STATES: Final = {
    state: pb.CircuitState.Value(f"CIRCUIT_STATE_{state.name}") for state in CircuitState
}
_NO_IO: Final = CallIO()
_NO_ROUTING: Final = Routing()
_NO_CACHE_POLICY: Final = CachePolicy()
_NO_METADATA: Final[Mapping[str, str]] = MappingProxyType({})

# -- requests ------------------------------------------------------------------------------------


def completion_request(message: pb.CompleteRequest | pb.StreamCompleteRequest) -> CompletionRequest:
    """The call a `CompleteRequest` or `StreamCompleteRequest` asks for (not yet validated)."""
    sampling = Sampling(
        message.temperature if message.HasField("temperature") else None,
        message.max_tokens if message.HasField("max_tokens") else None,
        message.top_p if message.HasField("top_p") else None,
        tuple(message.stop) if message.stop else (),
    )
    messages = tuple(
        Message(m.role, (TextPart(m.content),) if m.content else ()) for m in message.messages
    )
    # Most requests set no routing, metadata or cache policy: those share one value each.
    routing = _NO_ROUTING
    if message.provider or message.fallback_models:
        routing = Routing(message.provider, tuple(message.fallback_models))
    cache = _NO_CACHE_POLICY
    if message.HasField("cache"):
        policy = message.cache
        cache = CachePolicy(
            lookup=not policy.no_cache,
            store=not policy.no_store,
            ttl=_seconds(policy.ttl) if policy.HasField("ttl") else None,
        )
    return CompletionRequest(
        ChatRequest(message.model, messages, sampling, _NO_IO),
        routing,
        dict(message.metadata) if message.metadata else _NO_METADATA,
        _seconds(message.timeout) if message.HasField("timeout") else None,
        int(message.priority),
        cache,
    )


def _seconds(duration: Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


# -- answers -------------------------------------------------------------------------------------


def complete_response(answer: Answer) -> pb.CompleteResponse:
    """A whole answer as the `CompleteResponse` message."""
    completion = answer.completion
    return pb.CompleteResponse(
        id=completion.id,
        model=completion.model,
        provider=answer.provider,
        content=completion.content,
        finish_reason=completion.finish_reason,
        usage=usage_message(completion.usage),
        cost_usd=answer.cost_usd,
        cached=answer.cached,
        attempts=attempt_messages(answer.attempts),
    )


class StreamMessages:
    """A stream's items as `StreamCompleteResponse` messages, one stream at a time.

    A head is remembered (each later message carries its id, model and provider), text is a
    message, `Done` the last message; events the API has no field for yet send nothing.
    """

    __slots__ = ("_head",)

    def __init__(self) -> None:
        self._head = StreamHead("", "", "")

    def message(self, item: StreamItem) -> pb.StreamCompleteResponse | None:
        """The message for `item`, or None when it sends none."""
        if type(item) is TextDelta:
            head = self._head
            return pb.StreamCompleteResponse(
                id=head.id,
                model=head.model,
                provider=head.provider,
                delta=item.text,
                cached=head.cached,
            )
        if isinstance(item, StreamHead):
            self._head = item
        elif isinstance(item, Done):
            return last_message(item.answer)
        return None


def last_message(answer: Answer) -> pb.StreamCompleteResponse:
    """The stream's last message: finish reason, usage (if reported), cost and tries."""
    completion = answer.completion
    return pb.StreamCompleteResponse(
        id=completion.id,
        model=completion.model,
        provider=answer.provider,
        finish_reason=completion.finish_reason,
        usage=usage_message(completion.usage) if answer.usage_reported else None,
        cost_usd=answer.cost_usd,
        cached=answer.cached,
        attempts=attempt_messages(answer.attempts),
    )


def usage_message(usage: Usage) -> pb.Usage:
    """Token counts as the `Usage` message."""
    return pb.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        cached_tokens=usage.cached_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
    )


def attempt_messages(attempts: Sequence[Attempt]) -> list[pb.Attempt]:
    """The call's tries as `Attempt` messages."""
    messages = []
    for attempt in attempts:
        message = pb.Attempt(
            provider=attempt.provider,
            model=attempt.model,
            outcome=ATTEMPT_OUTCOMES[attempt.outcome],
            error_code=attempt.error_code,
        )
        message.latency.FromNanoseconds(int(attempt.latency * 1e9))
        messages.append(message)
    return messages


# -- deployments ---------------------------------------------------------------------------------


def provider_status_response(entries: Iterable[DeploymentStatus]) -> pb.ProviderStatusResponse:
    """Deployments' states as the `ProviderStatusResponse` message."""
    return pb.ProviderStatusResponse(providers=[_provider_info(entry) for entry in entries])


def _provider_info(entry: DeploymentStatus) -> pb.ProviderInfo:
    circuit = entry.circuit
    return pb.ProviderInfo(
        name=entry.name,
        kind=entry.kind,
        models=entry.models,
        circuit_state=CIRCUIT_STATES[circuit]
        if circuit is not None
        else pb.CIRCUIT_STATE_UNSPECIFIED,
        consecutive_failures=entry.consecutive_failures,
        opened_at=_timestamp(entry.opened_at),
        next_probe_at=_timestamp(entry.next_probe_at),
        last_error=entry.last_error,
        healthy=entry.healthy,
        configured=entry.configured,
        keys_total=entry.keys_total,
        keys_available=entry.keys_available,
        price_source=entry.price_source,
        prices=[
            pb.ModelPrice(
                model=price.model,
                source=price.source,
                input=price.input,
                output=price.output,
                cached_input=price.cached_input,
                cache_write=price.cache_write,
            )
            for price in entry.prices
        ],
    )


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
