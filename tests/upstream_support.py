"""Fixtures of loopback upstreams: a vendor's fake, and for tests of reaching providers a
private CA, TLS and a proxy.

`vendor_fake_fixture(FakeOpenAI)` makes a fixture serving a fresh fake for each test; assign it
to the fixture's name in a test module or conftest (`openai_fake = vendor_fake_fixture(...)`).

Import the others into a test module; pytest registers them under the names `authority`,
`tls_server` and `proxy`::

    from tests.upstream_support import authority_fixture, proxy_fixture, tls_server_fixture

(The `*_fixture` names keep a test's parameters from shadowing the imports, as in
`tests/redis_support.py`.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.fakes.base import VendorFake
from tests.fakes.raw_http import FakeUpstream, LoopbackProxy
from tests.fakes.tls import LoopbackAuthority

FakeT = TypeVar("FakeT", bound=VendorFake)


def vendor_fake_fixture(kind: type[FakeT]) -> Callable[[], AsyncIterator[FakeT]]:
    """A fixture serving a fresh `kind` fake on loopback for the test."""

    async def serve() -> AsyncIterator[FakeT]:
        async with kind() as server:
            yield server

    return pytest.fixture(serve)


@pytest.fixture(name="authority")
def authority_fixture(tmp_path: Path) -> LoopbackAuthority:
    """A private CA made for the test."""
    return LoopbackAuthority.create(tmp_path)


@pytest.fixture(name="tls_server")
async def tls_server_fixture(authority: LoopbackAuthority) -> AsyncIterator[FakeUpstream]:
    """A loopback HTTPS server whose certificate `authority` signed."""
    upstream = FakeUpstream()
    await upstream.start(authority.server_context())
    yield upstream
    await upstream.stop()


@pytest.fixture(name="proxy")
async def proxy_fixture() -> AsyncIterator[LoopbackProxy]:
    """A loopback forwarding proxy."""
    loopback = LoopbackProxy()
    await loopback.start()
    yield loopback
    await loopback.stop()
