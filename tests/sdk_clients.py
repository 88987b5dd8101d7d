"""Clients of the official `openai` SDK against an in-process gateway, closed after each test.

`sdk_client` builds one; the autouse fixture `close_sdk_clients` (tests/integration/conftest.py)
closes every client built during the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI

from tests.conftest import RunningGateway

_OPEN: list[AsyncOpenAI] = []


def sdk_client(
    gw: RunningGateway, *, strict: bool = True, key: str = "sk-placeholder", retries: int = 0
) -> AsyncOpenAI:
    """An SDK client of `gw`, validating answers strictly unless told not to."""
    api = AsyncOpenAI(
        base_url=gw.http_url + "/v1",
        api_key=key,
        max_retries=retries,
        _strict_response_validation=strict,
    )
    _OPEN.append(api)
    return api


@pytest.fixture(autouse=True)
async def close_sdk_clients() -> AsyncIterator[None]:
    """Closes the clients `sdk_client` built during the test."""
    yield
    while _OPEN:
        await _OPEN.pop().close()
