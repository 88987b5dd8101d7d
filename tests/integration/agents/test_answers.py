"""Agents' answers through one running gateway, on every provider against its vendor's fake, over
gRPC and JSON, unary and streamed: a two-turn tool loop (with reasoning on where the vendor signs
it), parallel calls, and reasoning apart from the content (`rows` holds the table).

Each test scripts what the model says and reads what the fake received and refused; the fakes
refuse what their vendors refuse, a missing signature or an unnamed function response included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
import pytest

from tests.fakes.base import Answer, FakeUsage, VendorFake
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.script import ToolCall as Call
from tests.integration.agents.client import Client, Json, Reply
from tests.integration.agents.rows import (
    CLOCK,
    EXPECTED_CALLS,
    GEMINI,
    PARALLEL,
    ROWS,
    THINKERS,
    WEATHER,
    Row,
    asked,
    sent,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


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
    # The text came before the first call, as text (a message that coalesced both holds the
    # text first); the finish and usage come last.
    first_call = deltas[0][0]
    assert "".join(c.get("delta", "") for c in reply.chunks[: first_call + 1]) == "Looking up both."
    assert not any(c.get("delta") for c in reply.chunks[first_call + 1 :])
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


# -- calls cut short, calls without the vendor's ids ---------------------------------------------


async def test_a_call_cut_by_the_token_limit_ends_with_length(
    row: Row, fake: VendorFake, ask: Callable[[Json], Awaitable[Reply]]
) -> None:
    cut = Call("get_weather", '{"city": "Par')
    fake.script(Answer(text="Checking.", tool_calls=[cut], finish="length"))

    reply = await ask(asked(row, tools=[WEATHER], max_tokens=16))

    assert reply.finish_reason == "length"  # never tool_calls, never stop
    assert reply.content == "Checking."


@pytest.mark.parametrize("row", [row for row in ROWS if row.kind in {"gemini", "ollama"}], ids=str)
async def test_calls_without_vendor_ids_get_distinct_ones_that_answer_back(
    row: Row, fake: VendorFake, ask: Callable[[Json], Awaitable[Reply]]
) -> None:
    unnamed = [Call("get_weather", {"city": c}, with_id=False) for c in ("Paris", "Rome")]
    fake.script(Answer(tool_calls=unnamed), Answer(text="Paris 18C, Rome 21C."))

    first = await ask(asked(row, tools=[WEATHER]))
    ids = [c["id"] for c in first.tool_calls]
    assert all(ids)
    assert len(set(ids)) == 2
    results = [
        {"role": "tool", "tool_call_id": ids[0], "content": "18C"},
        {"role": "tool", "tool_call_id": ids[1], "content": "21C"},
    ]
    second = await ask(asked(row, first.turn(), *results, tools=[WEATHER]))

    assert second.content == "Paris 18C, Rome 21C."
    assert [r.message for r in fake.rejections] == []
