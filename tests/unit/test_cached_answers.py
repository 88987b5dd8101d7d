"""`CachedAnswer`: the whole completion and the stream's events, stored and replayed intact."""

from __future__ import annotations

from cache.answers import CachedAnswer
from providers.types import (
    Completion,
    CompletionBuilder,
    Finish,
    ReasoningDelta,
    ReasoningPart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

USAGE = Usage(12, 5, 17, cached_tokens=4, cache_creation_tokens=2)
EVENTS = (
    ReasoningDelta("Thinking."),
    ReasoningDelta(signature="sig"),
    TextDelta("Hello "),
    TextDelta("there."),
    ToolCallDelta(0, "call-1", "lookup", '{"q": '),
    ToolCallDelta(0, arguments='"otters"}'),
)


def streamed() -> CachedAnswer:
    built = CompletionBuilder("c-1", "gpt-4o")
    for event in (*EVENTS, Finish("stop", USAGE)):
        built.feed(event)
    return CachedAnswer(built.build(), "openai", 0.0042, EVENTS)


def test_a_stored_stream_reads_back_equal_with_every_event_and_field() -> None:
    answer = streamed()

    assert CachedAnswer.decode(answer.encode()) == answer


def test_a_replayed_stream_folds_into_the_stored_completion() -> None:
    answer = CachedAnswer.decode(streamed().encode())
    built = CompletionBuilder(answer.completion.id, answer.completion.model)
    for event in (*answer.replay(), Finish("stop", answer.completion.usage)):
        built.feed(event)

    assert built.build() == answer.completion
    assert answer.completion.tool_calls == (ToolCall("call-1", "lookup", '{"q": "otters"}'),)
    assert answer.completion.reasoning_parts == (ReasoningPart("Thinking.", signature="sig"),)


def test_a_unary_answer_is_replayed_word_by_word() -> None:
    completion = Completion("c-2", "m", "One two  three", "stop", USAGE)
    answer = CachedAnswer.decode(CachedAnswer(completion, "mock", 0.0).encode())

    assert answer.events is None
    assert answer.replay() == (TextDelta("One "), TextDelta("two  "), TextDelta("three"))
    assert answer.completion == completion


def test_a_unary_tool_call_answer_replays_as_a_stream_that_folds_into_it() -> None:
    completion = Completion(
        "c-3",
        "m",
        "Let me look.",
        "tool_calls",
        Usage(10, 8, 18, reasoning_tokens=3),
        tool_calls=(ToolCall("call-1", "lookup", '{"q": 1}'), ToolCall("call-2", "lookup")),
        reasoning="Think. More.",
        reasoning_parts=(
            ReasoningPart(redacted="opaque"),
            ReasoningPart("Think. More.", signature="sig", tool_call_id="call-1"),
        ),
    )
    answer = CachedAnswer.decode(CachedAnswer(completion, "mock", 0.0).encode())
    built = CompletionBuilder(completion.id, completion.model)
    for event in (*answer.replay(), Finish("tool_calls", completion.usage)):
        built.feed(event)

    assert built.build() == completion
    assert [e.index for e in answer.replay() if isinstance(e, ToolCallDelta)] == [0, 1]


def test_reasoning_text_without_parts_replays_as_text() -> None:
    completion = Completion("c-4", "m", "Hi", "stop", USAGE, reasoning="Because.")
    built = CompletionBuilder(completion.id, completion.model)
    replayed = CachedAnswer(completion, "mock", 0.0).replay()
    for event in (*replayed, Finish("stop", USAGE)):
        built.feed(event)

    assert replayed[0] == ReasoningDelta("Because.")
    assert built.build().reasoning == "Because."
