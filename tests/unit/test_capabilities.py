"""`check_capabilities`: the first thing a request uses that a deployment cannot honour, named."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from providers.base import TEXT_ONLY, Capabilities, check_capabilities
from providers.types import (
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Sampling,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)

HI = (Message.of_text("user", "hi"),)
DATA_IMAGE = ImagePart(url="data:image/png;base64,iVBORw0KGgo=")
URL_IMAGE = ImagePart(url="https://example.com/cat.png")
TOOL = Tool("get_weather")
EVERYTHING = Capabilities(
    tools=True,
    tool_choices=frozenset(ToolChoiceMode),
    parallel_tool_calls_off=True,
    images=True,
    image_urls=True,
    tool_result_images=True,
    json_object=True,
    json_schema=True,
    reasoning_efforts=frozenset({"none", "low", "medium", "high"}),
    seed=True,
)


def chat(**fields: Any) -> ChatRequest:
    return replace(ChatRequest("m", HI), **fields)


def problem(request: ChatRequest, capabilities: Capabilities = TEXT_ONLY) -> str | None:
    return check_capabilities(request, capabilities, "local")


def test_plain_text_needs_nothing() -> None:
    assert problem(chat()) is None


def test_a_deployment_that_can_do_everything_takes_everything() -> None:
    request = chat(
        messages=(
            Message("user", (TextPart("look"), DATA_IMAGE, URL_IMAGE)),
            Message("assistant", tool_calls=(ToolCall("c1", "get_weather"),)),
            Message("tool", (TextPart("sunny"), DATA_IMAGE), tool_call_id="c1"),
        ),
        tools=(TOOL,),
        tool_choice=ToolChoice(ToolChoiceMode.TOOL, "get_weather"),
        parallel_tool_calls=False,
        response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema={"type": "object"}),
        reasoning_effort="high",
        sampling=Sampling(seed=3),
    )

    assert problem(request, EVERYTHING) is None


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (chat(tools=(TOOL,)), "tools: provider 'local' cannot call tools"),
        (
            chat(messages=(*HI, Message("assistant", tool_calls=(ToolCall("c", "f"),)))),
            "messages[1].tool_calls: provider 'local' cannot take tool calls or tool results",
        ),
        (
            chat(messages=(Message("tool", (TextPart("x"),), tool_call_id="c"),)),
            "messages[0].role: provider 'local' cannot take tool calls or tool results",
        ),
        (
            chat(messages=(Message("user", (TextPart("x"), DATA_IMAGE)),)),
            "messages[0].parts[1].image: provider 'local' cannot take images",
        ),
        (
            chat(response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT)),
            "response_format.type: provider 'local' cannot answer with a JSON object",
        ),
        (
            chat(response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema={})),
            "response_format.type: provider 'local' cannot answer with JSON following a schema",
        ),
        (chat(reasoning_effort="low"), "reasoning_effort: provider 'local' cannot honour 'low'"),
        (chat(sampling=Sampling(seed=1)), "seed: provider 'local' cannot take a seed"),
    ],
)
def test_a_text_only_deployment_refuses_each_thing_naming_the_field(
    request_: ChatRequest, expected: str
) -> None:
    assert problem(request_) == expected


def test_a_tool_choice_mode_the_deployment_cannot_honour_is_refused() -> None:
    tools_auto_only = Capabilities(tools=True)
    request = chat(tools=(TOOL,), tool_choice=ToolChoice(ToolChoiceMode.REQUIRED))

    assert problem(request, tools_auto_only) == (
        "tool_choice: provider 'local' cannot honour mode REQUIRED"
    )
    assert (
        problem(replace(request, tool_choice=ToolChoice(ToolChoiceMode.AUTO)), tools_auto_only)
        is None
    )


def test_turning_parallel_calls_off_needs_a_switch_but_leaving_them_on_does_not() -> None:
    no_switch = Capabilities(tools=True)

    assert problem(chat(tools=(TOOL,), parallel_tool_calls=False), no_switch) == (
        "parallel_tool_calls: provider 'local' cannot turn parallel tool calls off"
    )
    assert problem(chat(tools=(TOOL,), parallel_tool_calls=True), no_switch) is None


def test_an_https_image_is_fine_for_a_vendor_that_takes_images_only_as_data() -> None:
    # The gateway fetches it and sends the bytes (gateway.pipeline.image_fetch).
    data_only = Capabilities(images=True)

    assert problem(chat(messages=(Message("user", (URL_IMAGE,)),)), data_only) is None
    assert problem(chat(messages=(Message("user", (DATA_IMAGE,)),)), data_only) is None


def test_an_image_in_a_tool_result_needs_its_own_capability() -> None:
    no_result_images = Capabilities(tools=True, images=True)
    request = chat(
        messages=(
            Message("assistant", tool_calls=(ToolCall("c", "f"),)),
            Message("tool", (DATA_IMAGE,), tool_call_id="c"),
        )
    )

    assert problem(request, no_result_images) == (
        "messages[1].parts[0].image: provider 'local' cannot take images in a tool result"
    )


def test_reasoning_effort_none_asks_nothing_of_a_model_that_does_not_reason() -> None:
    assert problem(chat(reasoning_effort="none")) is None


def test_reasoning_effort_none_on_a_model_that_cannot_stop_reasoning_is_refused() -> None:
    always_reasons = Capabilities(reasoning_efforts=frozenset({"low", "high"}))

    assert problem(chat(reasoning_effort="none"), always_reasons) == (
        "reasoning_effort: provider 'local' cannot honour 'none'"
    )
    assert problem(chat(reasoning_effort="medium"), always_reasons) == (
        "reasoning_effort: provider 'local' cannot honour 'medium'"
    )


def test_a_json_answer_with_tools_needs_its_own_capability() -> None:
    no_json_with_tools = Capabilities(tools=True, json_object=True, json_with_tools=False)
    json_object = ResponseFormat(ResponseFormatType.JSON_OBJECT)

    assert problem(chat(tools=(TOOL,), response_format=json_object), no_json_with_tools) == (
        "response_format: provider 'local' cannot answer in JSON when tools are given"
    )
    assert problem(chat(response_format=json_object), no_json_with_tools) is None
    assert problem(chat(tools=(TOOL,)), no_json_with_tools) is None


def test_cohere_and_older_gemini_models_declare_no_json_answer_with_tools() -> None:
    from providers.cohere_request import capabilities as cohere
    from providers.gemini_request import capabilities_for as gemini

    assert cohere("command-a-03-2025").json_with_tools is False
    assert gemini("gemini-2.5-flash").json_with_tools is False
    assert gemini("gemini-3-flash-preview").json_with_tools is True
