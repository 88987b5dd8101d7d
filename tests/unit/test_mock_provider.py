"""`MockProvider`: deterministic answers, truncation, streaming, and pacing (plain text)."""

from __future__ import annotations

import time

import pytest

from providers.base import ProviderSettings
from providers.errors import UpstreamBadRequestError
from providers.mock import REPLY_PREFIX, MockProvider
from providers.types import (
    CallIO,
    ChatRequest,
    Finish,
    ImagePart,
    Message,
    Meta,
    Sampling,
    StreamEvent,
    TextDelta,
    TextPart,
)


def mock(**options: float) -> MockProvider:
    """A mock deployment with `options` (latency_ms, tokens_per_second)."""
    return MockProvider(ProviderSettings(name="mock", kind="mock", options=options))


def chat(*user_turns: str, max_tokens: int | None = None) -> ChatRequest:
    """A request whose user says each of `user_turns`, with an assistant reply in between."""
    messages: list[Message] = []
    for turn in user_turns:
        if messages:
            messages.append(Message.of_text("assistant", "noted"))
        messages.append(Message.of_text("user", turn))
    return ChatRequest("mock", tuple(messages), Sampling(max_tokens=max_tokens), CallIO())


async def collect(provider: MockProvider, request: ChatRequest) -> list[StreamEvent]:
    """Every event of `provider.stream(request)`."""
    return [event async for event in provider.stream(request)]


async def test_same_request_gets_the_same_answer() -> None:
    request = chat("what is the capital of France?")

    first, second = await mock().complete(request), await mock().complete(request)

    assert first == second


async def test_different_conversations_get_different_ids() -> None:
    provider = mock()

    first = await provider.complete(chat("hello"))
    second = await provider.complete(chat("goodbye"))

    assert first.id != second.id


async def test_content_echoes_the_last_user_message() -> None:
    response = await mock().complete(chat("first question", "tell me about otters"))

    assert response.content == f"{REPLY_PREFIX} tell me about otters"


async def test_max_tokens_truncates_the_answer_with_finish_reason_length() -> None:
    response = await mock().complete(chat("hello there", max_tokens=3))

    assert (response.content, response.finish_reason, response.usage.completion_tokens) == (
        " ".join(REPLY_PREFIX.split()[:3]),
        "length",
        3,
    )


async def test_untruncated_answer_finishes_with_stop() -> None:
    response = await mock().complete(chat("hello"))

    assert response.finish_reason == "stop"


async def test_stream_deltas_join_to_the_complete_content() -> None:
    provider, request = mock(), chat("stream this please")

    events = await collect(provider, request)

    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(texts) == (await provider.complete(request)).content


async def test_stream_ends_with_the_finish_reason_and_usage_of_complete() -> None:
    provider, request = mock(), chat("stream this please", max_tokens=5)

    last = (await collect(provider, request))[-1]
    response = await provider.complete(request)

    assert last == Finish(response.finish_reason, response.usage)


async def test_stream_starts_with_the_id_and_model_of_complete() -> None:
    provider, request = mock(), chat("who are you?")

    first = (await collect(provider, request))[0]
    response = await provider.complete(request)

    assert first == Meta(response.id, response.model)


async def test_a_text_only_deployment_refuses_an_image() -> None:
    image = Message("user", (TextPart("look"), ImagePart(url="https://x.test/a.png")))
    request = ChatRequest("mock", (image,))
    text_only = MockProvider(
        ProviderSettings(name="mock", kind="mock", options={"capabilities": "text"})
    )

    with pytest.raises(UpstreamBadRequestError, match="ImagePart"):
        await text_only.complete(request)
    with pytest.raises(UpstreamBadRequestError, match="ImagePart"):
        await collect(text_only, request)


async def test_latency_delays_the_first_chunk() -> None:
    stream = mock(latency_ms=200).stream(chat("hello"))
    started = time.perf_counter()

    assert isinstance(await anext(stream), Meta)  # said at once
    assert isinstance(await anext(stream), TextDelta)

    assert time.perf_counter() - started >= 0.18
    await stream.aclose()


async def test_token_rate_paces_the_stream() -> None:
    # 10 words at 100 tokens/s: nine 10 ms gaps between them.
    request = chat("hello", max_tokens=10)
    started = time.perf_counter()

    events = await collect(mock(tokens_per_second=100), request)

    elapsed = time.perf_counter() - started
    assert len(events) == 12  # its id and model, ten words, then the finish
    assert elapsed >= 0.08
