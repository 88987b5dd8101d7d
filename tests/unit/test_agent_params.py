"""Agent requests (parts, images, tools, tool calls and results, response formats, reasoning):
what a valid one becomes, over gRPC messages and JSON bodies alike, and how each invalid field
is reported."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct

from gateway.errors import InvalidArgumentError
from gateway.pipeline.types import CompletionRequest
from gateway.pipeline.validation import validate
from gateway.transports.json_codec import parse_completion_request
from gateway.transports.proto_convert import completion_request
from gateway.v1 import gateway_pb2 as pb
from providers.types import (
    ImagePart,
    Message,
    ReasoningPart,
    ResponseFormat,
    ResponseFormatType,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)

PNG = b"\x89PNG\r\n\x1a\n fake png"
PNG_DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "tags": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "ratio": {"type": "number", "multipleOf": 0.5},
    },
    "required": ["city"],
    "additionalProperties": False,
}


def struct(value: dict[str, Any]) -> Struct:
    message = Struct()
    message.update(value)
    return message


def parse(request: pb.CompleteRequest | pb.StreamCompleteRequest) -> CompletionRequest:
    return validate(completion_request(request))


def parse_json(body: dict[str, Any]) -> CompletionRequest:
    return validate(completion_request(parse_completion_request(body, pb.CompleteRequest)))


def rejection(request: pb.CompleteRequest) -> str:
    with pytest.raises(InvalidArgumentError) as caught:
        parse(request)
    return caught.value.message


def tool_loop_messages() -> list[pb.Message]:
    """A user question, an assistant turn that called a tool, the tool's result."""
    return [
        pb.Message(role="user", content="Weather in Paris?"),
        pb.Message(
            role="assistant",
            tool_calls=[pb.ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}')],
            reasoning=[pb.ReasoningPart(text="Use the tool.", signature="sig-1")],
        ),
        pb.Message(role="tool", tool_call_id="call_1", content='{"temp": 21}'),
    ]


def weather_tool() -> pb.Tool:
    return pb.Tool(name="get_weather", description="Weather", parameters=struct(WEATHER_SCHEMA))


def agent_request(**fields: Any) -> pb.CompleteRequest:
    fields.setdefault("messages", tool_loop_messages())
    fields.setdefault("tools", [weather_tool()])
    return pb.CompleteRequest(model="mock", **fields)


# -- what a valid request becomes ----------------------------------------------------------------


def test_every_agent_field_of_a_grpc_request_is_carried_over() -> None:
    request = agent_request(
        tool_choice=pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_TOOL, name="get_weather"),
        response_format=pb.ResponseFormat(
            type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
            name="answer",
            schema=struct({"type": "object", "properties": {"n": {"type": "integer"}}}),
            strict=True,
        ),
        parallel_tool_calls=False,
        seed=42,
        reasoning_effort="low",
    )

    chat = parse(request).chat

    assert chat.messages == (
        Message.of_text("user", "Weather in Paris?"),
        Message(
            "assistant",
            tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Paris"}'),),
            reasoning=(ReasoningPart("Use the tool.", "sig-1"),),
        ),
        Message("tool", (TextPart('{"temp": 21}'),), tool_call_id="call_1"),
    )
    assert chat.tools == (Tool("get_weather", "Weather", WEATHER_SCHEMA),)
    assert chat.tool_choice == ToolChoice(ToolChoiceMode.TOOL, "get_weather")
    assert chat.response_format == ResponseFormat(
        ResponseFormatType.JSON_SCHEMA,
        "answer",
        {"type": "object", "properties": {"n": {"type": "integer"}}},
        strict=True,
    )
    assert (chat.parallel_tool_calls, chat.sampling.seed, chat.reasoning_effort) == (
        False,
        42,
        "low",
    )


def test_integral_numbers_in_schemas_are_integers_again() -> None:
    chat = parse(agent_request()).chat

    properties = chat.tools[0].parameters["properties"]
    assert isinstance(properties, dict)
    assert properties["tags"]["minItems"] == 1
    assert type(properties["tags"]["minItems"]) is int
    assert type(properties["days"]["maximum"]) is int
    assert type(properties["ratio"]["multipleOf"]) is float


