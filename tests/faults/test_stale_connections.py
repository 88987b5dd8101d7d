"""A provider closing kept-alive connections as they are reused, against a real gateway process.

The provider here is a raw loopback server that answers a request, keeps the connection, and
closes it (without answering) when the next request arrives on it: what a client sees when a
server's idle timer fires just as the request goes out. The gateway sends that request again on
a new connection; the caller, the attempts and the breaker see one clean try.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fakes.raw_http import FakeUpstream, ok, unanswered
from tests.processes import GatewayProcess, spawn

ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
)
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def provider() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()


@pytest.fixture
async def gateway(provider: FakeUpstream) -> AsyncIterator[GatewayProcess]:
    started = await spawn(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"http://127.0.0.1:{provider.port}/v1"
    )
    yield started
    await started.stop()


async def complete(http: aiohttp.ClientSession, gateway: GatewayProcess) -> dict[str, Any]:
    url = f"http://127.0.0.1:{gateway.http_port}/v1/complete"
    async with http.post(url, data=orjson.dumps(REQUEST)) as reply:
        assert reply.status == 200, await reply.text()
        body: dict[str, Any] = await reply.json()
        return body


async def test_a_pooled_connection_closed_on_reuse_costs_the_caller_nothing(
    provider: FakeUpstream, gateway: GatewayProcess
) -> None:
    provider.script(ok(ANSWER), unanswered(), ok(ANSWER))
    async with aiohttp.ClientSession() as http:
        first = await complete(http, gateway)
        second = await complete(http, gateway)
        status_url = f"http://127.0.0.1:{gateway.http_port}/v1/providers/status?provider=openai"
        async with http.get(status_url) as reply:
            status = await reply.json()
    for answer in (first, second):
        assert answer["content"] == "hello"
        assert [a["outcome"] for a in answer["attempts"]] == ["ATTEMPT_OUTCOME_SUCCESS"]
    [openai] = status["providers"]
    assert openai["circuit_state"] == "CIRCUIT_STATE_CLOSED"
    assert openai.get("consecutive_failures", 0) == 0
    # The request that met the closing connection went again, on a new one.
    assert len(provider.requests) == 3
    assert provider.connections_accepted == 2
