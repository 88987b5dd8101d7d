"""Agents through one running gateway, on every provider against its vendor's fake, over gRPC and
JSON, unary and streamed: a two-turn tool loop (with reasoning on where the vendor signs it),
parallel calls, an image, a JSON-schema answer, and the peer-gateway failures that show at the API.

Each `Row` is one provider; every test runs for each row, each transport and (where it matters)
unary and streamed. One gateway serves all the rows for the whole module, with the cache off so
every request reaches its fake; each test scripts what the model says and reads what the fake
received and refused (the fakes refuse what their vendors refuse, a missing signature included).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
import pytest_asyncio

from gateway.runtime.server import Server
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from providers.base import ProviderSettings
from tests.conftest import test_settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.azure_openai_server import FakeAzureOpenAI
from tests.fakes.base import Answer, FakeUsage, VendorFake
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.script import ToolCall as Call
from tests.integration.agent_client import Client, GrpcClient, Json, JsonClient, RefusedError, Reply

pytestmark = pytest.mark.asyncio(loop_scope="module")


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


# -- one gateway for the module ------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fakes() -> AsyncIterator[dict[str, VendorFake]]:
    async with AsyncExitStack() as stack:
        yield {row.kind: await stack.enter_async_context(row.make_fake()) for row in ROWS}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clients(
    fakes: dict[str, VendorFake], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Client]]:
    place = tmp_path_factory.mktemp("gateway")
    server = Server(
        test_settings(
            providers=tuple(row.settings(fakes[row.kind]) for row in ROWS),
            cache_backend="off",
            database_url=f"sqlite:///{place / 'usage.db'}",
            usage_spill_path=str(place / "usage.spill.jsonl"),
        )
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    http = aiohttp.ClientSession()
    try:
        yield {
            "grpc": GrpcClient(pb_grpc.GatewayServiceStub(channel)),
            "json": JsonClient(http, f"http://127.0.0.1:{server.http_port}"),
        }
    finally:
        await http.close()
        await channel.close()
        await server.stop()


@pytest.fixture(params=ROWS, ids=str)
def row(request: pytest.FixtureRequest) -> Row:
    row: Row = request.param
    return row


@pytest.fixture(params=["grpc", "json"])
def client(request: pytest.FixtureRequest, clients: dict[str, Client]) -> Client:
    return clients[request.param]


@pytest.fixture(params=["unary", "stream"])
def ask(request: pytest.FixtureRequest, client: Client) -> Callable[[Json], Awaitable[Reply]]:
    """The client's unary or streamed call."""
    return client.complete if request.param == "unary" else client.stream


@pytest.fixture
def fake(row: Row, fakes: dict[str, VendorFake]) -> VendorFake:
    """The row's fake with nothing scripted, received or refused yet."""
    served = fakes[row.kind]
    served.answers.clear()
    served.requests.clear()
    served.rejections.clear()
    return served


def asked(row: Row, *messages: Json, **fields: Any) -> Json:
    """A request body for the row's model and deployment (OpenAI and Azure serve the same
    model): these messages after the user's question."""
    question = {"role": "user", "content": "What is the weather in Paris and Rome?"}
    return {"model": row.model, "provider": row.kind, "messages": [question, *messages], **fields}


def sent(fake: VendorFake) -> str:
    """The body of the last request the fake answered, as text."""
    return orjson.dumps(fake.requests[-1].body).decode()


# -- a two-turn tool loop ------------------------------------------------------------------------