def test_unset_agent_fields_are_none_or_empty() -> None:
    chat = parse(pb.CompleteRequest(model="m", messages=[pb.Message(role="user", content="hi")]))

    assert chat.chat.tools == ()
    assert (chat.chat.tool_choice, chat.chat.response_format) == (None, None)
    assert (chat.chat.parallel_tool_calls, chat.chat.reasoning_effort) == (None, None)
    assert chat.chat.sampling.seed is None


def test_parts_carry_text_and_images_in_order() -> None:
    request = pb.CompleteRequest(
        model="m",
        messages=[
            pb.Message(
                role="user",
                parts=[
                    pb.ContentPart(text="What is in these?"),
                    pb.ContentPart(image=pb.Image(url="https://example.com/a.png", detail="low")),
                    pb.ContentPart(image=pb.Image(data=PNG, media_type="image/png")),
                    pb.ContentPart(image=pb.Image(url=PNG_DATA_URL)),
                ],
            )
        ],
    )

    (message,) = parse(request).chat.messages

    assert message.parts == (
        TextPart("What is in these?"),
        ImagePart(url="https://example.com/a.png", detail="low"),
        ImagePart(data=PNG, media_type="image/png"),
        ImagePart(url=PNG_DATA_URL),
    )


def test_a_tool_call_without_arguments_has_an_empty_json_object() -> None:
    messages = tool_loop_messages()
    messages[1].tool_calls[0].arguments = ""

    chat = parse(agent_request(messages=messages)).chat

    assert chat.messages[1].tool_calls[0].arguments == "{}"


def test_a_text_response_format_is_the_same_as_none() -> None:
    request = agent_request(response_format=pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_TEXT))

    assert parse(request).chat.response_format is None


def test_json_bodies_take_the_same_fields_in_either_spelling() -> None:
    snake = {
        "model": "mock",
        "messages": [
            {"role": "user", "parts": [{"text": "hi"}, {"image": {"url": PNG_DATA_URL}}]},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": "{}"}],
                "reasoning": [{"text": "t", "signature": "s", "tool_call_id": "c1"}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "21"},
        ],
        "tools": [{"name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": True}],
        "tool_choice": {"mode": "TOOL_CHOICE_MODE_REQUIRED"},
        "response_format": {"type": "RESPONSE_FORMAT_TYPE_JSON_OBJECT"},
        "parallel_tool_calls": True,
        "seed": 7,
        "reasoning_effort": "high",
    }
    camel = {
        "model": "mock",
        "messages": [
            {"role": "user", "parts": [{"text": "hi"}, {"image": {"url": PNG_DATA_URL}}]},
            {
                "role": "assistant",
                "toolCalls": [{"id": "c1", "name": "get_weather", "arguments": "{}"}],
                "reasoning": [{"text": "t", "signature": "s", "toolCallId": "c1"}],
            },
            {"role": "tool", "toolCallId": "c1", "content": "21"},
        ],
        "tools": [{"name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": True}],
        "toolChoice": {"mode": "TOOL_CHOICE_MODE_REQUIRED"},
        "responseFormat": {"type": "RESPONSE_FORMAT_TYPE_JSON_OBJECT"},
        "parallelToolCalls": True,
        "seed": "7",
        "reasoningEffort": "high",
    }

    parsed = parse_json(snake)

    assert parse_json(camel) == parsed
    chat = parsed.chat
    assert chat.tool_choice == ToolChoice(ToolChoiceMode.REQUIRED)
    assert chat.response_format == ResponseFormat(ResponseFormatType.JSON_OBJECT)
    assert chat.tools[0].parameters == WEATHER_SCHEMA
    assert chat.messages[1].reasoning == (ReasoningPart("t", "s", "", "c1"),)
    assert (chat.parallel_tool_calls, chat.sampling.seed, chat.reasoning_effort) == (
        True,
        7,
        "high",
    )


# -- what is refused -----------------------------------------------------------------------------


