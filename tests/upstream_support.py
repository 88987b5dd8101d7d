"""Fixtures of loopback upstreams for tests of reaching providers: a private CA, TLS, a proxy.

Import them into a test module; pytest registers them under the names `authority`,
`tls_server` and `proxy`::

    from tests.upstream_support import authority_fixture, proxy_fixture, tls_server_fixture

(The `*_fixture` names keep a test's parameters from shadowing the imports, as in
`tests/redis_support.py`.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.raw_http import FakeUpstream, LoopbackProxy
from tests.fakes.tls import LoopbackAuthority


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