async def test_a_two_turn_tool_loop_ends_in_the_final_answer(
    row: Row, fake: VendorFake, ask: Callable[[Json], Awaitable[Reply]]
) -> None:
    thinking = "Both cities, at once." if row.effort else None
    cities = [Call("get_weather", {"city": "Paris"}), Call("get_weather", {"city": "Rome"})]
    fake.script(
        Answer(reasoning=thinking, text="Checking.", tool_calls=cities),
        Answer(reasoning=thinking and "Both answered.", text="Paris 18C, Rome 21C."),
    )
    effort = {"reasoning_effort": row.effort} if row.effort else {}

    first = await ask(asked(row, tools=[WEATHER], **effort))
    assert (first.content, first.finish_reason) == ("Checking.", "tool_calls")
    assert [orjson.loads(c["arguments"]) for c in first.tool_calls] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert {c["name"] for c in first.tool_calls} == {"get_weather"}
    if row.effort:
        assert first.reasoning == "Both cities, at once."
        signatures = [p["signature"] for p in first.reasoning_parts if p.get("signature")]
        assert signatures, "the signed reasoning must come back, to be sent back"

    # Both results answer their calls in the next request (Anthropic wants them in one user
    # turn, Gemini in one Content, each functionResponse named for its call).
    paris, rome = (c["id"] for c in first.tool_calls)
    results = [
        {"role": "tool", "tool_call_id": paris, "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": rome, "content": "21C, cloudy"},
    ]
    second = await ask(asked(row, first.turn(), *results, tools=[WEATHER], **effort))
    assert (second.content, second.finish_reason) == ("Paris 18C, Rome 21C.", "stop")
    assert second.tool_calls == []
    assert [r.message for r in fake.rejections] == []
    assert len(fake.requests) == 2
    assert "18C, sunny" in sent(fake)
    assert "21C, cloudy" in sent(fake)
    if row.effort:  # the vendor got its own signatures back, not a stand-in
        assert all(signature in sent(fake) for signature in signatures)


# -- parallel calls ------------------------------------------------------------------------------


async def test_parallel_calls_come_back_whole_with_distinct_ids(
    row: Row, fake: VendorFake, client: Client
) -> None:
    fake.script(Answer(text="Looking up both.", tool_calls=PARALLEL))

    reply = await client.complete(asked(row, tools=[WEATHER, CLOCK]))

    assert (reply.content, reply.finish_reason) == ("Looking up both.", "tool_calls")
    assert [(c["name"], orjson.loads(c["arguments"])) for c in reply.tool_calls] == EXPECTED_CALLS
    assert reply.tool_calls[2]["arguments"] == "{}"
    ids = [c["id"] for c in reply.tool_calls]
    assert all(ids)
    assert len(set(ids)) == 3


async def test_parallel_calls_stream_with_dense_indexes_after_the_text(
    row: Row, fake: VendorFake, client: Client
) -> None:
    fake.script(Answer(text="Looking up both.", tool_calls=PARALLEL))

    reply = await client.stream(asked(row, tools=[WEATHER, CLOCK]))

    deltas = [(n, d) for n, c in enumerate(reply.chunks) for d in c.get("tool_call_deltas", [])]
    firsts: dict[int, tuple[int, Json]] = {}
    for number, delta in deltas:
        firsts.setdefault(delta.get("index", 0), (number, delta))
    # Indexes dense 0..2 in order of first appearance; id and name in each call's first delta only.
    assert list(firsts) == [0, 1, 2]
    assert all(d.get("id") and d.get("name") for _, d in firsts.values())
    assert sum(1 for _, d in deltas if d.get("id") or d.get("name")) == 3
    # The text came before the first call, as text; the finish and usage come last.
    first_call = deltas[0][0]
    assert "".join(c.get("delta", "") for c in reply.chunks[:first_call]) == "Looking up both."
    assert not any(c.get("delta") for c in reply.chunks[first_call:])
    assert [(c["name"], orjson.loads(c["arguments"])) for c in reply.tool_calls] == EXPECTED_CALLS
    assert reply.tool_calls[2]["arguments"] == "{}"  # a call without arguments: never ""
    assert len({c["id"] for c in reply.tool_calls}) == 3
    assert reply.finish_reason == "tool_calls"
    assert reply.usage.get("total_tokens", 0) > 0
    assert [i for i, c in enumerate(reply.chunks) if c.get("finish_reason")] == [
        len(reply.chunks) - 1
    ]


