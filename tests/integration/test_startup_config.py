"""The real program started as a user would: what it enables, says at start, and charges.

`OPENAI_BASE_URL` at a loopback fake is a team's own OpenAI-compatible server: the mock is off
next to it, and its calls cost 0 (no configured price) instead of OpenAI's list price.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fakes.openai_server import FakeOpenAI, FakeUsage
from tests.processes import GatewayProcess, spawn

USAGE = FakeUsage(prompt_tokens=1_000, completion_tokens=500, cached_tokens=0)


def body(model: str) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}]})


def logged(gateway: GatewayProcess, message: str) -> list[dict[str, Any]]:
    return [entry for entry in gateway.logs if entry.get("msg") == message]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(usage=USAGE) as server:
        yield server


async def test_an_openai_compatible_server_of_ones_own_is_free_and_the_mock_is_off(
    fake: FakeOpenAI,
) -> None:
    gateway = await spawn(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=fake.base_url, OPENAI_MODELS="gpt-4o-mini"
    )
    try:
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/v1/complete", data=body("gpt-4o-mini")) as reply:
                answer = await reply.json()
            async with http.post(f"{base}/v1/complete", data=body("mock")) as reply:
                mock_status = reply.status
            async with http.get(f"{base}/v1/providers/status?provider=openai") as reply:
                (status,) = (await reply.json())["providers"]
    finally:
        assert await gateway.stop() == 0

    assert (answer["usage"]["prompt_tokens"], answer["cost_usd"]) == (1_000, 0.0)
    assert mock_status == 404
    assert status["price_source"] == "none"
    assert [(p["model"], p["source"]) for p in status["prices"]] == [("gpt-4o-mini", "none")]
    (enabled,) = logged(gateway, "providers enabled")
    assert enabled["providers"] == ["openai (openai)"]
    assert enabled["mock"].startswith("off")
    unpriced = [e for e in gateway.logs if e.get("msg", "").startswith("no price for these models")]
    assert [(e["provider"], e["models"]) for e in unpriced] == [("openai", ["gpt-4o-mini"])]


async def test_with_no_provider_configured_the_mock_serves() -> None:
    gateway = await spawn()
    try:
        url = f"http://127.0.0.1:{gateway.http_port}/v1/complete"
        async with aiohttp.ClientSession() as http, http.post(url, data=body("mock")) as reply:
            status = reply.status
    finally:
        assert await gateway.stop() == 0

    assert status == 200
    (enabled,) = logged(gateway, "providers enabled")
    assert (enabled["providers"], enabled["mock"]) == (
        ["mock (mock)"],
        "on: no real provider is configured",
    )
