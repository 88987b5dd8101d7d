"""`HttpEmbedder`: the base of the HTTP embedding adapters, and the batching every vendor needs.

Vendors cap how many inputs one request may carry (OpenAI 2048, Gemini 100, Cohere 96): a
larger request is split into batches of the vendor's limit, sent a few at once within the call's
time limit, and joined in order, usage summed; a batch that fails fails the call (the others are
cancelled). A subclass supplies the wire format only: its URL (`_url_for`), its body
(`_to_wire`) and its reply (`_from_wire`).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

from providers.base import ProviderSettings
from providers.embed_types import Embedder, Embeddings, EmbedRequest, estimated_tokens
from providers.http.client import UpstreamClient
from providers.http.deployment import HttpDeployment
from providers.http.endpoint import UpstreamErrorBoundary
from providers.keys import KeyPool
from providers.types import Usage
from providers.wire import MalformedReplyError, decode_object

EmbedderFactory = Callable[[ProviderSettings, UpstreamClient, KeyPool], Embedder]
T = TypeVar("T")
#: Batches of one call in flight at once: faster than one by one, gentle on vendor rate limits.
MAX_CONCURRENT_BATCHES = 4


@dataclass(frozen=True, slots=True)
class EmbedderSpec:
    """What the registry needs to know about embedding with one adapter kind."""

    kind: str
    factory: EmbedderFactory
    #: Embedding models a deployment of this kind serves by their bare name (no "<deployment>/").
    models: tuple[str, ...] = field(default=())


class HttpEmbedder(HttpDeployment, ABC):
    """One deployment's embeddings endpoint (see `HttpDeployment` for what it is handed)."""

    #: The most inputs one vendor request may carry.
    batch_limit: ClassVar[int]
    #: Whether the vendor embeds token arrays (`EmbedRequest.tokens`) as well as texts.
    takes_tokens: bool = False

    async def embed(self, request: EmbedRequest) -> Embeddings:
        """One vector per input, in order: batches of `batch_limit`, joined; or raise."""
        limit = request.io.timeout
        deadline = None if limit is None else asyncio.get_running_loop().time() + limit
        parts = batches(request, self.batch_limit)
        with UpstreamErrorBoundary(self._name):
            if len(parts) == 1:
                return await self._embed_batch(request, deadline)
            gate = asyncio.Semaphore(MAX_CONCURRENT_BATCHES)

            async def gated(batch: EmbedRequest) -> Embeddings:
                async with gate:
                    return await self._embed_batch(batch, deadline)

            answers = await all_or_none([gated(batch) for batch in parts])
        return joined(answers, request.model)

    async def _embed_batch(self, batch: EmbedRequest, deadline: float | None) -> Embeddings:
        """One vendor request for one batch, within what is left of the call's time."""
        left = None if deadline is None else deadline - asyncio.get_running_loop().time()
        raw = await self._endpoint.fetch(
            self._url_for(batch), self._to_wire(batch), time_limit=left, headers=batch.io.headers
        )
        answer = self._from_wire(decode_object(raw), batch)
        if len(answer.vectors) != batch.count:
            raise MalformedReplyError(
                f"reply has {len(answer.vectors)} embeddings for {batch.count} inputs"
            )
        return answer

    def _url_for(self, request: EmbedRequest) -> str:
        """Where `request` goes: the deployment's one URL (a vendor may name the model in it)."""
        return self._url

    @abstractmethod
    def _to_wire(self, request: EmbedRequest) -> object:
        """The vendor's request body for one batch."""

    @abstractmethod
    def _from_wire(self, body: Mapping[str, object], request: EmbedRequest) -> Embeddings:
        """The batch's vectors in the vendor's `body`; `MalformedReplyError` if there are none."""


async def all_or_none(calls: list[Coroutine[object, object, T]]) -> list[T]:
    """Every call's result, in order, or the first failure (the others are then cancelled)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
            task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a task's outcome as seen: a second failure is not this call's to report."""
    if not task.cancelled():
        task.exception()


def batches(request: EmbedRequest, limit: int) -> list[EmbedRequest]:
    """`request` split into requests of at most `limit` inputs (texts or token arrays) each, in
    order."""
    if request.count <= limit:
        return [request]
    inputs, tokens = request.inputs, request.tokens
    return [
        replace(request, inputs=inputs[i : i + limit], tokens=tokens[i : i + limit])
        for i in range(0, request.count, limit)
    ]


def joined(answers: Sequence[Embeddings], asked_model: str) -> Embeddings:
    """The answers of a request's batches as one: vectors in order, usage summed."""
    if len(answers) == 1:
        return answers[0]
    prompt = sum(a.usage.prompt_tokens for a in answers)
    total = sum(a.usage.total_tokens for a in answers)
    return Embeddings(
        model=answers[0].model or asked_model,
        vectors=tuple(vector for answer in answers for vector in answer.vectors),
        usage=Usage(prompt_tokens=prompt, total_tokens=total),
        usage_estimated=any(a.usage_estimated for a in answers),
    )


def vector_of(value: object, what: str) -> tuple[float, ...]:
    """A JSON list of numbers as a vector; `MalformedReplyError` for anything else."""
    if not isinstance(value, list) or not value:
        raise MalformedReplyError(f"{what} is not a list of numbers")
    for number in value:
        if not isinstance(number, int | float) or isinstance(number, bool):
            raise MalformedReplyError(f"{what} is not a list of numbers")
    return tuple(float(number) for number in value)


def list_field(body: Mapping[str, object], key: str, what: str) -> list[object]:
    """`body[key]` as a list; `MalformedReplyError` when it is not one."""
    value = body.get(key)
    if not isinstance(value, list):
        raise MalformedReplyError(f"{what} has no {key} list")
    return value


def estimated_usage(request: EmbedRequest) -> Usage:
    """The local estimate of a batch's tokens, for vendors that report none."""
    tokens = estimated_tokens(request)
    return Usage(prompt_tokens=tokens, total_tokens=tokens)
