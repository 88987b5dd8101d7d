"""Fetching a caller's https images: allow-listed loopback works, everything the SSRF guard
covers is refused before a byte is sent, and size, type, time and status failures are
INVALID_ARGUMENT naming the image's field."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.errors import DeadlineExceededError, InvalidArgumentError
from gateway.pipeline.image_fetch import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT_SECONDS,
    ImageFetcher,
    ImageFetchPolicy,
)
from gateway.pipeline.image_guard import (
    AddressPolicy,
    GuardedResolver,
    RefusedAddressError,
    is_public,
)
from providers.types import ChatRequest, ImagePart, Message, Part, TextPart
from tests.fakes.image_server import GIF, PNG, ImageServer
from tests.fakes.tls import LoopbackAuthority
from tests.upstream_support import authority_fixture  # noqa: F401

FIELD = "messages[0].parts[1].image.url"


@pytest.fixture
async def server(authority: LoopbackAuthority) -> AsyncIterator[ImageServer]:
    async with ImageServer(authority.server_context(), big_bytes=4096, slow_seconds=1.0) as s:
        yield s


def chat(*urls: str) -> ChatRequest:
    parts: tuple[Part, ...] = (
        TextPart("look"),
        *(ImagePart(url=url, detail="low") for url in urls),
    )
    return ChatRequest("mock", (Message("user", parts),))


def far() -> float:
    return asyncio.get_running_loop().time() + 30


async def inline(
    authority: LoopbackAuthority,
    request: ChatRequest,
    *allow: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    fetch_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> ChatRequest:
    context = ssl.create_default_context(cafile=str(authority.ca_file))
    fetcher = ImageFetcher(
        ImageFetchPolicy(max_bytes, fetch_timeout, AddressPolicy.from_entries(allow)),
        ssl_context=context,
    )
    try:
        return await fetcher.inline(request, far())
    finally:
        await fetcher.aclose()


async def refusal(
    authority: LoopbackAuthority,
    url: str,
    *allow: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    fetch_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> str:
    with pytest.raises(InvalidArgumentError) as caught:
        await inline(authority, chat(url), *allow, max_bytes=max_bytes, fetch_timeout=fetch_timeout)
    return caught.value.message


async def test_an_allow_listed_loopback_image_is_inlined_once_per_url(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    url = server.url("/cat.png")
    request = chat(url, server.url("/cat.gif"), url)

    inlined = await inline(authority, request, "127.0.0.1/32")

    parts = inlined.messages[0].parts
    assert parts[0] == TextPart("look")
    assert parts[1:] == (
        ImagePart(data=PNG, media_type="image/png", detail="low"),
        ImagePart(data=GIF, media_type="image/gif", detail="low"),
        ImagePart(data=PNG, media_type="image/png", detail="low"),
    )
    assert server.hits == {"/cat.png": 1, "/cat.gif": 1}


async def test_a_host_allow_listed_by_name_is_fetched(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    inlined = await inline(authority, chat(server.url("/cat.png", "localhost")), "localhost")

    assert inlined.messages[0].parts[1] == ImagePart(data=PNG, media_type="image/png", detail="low")


async def test_the_same_loopback_server_not_allow_listed_is_refused_unreached(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    message = await refusal(authority, server.url("/cat.png"))

    assert message == (
        f"{FIELD}: cannot fetch the image: refused: a loopback address, "
        "which the gateway does not fetch from"
    )
    assert server.hits == {}


async def test_a_name_that_resolves_to_loopback_is_refused_unreached(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    message = await refusal(authority, server.url("/cat.png", "localhost"))

    assert "refused: the host resolves to a loopback address" in message
    assert server.hits == {}


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("10.1.2.3", "a private"),
        ("192.168.0.1", "a private"),
        ("172.16.5.4", "a private"),
        ("169.254.169.254", "a link-local"),
        ("100.64.0.1", "a non-public"),
        ("0.0.0.0", "an unspecified"),
        ("224.0.0.1", "a multicast"),
        ("[::1]", "a loopback"),
        ("[fd00:ec2::254]", "a private"),
        ("[fe80::1]", "a link-local"),
        ("[::ffff:127.0.0.1]", "a loopback"),
        ("[64:ff9b::a9fe:a9fe]", "a link-local"),
    ],
)
async def test_non_public_addresses_are_refused_before_connecting(
    authority: LoopbackAuthority, host: str, kind: str
) -> None:
    message = await refusal(authority, f"https://{host}/latest/meta-data/x.png")

    assert message == (
        f"{FIELD}: cannot fetch the image: refused: {kind} address, "
        "which the gateway does not fetch from"
    )


async def test_a_redirect_to_an_address_not_allow_listed_is_refused(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    # localhost is allow-listed by name; the redirect goes to 127.0.0.1, which is not.
    target = server.url("/cat.png")
    url = server.url(f"/redirect?to={target}", "localhost")

    message = await refusal(authority, url, "localhost")

    assert "refused: a loopback address" in message
    assert server.hits == {"/redirect": 1}


async def test_a_redirect_to_private_space_or_plain_http_is_refused(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    to_private = server.url("/redirect?to=https://10.0.0.7/x.png")
    to_http = server.url(f"/redirect?to=http://127.0.0.1:{server.port}/cat.png")

    assert "refused: a private address" in await refusal(authority, to_private, "127.0.0.1")
    assert "redirected to a URL that is not https" in await refusal(authority, to_http, "127.0.0.1")


async def test_an_allowed_redirect_is_followed(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    url = server.url(f"/redirect?to={server.url('/cat.gif')}")

    inlined = await inline(authority, chat(url), "127.0.0.0/8")

    assert inlined.messages[0].parts[1] == ImagePart(data=GIF, media_type="image/gif", detail="low")


@pytest.mark.parametrize("path", ["/big.png", "/big.png?chunked=1"])
async def test_an_image_over_the_byte_cap_is_refused(
    authority: LoopbackAuthority, server: ImageServer, path: str
) -> None:
    message = await refusal(authority, server.url(path), "127.0.0.1", max_bytes=1000)

    assert message == f"{FIELD}: cannot fetch the image: it is larger than 1000 bytes"


async def test_an_image_at_the_byte_cap_is_fetched(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    inlined = await inline(
        authority, chat(server.url("/big.png?chunked=1")), "127.0.0.1", max_bytes=4096
    )

    part = inlined.messages[0].parts[1]
    assert isinstance(part, ImagePart)
    assert len(part.data) == 4096


async def test_what_is_not_an_image_of_a_supported_type_is_refused(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    html = await refusal(authority, server.url("/page.html"), "127.0.0.1")
    mislabelled = await refusal(authority, server.url("/fake.png"), "127.0.0.1")

    assert html == (
        f"{FIELD}: cannot fetch the image: its Content-Type is 'text/html', "
        "not one of image/gif, image/jpeg, image/png, image/webp"
    )
    assert mislabelled == f"{FIELD}: cannot fetch the image: its bytes are not a image/png image"


async def test_a_slow_server_times_out(authority: LoopbackAuthority, server: ImageServer) -> None:
    message = await refusal(authority, server.url("/slow.png"), "127.0.0.1", fetch_timeout=0.2)

    assert message == f"{FIELD}: cannot fetch the image: no answer within 0.2s"


async def test_the_callers_deadline_bounds_the_fetch(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    fetcher = ImageFetcher(
        ImageFetchPolicy(addresses=AddressPolicy.from_entries(("127.0.0.1",))),
        ssl_context=ssl.create_default_context(cafile=str(authority.ca_file)),
    )
    deadline = asyncio.get_running_loop().time() + 0.2
    try:
        with pytest.raises(DeadlineExceededError):
            await fetcher.inline(chat(server.url("/slow.png")), deadline)
    finally:
        await fetcher.aclose()


async def test_an_error_status_is_refused(
    authority: LoopbackAuthority, server: ImageServer
) -> None:
    message = await refusal(authority, server.url("/missing.png"), "127.0.0.1")

    assert message == f"{FIELD}: cannot fetch the image: the server answered HTTP 404"


async def test_an_untrusted_certificate_is_refused(server: ImageServer, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    stranger = LoopbackAuthority.create(tmp_path / "other")

    message = await refusal(stranger, server.url("/cat.png"), "127.0.0.1")

    assert message == f"{FIELD}: cannot fetch the image: the TLS handshake failed"


# -- the address policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("100.100.100.200", False),  # Alibaba Cloud metadata, in CGNAT space
        ("fd00:ec2::254", False),
        ("::", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:0a00:0001::1", False),  # 6to4 of 10.0.0.1
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("240.0.0.1", False),
    ],
)
def test_only_public_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_the_allow_list_takes_networks_and_host_names_and_refuses_the_rest() -> None:
    policy = AddressPolicy.from_entries(("10.0.0.0/8", "fd00::/8", "Images.Internal."))

    assert policy.allows(ipaddress.ip_address("10.9.8.7"))
    assert policy.allows(ipaddress.ip_address("fd00:ec2::254"))
    assert not policy.allows(ipaddress.ip_address("192.168.1.1"))
    assert policy.host_allowed("images.internal")
    for bad in ("10.0.0.0/33", "not a host", "300.1.1.1"):
        with pytest.raises(ValueError, match="neither an IP network"):
            AddressPolicy.from_entries((bad,))


class _Answers(AbstractResolver):
    """A resolver that answers every name with fixed addresses (what a rebinding DNS does)."""

    def __init__(self, *addresses: str) -> None:
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self._addresses
        ]

    async def close(self) -> None:
        pass


async def test_the_resolver_hands_on_only_the_allowed_addresses() -> None:
    guarded = GuardedResolver(AddressPolicy(), _Answers("10.0.0.1", "93.184.215.14"))

    found = await guarded.resolve("images.example", 443)

    assert [r["host"] for r in found] == ["93.184.215.14"]


async def test_the_resolver_refuses_a_name_with_only_refused_addresses() -> None:
    guarded = GuardedResolver(AddressPolicy(), _Answers("169.254.169.254"))

    with pytest.raises(RefusedAddressError, match="resolves to a link-local address"):
        await guarded.resolve("metadata.example", 443)
