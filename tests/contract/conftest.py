"""Fixtures every contract test shares: the client session, and a vendor's fake and adapter.

`fake` and `provider` serve the vendor a test module declares as `VENDOR` (a
`tests.contract.harness.Vendor`); the parametrised suite, `test_adapters.py`, brings its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from providers.base import Provider
from providers.http.aiohttp_client import AiohttpClient
from providers.http.client import UpstreamClient
from providers.http.httptools_client import HttptoolsClient
from tests.contract.harness import Vendor
from tests.fakes.base import VendorFake


@pytest.fixture(params=["aiohttp", "httptools"])
async def session(request: pytest.FixtureRequest) -> AsyncIterator[UpstreamClient]:
    """The HTTP client adapters share (each implementation in turn); the test closes it, as
    the gateway would."""
    client: UpstreamClient = AiohttpClient() if request.param == "aiohttp" else HttptoolsClient()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[VendorFake]:
    """The vendor's loopback fake, serving for the length of the test."""
    async with _declared(request).fake() as server:
        yield server


@pytest.fixture
def provider(request: pytest.FixtureRequest, fake: VendorFake, session: UpstreamClient) -> Provider:
    """The vendor's deployment pointed at `fake` (its base URL given with a trailing slash)."""
    return _declared(request).adapter(session, fake.base_url + "/")


def _declared(request: pytest.FixtureRequest) -> Vendor:
    """The vendor the requesting test module tests: its `VENDOR`."""
    vendor: Vendor = request.module.VENDOR
    return vendor
