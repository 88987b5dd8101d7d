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
