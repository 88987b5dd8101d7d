"""The response cache and agent answers: a tool-call answer (with reasoning) is stored, and
replayed exactly, unary and streamed; a request that differs in what it asks misses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import replace

from cache.layer import ResponseCache
from cache.memory import MemoryCache
from gateway.pipeline.call import CallContext
from gateway.pipeline.service import CompletionService
from gateway.pipeline.types import Answer, CompletionRequest, Done, StreamHead, StreamItem
from gateway.runtime.assembly import build_core
from providers.base import ProviderSettings
from providers.keys import KeyPool
from providers.mock import MockProvider
from providers.registry import Deployment, ProviderRegistry
from providers.types import (
    ChatRequest,
    Completion,
    Message,
    ReasoningDelta,
    Sampling,
    StreamEvent,
    Tool,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
)
from tests.conftest import test_settings

TOOLS = (
    Tool("get_weather", "", {"type": "object", "properties": {"city": {"type": "string"}}}),
    Tool("get_time"),
)
ASK = ChatRequest(
    "mock",
    (Message.of_text("user", "call get_weather and get_time"),),
    Sampling(temperature=0.0),
    tools=TOOLS,
    reasoning_effort="low",
)


class Counted(MockProvider):
    """The mock, counting the calls that reach it."""

    calls = 0

    async def complete(self, request: ChatRequest) -> Completion:
        self.calls += 1
        return await super().complete(request)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.calls += 1
        async for event in super().stream(request):
            yield event


def core_over(provider: Counted) -> CompletionService:
    settings = ProviderSettings(name="mock", kind="mock", models=("mock",))
    registry = ProviderRegistry([Deployment(settings, provider, KeyPool((), cooldown=60))], {})
    cache = ResponseCache(MemoryCache(1 << 20), default_ttl=60)
    core = build_core(test_settings(), registry, cache)
    core.open_for_calls()
    return core


async def streamed(core: CompletionService, chat: ChatRequest) -> list[StreamItem]:
    ctx = CallContext("grpc", "req-1")
    items = [item async for item in core.stream_complete(CompletionRequest(chat), ctx)]
    await stored()
    return items


async def completed(core: CompletionService, chat: ChatRequest) -> Answer:
    answer = await core.complete(CompletionRequest(chat), CallContext("grpc", "req-2"))
    await stored()
    return answer


async def stored() -> None:
    """Let the cache's background store land (the memory backend's takes a few loop turns)."""
    for _ in range(5):
        await asyncio.sleep(0)


def events(items: list[StreamItem]) -> list[StreamEvent]:
    return [i for i in items if not isinstance(i, StreamHead | Done)]


def answer_of(items: list[StreamItem]) -> Answer:
    last = items[-1]
    assert isinstance(last, Done)
    return last.answer


async def test_a_streamed_tool_call_answer_is_replayed_event_for_event() -> None:
    provider = Counted(ProviderSettings(name="mock", kind="mock"))
    core = core_over(provider)

    first = await streamed(core, ASK)
    again = await streamed(core, ASK)

    assert provider.calls == 1
    assert events(again) == events(first)
    assert {type(e) for e in events(first)} == {ReasoningDelta, ToolCallDelta}
    replayed, original = answer_of(again), answer_of(first)
    assert replayed.cached
    assert not original.cached
    assert replayed.completion == original.completion
    assert replayed.completion.finish_reason == "tool_calls"
    assert [c.name for c in replayed.completion.tool_calls] == ["get_weather", "get_time"]
    # A unary call for the same request is served the stream's answer.
    unary = await completed(core, ASK)
    assert (unary.cached, unary.completion) == (True, original.completion)


async def test_a_unary_tool_call_answer_is_replayed_whole_and_as_a_stream() -> None:
    provider = Counted(ProviderSettings(name="mock", kind="mock"))
    core = core_over(provider)

    first = await completed(core, ASK)
    again = await completed(core, ASK)
    items = await streamed(core, ASK)

    assert provider.calls == 1
    assert again.cached
    assert again.completion == first.completion
    assert first.completion.tool_calls
    assert first.completion.reasoning_parts
    assert answer_of(items).completion == first.completion
    calls = [e for e in events(items) if isinstance(e, ToolCallDelta)]
    assert [(c.index, c.name) for c in calls] == [(0, "get_weather"), (1, "get_time")]


async def test_another_tool_choice_is_another_answer() -> None:
    provider = Counted(ProviderSettings(name="mock", kind="mock"))
    core = core_over(provider)
    named = replace(ASK, tool_choice=ToolChoice(ToolChoiceMode.TOOL, "get_time"))

    await completed(core, ASK)
    answer = await completed(core, named)

    assert provider.calls == 2
    assert not answer.cached
    assert [c.name for c in answer.completion.tool_calls] == ["get_time"]
