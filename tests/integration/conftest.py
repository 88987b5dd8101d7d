"""Fixtures shared by the integration tests: the vendors' loopback fakes, SDK client clean-up."""

from __future__ import annotations

from tests.fakes.azure_openai_server import FakeAzureOpenAI
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.sdk_clients import close_sdk_clients  # noqa: F401
from tests.upstream_support import vendor_fake_fixture

openai_fake = vendor_fake_fixture(FakeOpenAI)
azure_fake = vendor_fake_fixture(FakeAzureOpenAI)
cohere_fake = vendor_fake_fixture(FakeCohere)
gemini_fake = vendor_fake_fixture(FakeGemini)
ollama_fake = vendor_fake_fixture(FakeOllama)
