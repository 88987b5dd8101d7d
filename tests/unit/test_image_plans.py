"""The core fetches https images for the deployments that take images only as bytes: once per
call, only when a deployment of the plan needs it; a fetch that fails refuses the call when the
primary needs the bytes, and skips only the fallbacks that do otherwise."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from gateway.config.settings import UpstreamSettings
from gateway.errors import InvalidArgumentError, ProviderError
from gateway.pipeline.call import CallContext
from gateway.pipeline.image_fetch import ImageFetchPolicy
from gateway.pipeline.image_guard import AddressPolicy
from gateway.pipeline.service import CompletionService
from gateway.pipeline.types import AttemptOutcome, CompletionRequest, Routing
from gateway.runtime.assembly import build_core
from gateway.store.records import RequestRecord
from providers.base import Capabilities, ProviderSettings
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
from tests.fakes.image_server import PNG, ImageServer
from tests.fakes.tls import LoopbackAuthority
from tests.upstream_support import authority_fixture  # noqa: F401

BYTES_ONLY = Capabilities(images=True)
FETCHES_URLS = Capabilities(images=True, image_urls=True)


class Seeing:
    """A deployment that records the requests it gets and answers "seen" (or fails)."""

    kind = "scripted"

    def __init__(self, name: str, capabilities: Capabilities, *, fails: bool = False) -> None:
        self.name = name
        self._capabilities = capabilities
        self._fails = fails
        self.requests: list[ChatRequest] = []

    def capabilities(self, model: str) -> Capabilities:
        return self._capabilities

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        if self._fails:
            raise UpstreamUnavailableError(f"provider {self.name!r} failed", provider=self.name)
        return Completion("c-1", request.model, "seen", "stop", Usage(5, 1, 6))

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.requests.append(request)
        yield TextDelta("seen")
        yield Finish("stop", Usage(5, 1, 6))

    async def aclose(self) -> None:
        pass

    def images(self) -> list[ImagePart]:
        return [p for r in self.requests for p in r.messages[0].parts if type(p) is ImagePart]


@pytest.fixture
async def server(authority: LoopbackAuthority) -> AsyncIterator[ImageServer]:
    async with ImageServer(authority.server_context()) as running:
        yield running


def core_over(
    authority: LoopbackAuthority, *providers: Seeing, allow: tuple[str, ...] = ("127.0.0.1",)
) -> tuple[CompletionService, list[RequestRecord]]:
    deployments = [
        Deployment(
            ProviderSettings(name=p.name, kind="mock", models=(f"{p.name}-model",)),
            p,
            KeyPool((), cooldown=60),
        )
        for p in providers
    ]
    settings = test_settings(
        primary_retries=0,
        fallback_retries=0,
        image_fetch=ImageFetchPolicy(addresses=AddressPolicy.from_entries(allow)),
        upstream=UpstreamSettings(ca_bundle=str(authority.ca_file)),
    )
    rows: list[RequestRecord] = []
    core = build_core(settings, ProviderRegistry(deployments, {}), None, usage=rows.append)
    core.open_for_calls()
    return core, rows


def look(url: str, model: str, *fallbacks: str) -> CompletionRequest:
    message = Message("user", (TextPart("What is this?"), ImagePart(url=url), ImagePart(url=url)))
    return CompletionRequest(ChatRequest(model, (message,)), Routing(fallback_models=fallbacks))


async def test_a_deployment_taking_bytes_gets_the_fetched_image_and_one_fetching_the_url(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    fetching = Seeing("fetching", FETCHES_URLS, fails=True)
    bytes_only = Seeing("bytes", BYTES_ONLY)
    core, _ = core_over(authority, fetching, bytes_only)
    url = server.url("/cat.png")

    answer = await core.complete(
        look(url, "fetching-model", "bytes-model"), CallContext("grpc", "r-1")
    )

    assert answer.provider == "bytes"
    assert fetching.images() == [ImagePart(url=url), ImagePart(url=url)]
    assert bytes_only.images() == [ImagePart(data=PNG, media_type="image/png")] * 2
    assert server.hits == {"/cat.png": 1}
    await core.aclose(wait=1)


async def test_a_stream_to_a_deployment_taking_bytes_gets_the_fetched_image(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    bytes_only = Seeing("bytes", BYTES_ONLY)
    core, _ = core_over(authority, bytes_only)

    request = look(server.url("/cat.png"), "bytes-model")
    items = [i async for i in core.stream_complete(request, CallContext("grpc", "r-1"))]

    assert items
    assert bytes_only.images() == [ImagePart(data=PNG, media_type="image/png")] * 2
    await core.aclose(wait=1)


async def test_nothing_is_fetched_when_every_deployment_fetches_urls_itself(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    fetching = Seeing("fetching", FETCHES_URLS)
    core, _ = core_over(authority, fetching)

    await core.complete(look(server.url("/cat.png"), "fetching-model"), CallContext("grpc", "r"))

    assert server.hits == {}
    await core.aclose(wait=1)


async def test_a_refused_fetch_for_the_primary_is_invalid_before_any_upstream_call(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    bytes_only = Seeing("bytes", BYTES_ONLY)
    core, _ = core_over(authority, bytes_only, allow=())

    with pytest.raises(InvalidArgumentError) as caught:
        await core.complete(look(server.url("/cat.png"), "bytes-model"), CallContext("grpc", "r"))

    assert caught.value.message.startswith(
        "messages[0].parts[1].image.url: cannot fetch the image: refused: a loopback address"
    )
    assert bytes_only.requests == []
    await core.aclose(wait=1)


async def test_a_refused_fetch_only_a_fallback_needs_skips_that_fallback(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    fetching = Seeing("fetching", FETCHES_URLS, fails=True)
    bytes_only = Seeing("bytes", BYTES_ONLY)
    core, rows = core_over(authority, fetching, bytes_only, allow=())

    with pytest.raises(ProviderError) as caught:
        await core.complete(
            look(server.url("/cat.png"), "fetching-model", "bytes-model"),
            CallContext("grpc", "r"),
        )

    assert caught.value.code_name == "UNAVAILABLE"
    assert (len(fetching.requests), bytes_only.requests) == (1, [])
    assert [a.outcome for a in rows[0].attempts] == [
        AttemptOutcome.ERROR.name,
        AttemptOutcome.UNSUPPORTED.name,
    ]
    await core.aclose(wait=1)