@pytest.mark.parametrize("row", [GEMINI], ids=str)
async def test_gemini_calls_streamed_in_one_chunk_stay_apart(
    fake: FakeGemini, client: Client
) -> None:
    fake.calls_per_chunk = 3  # Gemini may send parallel calls together, with no index
    fake.script(Answer(tool_calls=PARALLEL))
    try:
        reply = await client.stream(asked(GEMINI, tools=[WEATHER, CLOCK]))
    finally:
        fake.calls_per_chunk = 1

    deltas = [d for c in reply.chunks for d in c.get("tool_call_deltas", [])]
    assert [d.get("index", 0) for d in deltas] == [0, 1, 2]  # one whole call each
    assert [(c["name"], orjson.loads(c["arguments"])) for c in reply.tool_calls] == EXPECTED_CALLS
    assert reply.finish_reason == "tool_calls"


@pytest.mark.parametrize("row", THINKERS, ids=str)
async def test_reasoning_comes_apart_from_the_content_and_is_counted(
    row: Row, fake: VendorFake, ask: Callable[[Json], Awaitable[Reply]]
) -> None:
    assert row.thinker is not None
    model, effort = row.thinker
    usage = FakeUsage(prompt_tokens=30, completion_tokens=20, cached_tokens=0, reasoning_tokens=12)
    fake.script(Answer(reasoning="Weighing the forecast.", text="Sunny.", usage=usage))

    reply = await ask(asked(row, model=model, reasoning_effort=effort))

    assert (reply.content, reply.finish_reason) == ("Sunny.", "stop")
    assert reply.reasoning == ("Weighing the forecast." if row.shows_reasoning else "")
    assert reply.usage.get("reasoning_tokens", 0) == (12 if row.counts_reasoning else 0)
    assert reply.usage["completion_tokens"] == 20


# -- an image ------------------------------------------------------------------------------------


