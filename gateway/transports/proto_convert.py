"""What a completion's response messages say about usage and cost, and a cache hit as a response.

Pure converters: adapter usage and cached answers in, protobuf messages out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final, TypedDict

from cache.answers import CachedAnswer
from gateway.pipeline.pricing import PriceTable
from gateway.pipeline.types import Attempt, AttemptOutcome
from gateway.v1 import gateway_pb2 as pb
from providers.registry import Route
from providers.types import Usage


def answer_cost(
    prices: PriceTable, route: Route, answered_model: str, usage: Usage | None
) -> float:
    """USD for `usage`, priced by the model that answered, else the one asked for."""
    if usage is None:
        return 0.0
    models = (answered_model, route.model) if answered_model else (route.model,)
    return prices.cost(route.provider.name, route.provider.kind, models, usage)


def usage_message(usage: Usage | None) -> pb.Usage | None:
    """The adapter's token counts as the `Usage` message (None when the upstream gave none)."""
    if usage is None:
        return None
    return pb.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        cached_tokens=usage.cached_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
    )


#: Our attempt outcomes as the API's enum.
ATTEMPT_OUTCOMES: Final = {
    outcome: pb.AttemptOutcome.Value(f"ATTEMPT_OUTCOME_{outcome.name}")
    for outcome in AttemptOutcome
}


def attempt_messages(attempts: Sequence[Attempt]) -> list[pb.Attempt]:
    """The call's tries as `Attempt` messages."""
    messages = []
    for a in attempts:
        message = pb.Attempt(
            provider=a.provider,
            model=a.model,
            outcome=ATTEMPT_OUTCOMES[a.outcome],
            error_code=a.error_code,
        )
        message.latency.FromNanoseconds(int(a.latency * 1e9))
        messages.append(message)
    return messages


def cached_response(answer: CachedAnswer) -> pb.CompleteResponse:
    """A cache hit: the original answer and usage, no tries, nothing to pay."""
    return pb.CompleteResponse(content=answer.content, **_as_served(answer))


def replay(answer: CachedAnswer) -> Iterator[pb.StreamCompleteResponse]:
    """A cache hit as a stream: the same pieces as the original, then finish and usage."""
    for piece in answer.pieces():
        yield pb.StreamCompleteResponse(
            id=answer.id, model=answer.model, provider=answer.provider, delta=piece, cached=True
        )
    yield pb.StreamCompleteResponse(**_as_served(answer))


class _Served(TypedDict):
    """What a cache hit says besides its text, whole or as a stream's last message."""

    id: str
    model: str
    provider: str
    finish_reason: str
    usage: pb.Usage | None
    cost_usd: float
    cached: bool


def _as_served(answer: CachedAnswer) -> _Served:
    """The first answer's ids, finish reason and usage; nothing to pay."""
    return _Served(
        id=answer.id,
        model=answer.model,
        provider=answer.provider,
        finish_reason=answer.finish_reason,
        usage=usage_message(answer.usage),
        cost_usd=0.0,
        cached=True,
    )
