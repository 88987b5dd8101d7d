"""A call uses only deployments that can serve it: the primary refuses before any upstream call,
a fallback that cannot is skipped (and recorded so)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from gateway.errors import InvalidArgumentError, ProviderError
from gateway.pipeline.call import CallContext
from gateway.pipeline.service import CompletionService
from gateway.pipeline.types import AttemptOutcome, CompletionRequest, Done, Routing
from gateway.runtime.assembly import build_core
from gateway.store.records import RequestRecord
from providers.base import TEXT_ONLY, Capabilities, ProviderSettings
from providers.errors import UpstreamUnavailableError
from providers.keys import KeyPool
from providers.registry import Deployment, ProviderRegistry
from providers.types import (
    ChatRequest,
    Completion,
    Finish,
    ImagePart,
    Message,
    StreamEvent,
    TextDelta,
    TextPart,
    Usage,
)
from tests.conftest import test_settings

VISION = Capabilities(images=True)
LOOK = (
    Message(
        "user", (TextPart("What is this?"), ImagePart(url="data:image/png;base64,iVBORw0KGgo="))
    ),
)


class Deployed:
    """A deployment that answers "seen" (or fails every call), with the capabilities given."""

    kind = "scripted"

    def __init__(self, name: str, capabilities: Capabilities, *, fails: bool = False) -> None:
        self.name = name
        self._capabilities = capabilities
        self._fails = fails
        self.calls = 0

    def capabilities(self, model: str) -> Capabilities:
        return self._capabilities

    async def complete(self, request: ChatRequest) -> Completion:
        self.calls += 1
        if self._fails:
            raise UpstreamUnavailableError(f"provider {self.name!r} failed", provider=self.name)
        return Completion("c-1", request.model, "seen", "stop", Usage(5, 1, 6))

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.calls += 1
        if self._fails:
            raise UpstreamUnavailableError(f"provider {self.name!r} failed", provider=self.name)
        yield TextDelta("seen")
        yield Finish("stop", Usage(5, 1, 6))

    async def aclose(self) -> None:
        pass


def core_over(*providers: Deployed, rows: list[RequestRecord]) -> CompletionService:
    deployments = [
        Deployment(
            ProviderSettings(name=p.name, kind="mock", models=(f"{p.name}-model",)),
            p,
            KeyPool((), cooldown=60),
        )
        for p in providers
    ]
    settings = test_settings(primary_retries=0, fallback_retries=0)
    core = build_core(settings, ProviderRegistry(deployments, {}), None, usage=rows.append)
    core.open_for_calls()
    return core


def look(model: str, *fallbacks: str) -> CompletionRequest:
    return CompletionRequest(ChatRequest(model, LOOK), Routing(fallback_models=fallbacks))


async def test_a_primary_that_cannot_take_images_is_refused_before_any_upstream_call() -> None:
    text = Deployed("text", TEXT_ONLY)
    core = core_over(text, rows=[])

    with pytest.raises(InvalidArgumentError) as caught:
        await core.complete(look("text-model"), CallContext("grpc", "req-1"))

    assert caught.value.message == "messages[0].parts[1].image: provider 'text' cannot take images"
    assert text.calls == 0


async def test_a_stream_to_a_primary_that_cannot_take_images_is_refused_before_any_call() -> None:
    text = Deployed("text", TEXT_ONLY)
    core = core_over(text, rows=[])

    with pytest.raises(InvalidArgumentError) as caught:
        async for _ in core.stream_complete(look("text-model"), CallContext("grpc", "req-1")):
            pass

    assert caught.value.message.startswith("messages[0].parts[1].image: provider 'text'")
    assert text.calls == 0


async def test_a_fallback_that_cannot_take_images_is_skipped_and_recorded() -> None:
    vision, text, backup = (
        Deployed("vision", VISION, fails=True),
        Deployed("text", TEXT_ONLY),
        Deployed("backup", VISION),
    )
    rows: list[RequestRecord] = []
    core = core_over(vision, text, backup, rows=rows)

    answer = await core.complete(
        look("vision-model", "text-model", "backup-model"), CallContext("grpc", "req-1")
    )

    assert (answer.provider, answer.completion.content) == ("backup", "seen")
    assert [(a.provider, a.outcome) for a in answer.attempts] == [
        ("vision", AttemptOutcome.ERROR),
        ("text", AttemptOutcome.UNSUPPORTED),
        ("backup", AttemptOutcome.SUCCESS),
    ]
    assert (vision.calls, text.calls, backup.calls) == (1, 0, 1)
    (row,) = rows
    assert [a.outcome for a in row.attempts] == ["ERROR", "UNSUPPORTED", "SUCCESS"]


async def test_a_stream_skips_a_fallback_that_cannot_take_images() -> None:
    vision, text, backup = (
        Deployed("vision", VISION, fails=True),
        Deployed("text", TEXT_ONLY),
        Deployed("backup", VISION),
    )
    core = core_over(vision, text, backup, rows=[])

    items = [
        item
        async for item in core.stream_complete(
            look("vision-model", "text-model", "backup-model"), CallContext("grpc", "req-1")
        )
    ]

    done = items[-1]
    assert isinstance(done, Done)
    assert [a.outcome for a in done.answer.attempts] == [
        AttemptOutcome.ERROR,
        AttemptOutcome.UNSUPPORTED,
        AttemptOutcome.SUCCESS,
    ]
    assert text.calls == 0


async def test_when_no_fallback_can_serve_the_primarys_failure_is_the_answer() -> None:
    vision, text = Deployed("vision", VISION, fails=True), Deployed("text", TEXT_ONLY)
    rows: list[RequestRecord] = []
    core = core_over(vision, text, rows=rows)

    with pytest.raises(ProviderError) as caught:
        await core.complete(look("vision-model", "text-model"), CallContext("grpc", "req-1"))

    assert caught.value.code_name == "UNAVAILABLE"
    assert text.calls == 0
    assert [a.outcome for a in rows[0].attempts] == ["ERROR", "UNSUPPORTED"]
