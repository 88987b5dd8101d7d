"""Fixtures shared by the integration tests: the vendors' loopback fakes, SDK client clean-up."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.azure_openai_server import FakeAzureOpenAI
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.sdk_clients import close_sdk_clients  # noqa: F401


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def azure_fake() -> AsyncIterator[FakeAzureOpenAI]:
    async with FakeAzureOpenAI() as server:
        yield server


@pytest.fixture
async def cohere_fake() -> AsyncIterator[FakeCohere]:
    async with FakeCohere() as server:
        yield server


@pytest.fixture
async def gemini_fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as server:
        yield server


@pytest.fixture
async def ollama_fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as server:
        yield server
