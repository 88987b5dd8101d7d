"""The JSON app, served on loopback over a core whose one deployment plays scripted events.

`ScriptedProvider` is a `Provider` that declares every capability and plays the `StreamEvent`s
a test queues, exactly as written: shapes an adapter may produce that no vendor fake is made to
(a Gemini-style signature arriving after its call began, a model that pauses between events
long enough for keep-alives), so the OpenAI-compatible routes' handling of each can be pinned.
It records every `ChatRequest` it is sent. The core, the app and the SSE are the real ones;
the vendor fakes (tests/integration/test_openai_vendors.py) cover the adapters' own events.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from gateway.runtime.assembly import build_core
from gateway.tenancy.admin import AdminCore
from gateway.tenancy.auth import Authenticator
from gateway.transports.http_app import create_app
from gateway.transports.http_guard import HttpRunner
from gateway.transports.openai_http import KEEPALIVE_SECONDS, OpenAIOptions, model_entries
from providers.base import Capabilities, ProviderSettings
from providers.keys import KeyPool
from providers.registry import Deployment, ProviderRegistry
from providers.types import (
    ChatRequest,
    Completion,
    CompletionBuilder,
    Finish,
    Meta,
    StreamEvent,
    TextDelta,
    ToolChoiceMode,
    Usage,
)
from tests.conftest import test_settings

SCRIPTED = "scripted"
#: A one-function tool and a question that calls it twice, for the tool-call tests.
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
USAGE = Usage(prompt_tokens=20, completion_tokens=10, total_tokens=30, reasoning_tokens=4)
EVERYTHING = Capabilities(
    tools=True,
    tool_choices=frozenset(ToolChoiceMode),
    parallel_tool_calls_off=True,
    images=True,
    json_object=True,
    json_schema=True,
    reasoning_efforts=frozenset({"low", "medium", "high"}),
    seed=True,
)


@dataclass
class ScriptedProvider:
    """A deployment that answers with the events queued by `script` (else a short text)."""

    capabilities_of: Capabilities = EVERYTHING
    scripts: deque[list[StreamEvent]] = field(default_factory=deque)
    requests: list[ChatRequest] = field(default_factory=list)
    #: Seconds to wait before each event after the first (a model that pauses).
    pause: float = 0.0

    @property
    def name(self) -> str:
        return SCRIPTED

    @property
    def kind(self) -> str:
        return "mock"

    def script(self, *answers: Sequence[StreamEvent]) -> None:
        """Queue answers: each a sequence of events ending with a `Finish`."""
        self.scripts.extend(list(events) for events in answers)

    def capabilities(self, model: str) -> Capabilities:
        return self.capabilities_of

    async def complete(self, request: ChatRequest) -> Completion:
        builder = CompletionBuilder()
        async for event in self.stream(request):
            builder.feed(event)
        return builder.build()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.requests.append(request)
        events = self.scripts.popleft() if self.scripts else _plain()
        yield Meta(f"scripted-{len(self.requests)}", request.model)
        for number, event in enumerate(events):
            if number and self.pause:
                await asyncio.sleep(self.pause)
            yield event

    async def aclose(self) -> None:
        return None


def _plain() -> list[StreamEvent]:
    return [TextDelta("Hello"), TextDelta(" there"), Finish("stop", USAGE)]


class _Ready:
    ready = True


@asynccontextmanager
async def scripted_gateway(
    provider: ScriptedProvider, *, keepalive: float = KEEPALIVE_SECONDS, **settings: Any
) -> AsyncIterator[str]:
    """Serve the JSON app over `provider` (deployment "scripted", model "model"); yields the
    OpenAI base URL."""
    config = test_settings(**settings)
    deployment_settings = ProviderSettings(name=SCRIPTED, kind="mock", models=("model",))
    deployment = Deployment(deployment_settings, provider, KeyPool((), cooldown=1.0))
    registry = ProviderRegistry([deployment], {})
    authenticator = Authenticator(config.auth_tokens)
    core = build_core(config, registry, None, authenticator=authenticator)
    core.open_for_calls()
    app = create_app(
        core,
        AdminCore(cast(Any, None), authenticator),
        max_request_bytes=config.max_request_bytes,
        readiness=_Ready(),
        openai=OpenAIOptions(
            drop_unsupported_params=config.drop_unsupported_params,
            models=model_entries([deployment_settings], {}),
            keepalive_seconds=keepalive,
        ),
    )
    runner = HttpRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()