def test_a_message_with_both_content_and_parts_is_rejected() -> None:
    request = pb.CompleteRequest(
        model="m",
        messages=[pb.Message(role="user", content="hi", parts=[pb.ContentPart(text="hi")])],
    )

    assert rejection(request) == "messages[0]: set content or parts, not both"


def test_an_empty_content_part_is_rejected() -> None:
    request = pb.CompleteRequest(
        model="m", messages=[pb.Message(role="user", parts=[pb.ContentPart()])]
    )

    assert rejection(request) == "messages[0].parts[0]: must hold text or an image"


def test_a_tool_result_without_its_call_id_is_rejected() -> None:
    messages = tool_loop_messages()
    messages[2].tool_call_id = ""

    assert rejection(agent_request(messages=messages)).startswith("messages[2].tool_call_id:")


def test_a_tool_result_answering_no_earlier_call_is_rejected() -> None:
    messages = tool_loop_messages()
    messages[2].tool_call_id = "call_9"

    assert rejection(agent_request(messages=messages)) == (
        "messages[2].tool_call_id: 'call_9' answers no tool call of an earlier assistant turn"
    )


def test_a_tool_result_before_its_call_is_rejected() -> None:
    user, assistant, result = tool_loop_messages()

    message = rejection(agent_request(messages=[user, result, assistant]))

    assert message.startswith("messages[1].tool_call_id: 'call_1' answers no tool call")


def test_a_call_answered_twice_is_rejected() -> None:
    messages = [*tool_loop_messages(), pb.Message(role="tool", tool_call_id="call_1", content="x")]

    assert rejection(agent_request(messages=messages)) == (
        "messages[3].tool_call_id: 'call_1' is already answered"
    )


def test_tool_calls_on_a_user_turn_are_rejected() -> None:
    request = agent_request(
        messages=[pb.Message(role="user", tool_calls=[pb.ToolCall(id="c", name="get_weather")])]
    )

    assert rejection(request) == "messages[0].tool_calls: only an assistant turn calls tools"


@pytest.mark.parametrize("arguments", ["[1]", "not json", '"text"'])
def test_tool_call_arguments_that_are_not_a_json_object_are_rejected(arguments: str) -> None:
    messages = tool_loop_messages()
    messages[1].tool_calls[0].arguments = arguments

    assert rejection(agent_request(messages=messages)) == (
        "messages[1].tool_calls[0].arguments: must be a JSON object, as text"
    )


def test_a_tool_call_id_on_another_role_is_rejected() -> None:
    request = agent_request(messages=[pb.Message(role="user", content="hi", tool_call_id="x")])

    assert rejection(request) == "messages[0].tool_call_id: only on a message of role 'tool'"


def test_reasoning_on_a_user_turn_is_rejected() -> None:
    request = agent_request(
        messages=[
            pb.Message(role="user", content="hi", reasoning=[pb.ReasoningPart(signature="s")])
        ]
    )

    assert rejection(request) == "messages[0].reasoning: only on an assistant turn"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (pb.Image(url="http://example.com/a.png"), ".url: must be an https: or data: URL"),
        (pb.Image(url="data:image/png,notbase64"), ".url: a data: URL must be"),
        (pb.Image(url="data:image/png;base64,@@@"), ".url: the data is not base64"),
        (pb.Image(url="data:text/html;base64,PGI+"), ".url: the media type must be one of"),
        (pb.Image(data=PNG), ".media_type: the media type must be one of"),
        (pb.Image(data=PNG, media_type="application/pdf"), ".media_type: the media type must"),
        (pb.Image(), ": set url (https: or data:) or data"),
        (pb.Image(url=PNG_DATA_URL, data=PNG), ": set url or data, not both"),
        (pb.Image(url=PNG_DATA_URL, detail="ultra"), ".detail: must be auto, low or high"),
    ],
)
def test_an_image_that_is_not_an_https_or_data_url_or_typed_bytes_is_rejected(
    image: pb.Image, message: str
) -> None:
    request = pb.CompleteRequest(
        model="m", messages=[pb.Message(role="user", parts=[pb.ContentPart(image=image)])]
    )

    assert rejection(request).startswith("messages[0].parts[0].image" + message)


