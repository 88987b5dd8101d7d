"""The provider table of the agent integration tests, the requests they share, and helpers.

Each `Row` is one provider: its vendor's fake, the models its agent tests use and what the vendor
honours (`conftest` parametrises tests over `ROWS`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from providers.base import ProviderSettings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.azure_openai_server import FakeAzureOpenAI
from tests.fakes.base import VendorFake
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.script import ToolCall as Call
from tests.integration.agents.client import Json


@dataclass(frozen=True)
class Row:
    """One provider: its fake, the model its agent tests use, and what that model is asked."""

    kind: str
    make_fake: Callable[[], VendorFake]
    model: str
    #: The model images go to, where the vendor's tool model takes none.
    image_model: str | None = None
    #: `reasoning_effort` for the tool loop: on where the vendor wants its reasoning back.
    effort: str | None = None
    #: A model that reasons and an effort it takes (None: not tested here).
    thinker: tuple[str, str] | None = None
    #: Whether the vendor sends its reasoning text (OpenAI's Chat Completions sends none).
    shows_reasoning: bool = True
    #: Whether the vendor counts reasoning tokens apart.
    counts_reasoning: bool = True
    #: The tool choices the vendor honours beyond "auto", and whether it can turn parallel
    #: calls off: what else there is must be refused before it is called.
    choices: frozenset[str] = frozenset({"NONE", "REQUIRED", "TOOL"})
    parallel_off: bool = True
    #: Whether the model answers in JSON with tools on offer (Cohere refuses the pair).
    json_with_tools: bool = True
    #: Whether a tool result may hold an image (Anthropic's `tool_result` blocks take them).
    tool_result_images: bool = False

    @property
    def models(self) -> tuple[str, ...]:
        """Every model the row's deployment serves."""
        more = (self.image_model, self.thinker[0] if self.thinker else None)
        return tuple(dict.fromkeys(m for m in (self.model, *more) if m is not None))

    def settings(self, fake: VendorFake) -> ProviderSettings:
        """The row's deployment, named for its kind, pointed at `fake`."""
        return ProviderSettings(
            name=self.kind,
            kind=self.kind,
            base_url=fake.base_url,
            api_keys=("k",),
            models=self.models,
        )

    def __str__(self) -> str:
        return self.kind


OPENAI = Row("openai", FakeOpenAI, "gpt-4o", thinker=("o4-mini", "low"), shows_reasoning=False)
AZURE = Row("azure_openai", FakeAzureOpenAI, "gpt-4o")
ANTHROPIC = Row(
    "anthropic",
    FakeAnthropic,
    "claude-sonnet-4-5",
    effort="low",
    thinker=("claude-sonnet-4-5", "low"),
    tool_result_images=True,
)
# Gemini 3 refuses a call turn sent back without its thought signature.
GEMINI = Row(
    "gemini",
    FakeGemini,
    "gemini-3-flash-preview",
    effort="low",
    thinker=("gemini-3-flash-preview", "low"),
    parallel_off=False,
)
ROWS = (
    OPENAI,
    AZURE,
    ANTHROPIC,
    GEMINI,
    # Cohere's vision models take no tools, its tool models no images.
    Row(
        "cohere",
        FakeCohere,
        "command-a-03-2025",
        image_model="command-a-vision-07-2025",
        thinker=("command-a-reasoning-08-2025", "medium"),
        counts_reasoning=False,
        choices=frozenset({"NONE", "REQUIRED"}),
        parallel_off=False,
        json_with_tools=False,
    ),
    Row(
        "ollama",
        FakeOllama,
        "llama3.2",
        thinker=("qwen3", "medium"),
        counts_reasoning=False,
        choices=frozenset({"NONE"}),
        parallel_off=False,
    ),
)
THINKERS = [row for row in ROWS if row.thinker is not None]
WEATHER: Json = {
    "name": "get_weather",
    "description": "Today's weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CLOCK: Json = {
    "name": "get_time",
    "description": "The time now.",
    "parameters": {"type": "object", "properties": {}},
}
WEATHER_FORMAT: Json = {
    "type": "RESPONSE_FORMAT_TYPE_JSON_SCHEMA",
    "name": "weather",
    "schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "celsius": {"type": "integer", "minimum": -90}},
        "required": ["city", "celsius"],
        "additionalProperties": False,
    },
}
#: Two calls of one tool (which must stay apart) and one without arguments.
PARALLEL = [
    Call("get_weather", {"city": "Paris"}),
    Call("get_weather", {"city": "Rome"}),
    Call("get_time"),
]
EXPECTED_CALLS = [
    ("get_weather", {"city": "Paris"}),
    ("get_weather", {"city": "Rome"}),
    ("get_time", {}),
]
#: A 1x1 PNG.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2219bc20000000049454e44ae426082"
    )
).decode()


def asked(row: Row, *messages: Json, **fields: Any) -> Json:
    """A request body for the row's model and deployment (OpenAI and Azure serve the same
    model): these messages after the user's question."""
    question = {"role": "user", "content": "What is the weather in Paris and Rome?"}
    return {"model": row.model, "provider": row.kind, "messages": [question, *messages], **fields}


def sent(fake: VendorFake) -> str:
    """The body of the last request the fake answered, as text."""
    return orjson.dumps(fake.requests[-1].body).decode()
