"""A try's adapter request: the call's request with the try's model and I/O, else unchanged."""

from __future__ import annotations

from dataclasses import fields, replace

from gateway.pipeline.call import for_try
from providers.types import (
    CallIO,
    ChatRequest,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Sampling,
    Tool,
    ToolChoice,
    ToolChoiceMode,
)

EVERY_FIELD_SET = ChatRequest(
    model="asked-model",
    messages=(Message.of_text("user", "hi"),),
    sampling=Sampling(0.5, 10, 0.9, ("END",), 7),
    io=CallIO(30.0, (("x-request-id", "call"),)),
    tools=(Tool("get_weather"),),
    tool_choice=ToolChoice(ToolChoiceMode.TOOL, "get_weather"),
    parallel_tool_calls=False,
    response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT),
    reasoning_effort="low",
)


def test_the_example_request_sets_every_field_away_from_its_default() -> None:
    # A field added to ChatRequest later fails here until the example (and `for_try`) has it.
    bare = ChatRequest("", ())
    same = [
        f.name
        for f in fields(ChatRequest)
        if getattr(EVERY_FIELD_SET, f.name) == getattr(bare, f.name)
    ]
    assert same == []


def test_a_try_request_carries_every_field_but_the_model_and_io_unchanged() -> None:
    io = CallIO(2.5, (("x-request-id", "try"),))
    made = for_try(EVERY_FIELD_SET, "deployed-model", io)
    assert made == replace(EVERY_FIELD_SET, model="deployed-model", io=io)
