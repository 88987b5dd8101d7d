"""The Ollama adapter's streams with thinking and tool calls, against the loopback fake.

Ollama streams each tool call whole, in a `done: false` line of its own (or several in one
line), with no index we could trust; the adapter numbers them 0, 1, ... in order of arrival.
"""

from __future__ import annotations

from dataclasses import replace

from providers.ollama import SPEC, OllamaProvider
from providers.types import (
    ChatRequest,
    Meta,
    ReasoningDelta,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from tests.contract.harness import Vendor, chat, collect, finish, folded
from tests.fakes.ollama_server import Answer, FakeOllama, Fault, ndjson
from tests.fakes.ollama_server import ToolCall as Call

MODEL = "qwen3:8b"
VENDOR = Vendor(FakeOllama, SPEC, name="ollama-local")
WEATHER = Tool("get_weather", "The weather in a city.", {"type": "object"})
CLOCK = Tool("get_time")
ASK: ChatRequest = replace(
    chat(MODEL, ("user", "Weather in Paris and Rome, and the time?")),
    tools=(WEATHER, CLOCK),
    reasoning_effort="medium",
)
PARALLEL = Answer(
    reasoning="Two cities.",
    text="Looking up. ",
    tool_calls=[
        Call("get_weather", {"city": "Paris"}, id="call_paris01"),
        Call("get_weather", {"city": "Rome"}, with_id=False),
        Call("get_time", with_id=False),
    ],
)


async def test_thinking_text_then_each_whole_call_as_one_delta_numbered_in_order(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(PARALLEL)
    events = await collect(provider, ASK)
    content = [e for e in events if not isinstance(e, Meta)][:-1]
    reasoning = [e for e in content if isinstance(e, ReasoningDelta)]
    text = [e for e in content if isinstance(e, TextDelta)]
    calls = [e for e in content if isinstance(e, ToolCallDelta)]
    assert content == reasoning + text + calls  # in that order, nothing else
    assert "".join(e.text for e in reasoning) == "Two cities."
    assert "".join(e.text for e in text) == "Looking up. "
    assert [c.index for c in calls] == [0, 1, 2]
    assert calls[0] == ToolCallDelta(0, "call_paris01", "get_weather", '{"city":"Paris"}')
    assert (calls[1].name, calls[1].arguments) == ("get_weather", '{"city":"Rome"}')
    assert (calls[2].name, calls[2].arguments) == ("get_time", "{}")  # never ""
    assert calls[1].id.startswith("call_")
    assert len({c.id for c in calls}) == 3


async def test_a_stream_with_calls_finishes_tool_calls_with_usage_last(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(PARALLEL)
    events = await collect(provider, ASK)
    assert finish(events).reason == "tool_calls"
    assert finish(events).usage == Usage(12, 5, 17)


async def test_a_stream_folds_into_the_same_answer_as_complete(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(PARALLEL, PARALLEL)
    whole = await provider.complete(ASK)
    streamed = folded(await collect(provider, ASK))
    assert (streamed.content, streamed.finish_reason) == (whole.content, whole.finish_reason)
    assert (streamed.reasoning, streamed.reasoning_parts) == (
        whole.reasoning,
        whole.reasoning_parts,
    )
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in whole.tool_calls
    ]
    assert (
        streamed.tool_calls[0]
        == whole.tool_calls[0]
        == ToolCall("call_paris01", "get_weather", '{"city":"Paris"}')
    )


async def test_a_stream_cut_by_the_token_limit_mid_call_finishes_length_without_the_call(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    fake.script(
        Answer(text="Checking", tool_calls=[Call("get_weather", '{"city": "Pa')], finish="length")
    )
    events = await collect(provider, ASK)
    assert not [e for e in events if isinstance(e, ToolCallDelta)]
    assert finish(events).reason == "length"


def line(**message: object) -> bytes:
    return ndjson({"model": MODEL, "message": {"role": "assistant", **message}, "done": False})


def call(name: str, index: int, **arguments: object) -> dict[str, object]:
    """A call as Ollama writes it: its own `index` (which the adapter does not trust), no id."""
    return {"function": {"index": index, "name": name, "arguments": arguments}}


async def test_calls_sharing_a_line_or_on_the_done_line_are_numbered_densely(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    done = {
        "model": MODEL,
        "message": {"role": "assistant", "content": "", "tool_calls": [call("get_time", 0)]},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 9,
        "eval_count": 4,
    }
    body = (
        line(content="Both: ")
        + line(
            content="",
            tool_calls=[call("get_weather", 0, city="Paris"), call("get_weather", 0, city="Rome")],
        )
        + ndjson(done)
    )
    fake.fail_next(Fault(raw_body=body))
    events = await collect(provider, ASK)
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(c.index, c.name, c.arguments) for c in calls] == [
        (0, "get_weather", '{"city":"Paris"}'),
        (1, "get_weather", '{"city":"Rome"}'),
        (2, "get_time", "{}"),
    ]
    assert len({c.id for c in calls}) == 3
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Both: "]
    assert finish(events).reason == "tool_calls"
    assert finish(events).usage == Usage(9, 4, 13)


async def test_a_plain_stream_still_finishes_stop(
    provider: OllamaProvider, fake: FakeOllama
) -> None:
    events = await collect(provider, ASK)
    assert not [e for e in events if isinstance(e, ToolCallDelta | ReasoningDelta)]
    assert finish(events).reason == "stop"
