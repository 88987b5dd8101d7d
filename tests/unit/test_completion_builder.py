"""`CompletionBuilder`: stream events folded into the whole answer they make up."""

from __future__ import annotations

from providers.types import (
    Completion,
    CompletionBuilder,
    Finish,
    Meta,
    ReasoningDelta,
    ReasoningPart,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

USAGE = Usage(prompt_tokens=10, completion_tokens=3, total_tokens=13)


def fold(*events: StreamEvent) -> CompletionBuilder:
    built = CompletionBuilder()
    for event in events:
        built.feed(event)
    return built


def test_text_deltas_join_and_finish_sets_reason_and_usage() -> None:
    built = fold(Meta("c-1", "m"), TextDelta("Hel"), TextDelta("lo"), Finish("stop", USAGE))

    assert built.finished
    assert built.build() == Completion("c-1", "m", "Hello", "stop", USAGE)


def test_a_later_meta_overrides_only_what_it_says() -> None:
    built = fold(Meta("c-1", "m"), Meta("", "m-2024"), TextDelta("x"), Meta("c-2", ""))

    assert (built.id, built.model) == ("c-2", "m-2024")


def test_a_stream_without_usage_builds_with_zero_usage_and_says_none_was_reported() -> None:
    built = fold(TextDelta("x"), Finish("stop"))

    assert built.usage is None
    assert built.build().usage == Usage()


def test_an_unfinished_stream_is_not_finished_and_has_no_finish_reason() -> None:
    built = fold(Meta("c-1", "m"), TextDelta("partial"))

    assert not built.finished
    assert built.build().finish_reason == ""


def test_the_content_events_are_kept_in_order_for_a_replay() -> None:
    events = (TextDelta("a"), ToolCallDelta(0, "t1", "f"), ReasoningDelta("r"), TextDelta("b"))

    built = fold(Meta("c", "m"), *events, Finish("stop", USAGE))

    assert built.events == list(events)


def test_tool_call_fragments_join_by_index_in_order_of_index() -> None:
    built = fold(
        ToolCallDelta(1, "call-b", "lookup", '{"q": '),
        ToolCallDelta(0, "call-a", "search"),
        ToolCallDelta(1, arguments='"otters"}'),
        Finish("tool_calls", USAGE),
    )

    assert built.build().tool_calls == (
        ToolCall("call-a", "search", "{}"),
        ToolCall("call-b", "lookup", '{"q": "otters"}'),
    )


def test_reasoning_text_joins_and_a_signature_closes_its_part() -> None:
    built = fold(
        ReasoningDelta("Let me "),
        ReasoningDelta("think."),
        ReasoningDelta(signature="sig-1"),
        ReasoningDelta(redacted="opaque"),
        ReasoningDelta("More."),
        TextDelta("Answer"),
        Finish("stop", USAGE),
    )

    answer = built.build()
    assert answer.reasoning == "Let me think.More."
    assert answer.reasoning_parts == (
        ReasoningPart("Let me think.", signature="sig-1"),
        ReasoningPart(redacted="opaque"),
        ReasoningPart("More."),
    )
    assert answer.content == "Answer"


def test_a_tool_call_id_closes_the_reasoning_part_that_carried_its_signature() -> None:
    built = fold(
        ReasoningDelta("Check the weather."),
        ReasoningDelta(signature="thought-sig", tool_call_id="call-a"),
        ToolCallDelta(0, "call-a", "get_weather", '{"city":"Paris"}'),
        Finish("tool_calls", USAGE),
    )

    assert built.build().reasoning_parts == (
        ReasoningPart("Check the weather.", "thought-sig", "", "call-a"),
    )


def test_reasoning_tokens_come_with_the_usage() -> None:
    usage = Usage(prompt_tokens=5, completion_tokens=40, total_tokens=45, reasoning_tokens=32)

    assert fold(TextDelta("x"), Finish("stop", usage)).build().usage.reasoning_tokens == 32
