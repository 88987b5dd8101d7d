"""Reaching providers as a company network needs: proxies, a private CA, large request bodies.

Every `UpstreamClient` implementation, against loopback servers only: a forwarding proxy
(`LoopbackProxy`), TLS servers with a certificate from a private CA made for the test
(`LoopbackAuthority`), and a server that reads a 20 MB body slowly.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from yarl import URL

from gateway.runtime.assembly import upstream_ssl_context
from providers.http.aiohttp_client import AiohttpClient
from providers.http.client import UpstreamClient
from providers.http.httptools_client import HttptoolsClient
from providers.http.proxies import ProxyRoutes, ProxySettings
from tests.fakes.raw_http import HEAD_200, FakeUpstream, LoopbackProxy, ok
from tests.fakes.tls import LoopbackAuthority
from tests.upstream_support import authority_fixture, proxy_fixture, tls_server_fixture  # noqa: F401

BODY = b'{"model":"m","messages":[]}'
CLIENTS = {"aiohttp": AiohttpClient, "httptools": HttptoolsClient}


@pytest.fixture(params=sorted(CLIENTS))
def make_client(request: pytest.FixtureRequest) -> Any:
    """Makes the client under test with the given options (each test closes it)."""
    return CLIENTS[request.param]


@pytest.fixture
async def server() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()


async def fetch_body(client: UpstreamClient, server: FakeUpstream) -> bytes:
    response = await client.fetch(server.url(), BODY, {}, time_limit=5.0)
    return await response.read()


# -- a custom CA bundle -------------------------------------------------------------------------


async def test_a_server_signed_by_the_configured_ca_is_trusted(
    authority: LoopbackAuthority, tls_server: FakeUpstream, make_client: Any
) -> None:
    tls_server.script(ok(b"secure"), ok(b"still secure"))
    client = make_client(ssl_context=upstream_ssl_context(str(authority.ca_file)))
    try:
        assert await fetch_body(client, tls_server) == b"secure"
        assert await fetch_body(client, tls_server) == b"still secure"
    finally:
        await client.close()
    assert tls_server.connections_accepted == 1
    assert tls_server.requests[0].headers["host"] == f"127.0.0.1:{tls_server.port}"


async def test_without_the_ca_bundle_the_server_is_not_trusted(
    tls_server: FakeUpstream, make_client: Any
) -> None:
    client = make_client(ssl_context=upstream_ssl_context(""))
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await fetch_body(client, tls_server)
    finally:
        await client.close()
    assert tls_server.requests == []


# -- proxies ------------------------------------------------------------------------------------


async def test_an_http_call_goes_through_the_http_proxy_with_its_credentials(
    server: FakeUpstream, proxy: LoopbackProxy, make_client: Any
) -> None:
    url = f"http://user:s3cret@127.0.0.1:{proxy.port}"
    client = make_client(proxies=ProxySettings(http=url))
    server.script(ok(b"via the proxy"))
    try:
        assert await fetch_body(client, server) == b"via the proxy"
    finally:
        await client.close()
    assert proxy.seen == [f"POST {server.url()} HTTP/1.1"]
    assert proxy.authorizations == ["Basic " + base64.b64encode(b"user:s3cret").decode()]
    [seen] = server.requests
    assert seen.body == BODY
    assert "proxy-authorization" not in seen.headers


async def test_an_https_call_tunnels_through_the_https_proxy(
    authority: LoopbackAuthority, tls_server: FakeUpstream, proxy: LoopbackProxy, make_client: Any
) -> None:
    client = make_client(
        ssl_context=upstream_ssl_context(str(authority.ca_file)),
        proxies=ProxySettings(https=proxy.url),
    )
    tls_server.script(ok(b"tunnelled"), ok(b"same tunnel"))
    try:
        assert await fetch_body(client, tls_server) == b"tunnelled"
        assert await fetch_body(client, tls_server) == b"same tunnel"
    finally:
        await client.close()
    assert proxy.seen == [f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1"]
    assert len(tls_server.requests) == 2


async def test_a_proxy_refusing_the_tunnel_is_a_refused_connection(
    authority: LoopbackAuthority, tls_server: FakeUpstream, proxy: LoopbackProxy, make_client: Any
) -> None:
    proxy.refuse_with = 407
    url = f"http://user:s3cret@127.0.0.1:{proxy.port}"
    client = make_client(
        ssl_context=upstream_ssl_context(str(authority.ca_file)),
        proxies=ProxySettings(https=url),
    )
    try:
        with pytest.raises(ConnectionRefusedError) as refused:
            await fetch_body(client, tls_server)
    finally:
        await client.close()
    assert "407" in str(refused.value)
    assert "s3cret" not in str(refused.value)
    assert tls_server.requests == []


async def test_no_proxy_hosts_are_reached_directly(
    server: FakeUpstream, proxy: LoopbackProxy, make_client: Any
) -> None:
    settings = ProxySettings(http=proxy.url, no_proxy="example.internal, 127.0.0.1")
    client = make_client(proxies=settings)
    try:
        assert await fetch_body(client, server) == b'{"ok":true}'
    finally:
        await client.close()
    assert proxy.seen == []
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("url", "no_proxy", "proxied"),
    [
        ("https://api.openai.com/v1", "", True),
        ("https://api.openai.com/v1", "*", False),
        ("https://api.openai.com/v1", "openai.com", False),
        ("https://api.openai.com/v1", ".openai.com", False),
        ("https://notopenai.com/v1", "openai.com", True),
        ("https://api.openai.com/v1", "api.openai.com:8443", True),
        ("https://api.openai.com:8443/v1", "api.openai.com:8443", False),
        ("http://10.1.2.3:11434/api", "10.0.0.0/8", False),
        ("http://192.168.1.2/api", "10.0.0.0/8,localhost", True),
        ("http://[::1]:8000/v1", "::1", False),
    ],
)
def test_no_proxy_matches_hosts_domains_ports_and_networks(
    url: str, no_proxy: str, proxied: bool
) -> None:
    routes = ProxyRoutes(
        ProxySettings(http="http://proxy:3128", https="http://proxy:3128", no_proxy=no_proxy)
    )
    assert (routes.for_url(URL(url)) is not None) is proxied


# -- large request bodies -----------------------------------------------------------------------

TWENTY_MB = bytes(range(256)) * (20 * 1024 * 1024 // 256)


def digest_reply(server: FakeUpstream) -> Any:
    """A reply with the SHA-256 of the request body the server read."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = server.requests[-1].body_sha256.encode()
        writer.write(HEAD_200 + b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
        await writer.drain()

    return reply


async def test_a_20_mb_body_reaches_a_slow_reader_whole(
    server: FakeUpstream, make_client: Any
) -> None:
    server.script(digest_reply(server))
    server.read_pause = 0.001  # after each 64 KiB
    client = make_client()
    try:
        response = await client.fetch(server.url(), TWENTY_MB, {}, time_limit=60.0)
        assert response.status == 200
        assert await response.read() == hashlib.sha256(TWENTY_MB).hexdigest().encode()
    finally:
        await client.close()
    [seen] = server.requests
    assert seen.headers["content-length"] == str(len(TWENTY_MB))


async def test_a_20_mb_body_goes_out_as_the_reader_takes_it_never_copied_whole(
    server: FakeUpstream, make_client: Any
) -> None:
    # Back-pressure: the client writes more only once the socket took what it wrote, so while a
    # slow server reads, the client holds no second copy of the body (in its own buffers or the
    # transport's); Python-level allocations during the call stay far below its size.
    server.script(digest_reply(server))
    server.read_pause = 0.002
    server.keep_bodies = False
    client = make_client()
    tracemalloc.start()
    try:
        response = await client.fetch(server.url(), TWENTY_MB, {}, time_limit=60.0)
        _, peak = tracemalloc.get_traced_memory()
        assert response.status == 200
        assert await response.read() == hashlib.sha256(TWENTY_MB).hexdigest().encode()
    finally:
        tracemalloc.stop()
        await client.close()
    assert peak < 4 * 1024 * 1024
