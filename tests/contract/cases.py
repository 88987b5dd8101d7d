"""Every adapter with its vendor fake: what the parametrised suites run over.

Adding a provider adds one `AdapterCase` here (besides its module, its fake and its registry
line). Each fake reports the same text and the same usage in its vendor's own terms, so one
expectation fits them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from providers.base import ProviderSettings
from providers.types import Usage
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.azure_openai_server import FakeAzureOpenAI
from tests.fakes.base import FakeUsage, VendorFake
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI

REPLY = "The quick brown fox jumps over the lazy dog."
USAGE = FakeUsage(prompt_tokens=120, completion_tokens=9, cached_tokens=40)


@dataclass(frozen=True)
class AdapterCase:
    """One adapter kind, the fake of its vendor, and a model it serves."""

    kind: str
    make_fake: Callable[..., VendorFake]
    model: str
    #: Whether the vendor reports prompt-cache reads (else cached tokens come back as 0).
    reports_cached: bool = True
    #: Whether the adapter sends images (its own tests cover them); else it refuses them.
    sends_images: bool = False

    def fake(self) -> VendorFake:
        """A fake answering `REPLY` with `USAGE`."""
        return self.make_fake(reply=REPLY, usage=USAGE)

    def settings(self, fake: VendorFake, keys: tuple[str, ...] = ("key-one",)) -> ProviderSettings:
        """A deployment of this kind pointed at `fake`."""
        return ProviderSettings(
            name=self.kind,
            kind=self.kind,
            base_url=fake.base_url,
            api_keys=keys,
            models=(self.model,),
        )

    @property
    def usage(self) -> Usage:
        """What the adapter must report for `USAGE`."""
        cached = USAGE.cached_tokens if self.reports_cached else 0
        return Usage(
            prompt_tokens=USAGE.prompt_tokens,
            completion_tokens=USAGE.completion_tokens,
            total_tokens=USAGE.prompt_tokens + USAGE.completion_tokens,
            cached_tokens=cached,
        )

    def __str__(self) -> str:
        return self.kind


CASES = (
    AdapterCase("openai", FakeOpenAI, "gpt-4o-mini", sends_images=True),
    AdapterCase("azure_openai", FakeAzureOpenAI, "gpt-4o", sends_images=True),
    AdapterCase("anthropic", FakeAnthropic, "claude-sonnet-4-5"),
    AdapterCase("gemini", FakeGemini, "gemini-2.5-flash"),
    AdapterCase("cohere", FakeCohere, "command-r-plus-08-2024", sends_images=True),
    AdapterCase("ollama", FakeOllama, "llama3.2", reports_cached=False),
)
