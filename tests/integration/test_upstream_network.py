"""A real gateway process reaching an HTTPS provider through a proxy, trusting a private CA.

The settings a company network needs (`HTTPS_PROXY`, `NO_PROXY`, `UPSTREAM_CA_BUNDLE`) with each
`UPSTREAM_HTTP_CLIENT`, end to end: environment in, a JSON call out, the provider's answer back.
"""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from tests.fakes.raw_http import FakeUpstream, LoopbackProxy, ok
from tests.fakes.tls import LoopbackAuthority
from tests.processes import spawn
from tests.upstream_support import authority_fixture, proxy_fixture, tls_server_fixture  # noqa: F401

ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
)
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


async def call(http_port: int) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{http_port}/v1/complete", data=orjson.dumps(REQUEST)) as reply,
    ):
        body: dict[str, object] = await reply.json()
        return reply.status, body


@pytest.mark.parametrize("client", ["aiohttp", "httptools"])
async def test_an_https_provider_is_reached_through_the_proxy_with_the_ca_bundle(
    authority: LoopbackAuthority, tls_server: FakeUpstream, proxy: LoopbackProxy, client: str
) -> None:
    tls_server.script(ok(ANSWER))
    gateway = await spawn(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=f"https://127.0.0.1:{tls_server.port}/v1",
        HTTPS_PROXY=f"http://gw:pa55@127.0.0.1:{proxy.port}",
        UPSTREAM_CA_BUNDLE=str(authority.ca_file),
        UPSTREAM_HTTP_CLIENT=client,
    )
    try:
        status, body = await call(gateway.http_port)
    finally:
        await gateway.stop()
    assert (status, body["content"]) == (200, "hi")
    assert proxy.seen == [f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1"]
    [seen] = tls_server.requests
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert all("pa55" not in str(entry) for entry in gateway.logs)


async def test_without_the_ca_bundle_the_provider_is_not_trusted(
    tls_server: FakeUpstream, proxy: LoopbackProxy
) -> None:
    gateway = await spawn(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=f"https://127.0.0.1:{tls_server.port}/v1",
        HTTPS_PROXY=proxy.url,
        PRIMARY_RETRIES="0",
    )
    try:
        status, _ = await call(gateway.http_port)
    finally:
        await gateway.stop()
    assert status == 503
    assert tls_server.requests == []


async def test_no_proxy_sends_the_provider_call_directly(
    authority: LoopbackAuthority, tls_server: FakeUpstream, proxy: LoopbackProxy
) -> None:
    tls_server.script(ok(ANSWER))
    gateway = await spawn(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=f"https://127.0.0.1:{tls_server.port}/v1",
        HTTPS_PROXY=proxy.url,
        NO_PROXY="127.0.0.1",
        UPSTREAM_CA_BUNDLE=str(authority.ca_file),
    )
    try:
        status, _ = await call(gateway.http_port)
    finally:
        await gateway.stop()
    assert status == 200
    assert proxy.seen == []
    assert len(tls_server.requests) == 1