def test_an_image_in_a_system_turn_is_rejected() -> None:
    image = pb.ContentPart(image=pb.Image(url=PNG_DATA_URL))
    request = pb.CompleteRequest(model="m", messages=[pb.Message(role="system", parts=[image])])

    assert rejection(request) == (
        "messages[0].parts[0].image: images go in user or tool turns, not 'system'"
    )


@pytest.mark.parametrize("effort", ["", "max", "LOW"])
def test_an_unknown_reasoning_effort_is_rejected(effort: str) -> None:
    assert rejection(agent_request(reasoning_effort=effort)).startswith(
        "reasoning_effort: must be one of none, minimal, low, medium, high"
    )


@pytest.mark.parametrize("name", ["", "get weather", "x" * 65, "naïve", "a.b"])
def test_a_tool_name_vendors_do_not_all_take_is_rejected(name: str) -> None:
    request = agent_request(
        messages=[pb.Message(role="user", content="hi")], tools=[pb.Tool(name=name)]
    )

    assert rejection(request).startswith("tools[0].name: 1 to 64 letters, digits")


def test_a_tool_declared_twice_is_rejected() -> None:
    assert rejection(agent_request(tools=[weather_tool(), weather_tool()])) == (
        "tools[1].name: 'get_weather' is declared twice"
    )


def test_tool_parameters_that_are_not_an_object_schema_are_rejected() -> None:
    tool = pb.Tool(name="f", parameters=struct({"type": "array"}))

    assert rejection(agent_request(tools=[weather_tool(), tool])) == (
        "tools[1].parameters: must be an object schema"
    )


def test_a_named_tool_choice_must_name_a_declared_tool() -> None:
    choice = pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_TOOL, name="get_time")

    assert rejection(agent_request(tool_choice=choice)) == (
        "tool_choice.name: must name one of the request's tools, got 'get_time'"
    )


def test_a_name_with_another_tool_choice_mode_is_rejected() -> None:
    choice = pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_AUTO, name="get_weather")

    assert rejection(agent_request(tool_choice=choice)) == "tool_choice.name: only with mode TOOL"


def test_a_tool_choice_name_without_a_mode_is_rejected() -> None:
    choice = pb.ToolChoice(name="get_weather")

    assert rejection(agent_request(tool_choice=choice)) == (
        "tool_choice.mode: required with a name (TOOL)"
    )


def test_an_unknown_tool_choice_mode_number_is_rejected() -> None:
    choice = pb.ToolChoice(mode=pb.ToolChoiceMode.ValueType(9))

    assert rejection(agent_request(tool_choice=choice)) == "tool_choice.mode: unknown value 9"


def test_a_tool_choice_or_parallel_switch_without_tools_is_rejected() -> None:
    hi = [pb.Message(role="user", content="hi")]
    required = pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_REQUIRED)

    assert rejection(agent_request(messages=hi, tools=[], tool_choice=required)) == (
        "tool_choice: only with tools"
    )
    assert rejection(agent_request(messages=hi, tools=[], parallel_tool_calls=True)) == (
        "parallel_tool_calls: only with tools"
    )


def test_a_json_schema_format_without_a_schema_is_rejected() -> None:
    form = pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name="answer")

    assert rejection(agent_request(response_format=form)) == (
        "response_format.schema: required with type JSON_SCHEMA"
    )


def test_a_schema_with_a_json_object_format_is_rejected() -> None:
    form = pb.ResponseFormat(
        type=pb.RESPONSE_FORMAT_TYPE_JSON_OBJECT, schema=struct({"type": "object"})
    )

    assert rejection(agent_request(response_format=form)).startswith("response_format.schema:")


def test_an_unknown_response_format_type_is_rejected() -> None:
    form = pb.ResponseFormat(type=pb.ResponseFormatType.ValueType(7))

    assert rejection(agent_request(response_format=form)) == (
        "response_format.type: unknown value 7"
    )


def test_a_schema_holding_a_non_finite_number_is_rejected() -> None:
    form = pb.ResponseFormat(
        type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
        schema=struct({"type": "number", "maximum": float("inf")}),
    )

    assert rejection(agent_request(response_format=form)) == (
        "response_format.schema: numbers must be finite"
    )