async def test_an_image_reaches_the_vendor_with_the_question(
    row: Row, fake: VendorFake, ask: Callable[[Json], Awaitable[Reply]]
) -> None:
    fake.script(Answer(text="A single dot."))
    parts = [
        {"text": "What is in this picture?"},
        {"image": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    body = {
        "model": row.image_model or row.model,
        "provider": row.kind,
        "messages": [{"role": "user", "parts": parts}],
    }

    reply = await ask(body)

    assert (reply.content, reply.finish_reason) == ("A single dot.", "stop")
    assert PNG in sent(fake)
    assert "What is in this picture?" in sent(fake)


@pytest.mark.parametrize("row", [GEMINI], ids=str)
async def test_an_https_image_the_vendor_cannot_fetch_is_never_dropped(
    fake: VendorFake, client: Client
) -> None:
    # Gemini fetches no URLs: the gateway inlines the image or refuses the request, and an image
    # on a loopback address is not fetched unless allowed.
    url = "https://127.0.0.1:9/cat.png"
    parts = [{"text": "What is in this picture?"}, {"image": {"url": url}}]
    body = {"model": GEMINI.model, "messages": [{"role": "user", "parts": parts}]}

    with pytest.raises(RefusedError) as refused:
        await client.complete(body)

    assert refused.value.code == "INVALID_ARGUMENT"
    assert refused.value.message.startswith("messages[0].parts[1].image")
    assert fake.requests == []


# -- a JSON-schema answer ------------------------------------------------------------------------


async def test_a_json_schema_answer_is_the_content_with_finish_stop(
    row: Row, fake: VendorFake, ask: Callable[[Json], Awaitable[Reply]]
) -> None:
    fake.script(Answer.json({"city": "Paris", "celsius": 18}))

    reply = await ask(asked(row, response_format=WEATHER_FORMAT))

    assert orjson.loads(reply.content) == {"city": "Paris", "celsius": 18}
    assert (reply.finish_reason, reply.tool_calls) == ("stop", [])
    assert "tools" not in fake.requests[-1].body  # asked natively, not as a tool to call
    # The schema went in the vendor's form (Anthropic moves `minimum` into the description),
    # its integers as integers, not Struct's doubles.
    assert "-90" in sent(fake)
    assert "-90.0" not in sent(fake)


async def test_a_json_schema_with_tools_keeps_both_or_is_refused_before_the_vendor(
    row: Row, fake: VendorFake, client: Client
) -> None:
    fake.script(Answer.json({"city": "Paris", "celsius": 18}))
    body = asked(row, tools=[WEATHER], response_format=WEATHER_FORMAT)

    if not row.json_with_tools:
        with pytest.raises(RefusedError) as refused:
            await client.stream(body)
        assert refused.value.code == "INVALID_ARGUMENT"
        assert refused.value.message.startswith(f"response_format: provider '{row.kind}' cannot")
        assert fake.requests == []
        return
    reply = await client.stream(body)
    assert orjson.loads(reply.content) == {"city": "Paris", "celsius": 18}
    assert (reply.finish_reason, reply.tool_calls) == ("stop", [])
    assert "get_weather" in sent(fake)  # the tools went too
    assert "celsius" in sent(fake)


# -- tool choice and parallel calls off ----------------------------------------------------------


@pytest.mark.parametrize(
    ("asking", "setting"),
    [
        ({"tool_choice": {"mode": "TOOL_CHOICE_MODE_NONE"}}, "NONE"),
        ({"tool_choice": {"mode": "TOOL_CHOICE_MODE_REQUIRED"}}, "REQUIRED"),
        ({"tool_choice": {"mode": "TOOL_CHOICE_MODE_TOOL", "name": "get_weather"}}, "TOOL"),
        ({"parallel_tool_calls": False}, "parallel off"),
    ],
    ids=["none", "required", "named", "parallel-off"],
)
async def test_a_tool_setting_is_sent_or_refused_before_the_vendor(
    row: Row, fake: VendorFake, client: Client, asking: Json, setting: str
) -> None:
    honoured = row.parallel_off if setting == "parallel off" else setting in row.choices
    answer = Answer(text="Sunny.") if setting == "NONE" else Answer(tool_calls=PARALLEL[:1])
    fake.script(answer)
    body = asked(row, tools=[WEATHER, CLOCK], **asking)

    if not honoured:
        with pytest.raises(RefusedError) as refused:
            await client.complete(body)
        field = next(iter(asking))
        assert refused.value.code == "INVALID_ARGUMENT"
        assert refused.value.message.startswith(f"{field}: provider '{row.kind}' cannot")
        assert fake.requests == []
        return
    reply = await client.complete(body)
    assert reply.finish_reason == ("stop" if setting == "NONE" else "tool_calls")
    assert [r.message for r in fake.rejections] == []
    assert len(fake.requests) == 1


# -- what the gateway refuses before any vendor is called ----------------------------------------


async def test_a_result_answering_no_call_is_invalid_before_the_vendor(
    row: Row, fake: VendorFake, client: Client
) -> None:
    result = {"role": "tool", "tool_call_id": "call_nobody_made", "content": "18C"}

    with pytest.raises(RefusedError) as refused:
        await client.stream(asked(row, result, tools=[WEATHER]))

    assert refused.value.code == "INVALID_ARGUMENT"
    assert refused.value.message.startswith("messages[1].tool_call_id: 'call_nobody_made'")
    assert fake.requests == []


@pytest.mark.parametrize("row", [OPENAI, AZURE, ANTHROPIC, GEMINI], ids=str)
async def test_a_call_left_unanswered_is_invalid_before_the_vendor(
    row: Row, fake: VendorFake, client: Client
) -> None:
    call = {"id": "call_01", "name": "get_weather", "arguments": '{"city":"Paris"}'}
    turns: list[Json] = [
        {"role": "assistant", "tool_calls": [call]},
        {"role": "user", "content": "Never mind."},
    ]

    with pytest.raises(RefusedError) as refused:
        await client.complete(asked(row, *turns, tools=[WEATHER]))

    assert refused.value.code == "INVALID_ARGUMENT"
    assert refused.value.message.startswith("messages[")
    assert "'call_01'" in refused.value.message
    assert f"provider '{row.kind}'" in refused.value.message
    assert fake.requests == []
