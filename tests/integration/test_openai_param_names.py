"""A 400 from `/v1/chat/completions` names the field as the caller's OpenAI body names it.

The core names fields by our request's shape (`messages[0].parts[1].image`,
`tools[0].parameters`...); the official SDK, strictly validating, must get OpenAI's names of
what it sent (`messages[0].content[1]`, `tools[0].function.parameters`...).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from openai import BadRequestError

from tests.conftest import MOCK, RunningGateway, StartGateway
from tests.sdk_clients import sdk_client

#: A mock deployment that takes text only: images are refused by its capabilities.
TEXT_MOCK = replace(MOCK, name="plain", models=("plain",), options={"capabilities": "text"})
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


@pytest.fixture
async def gw(start_gateway: StartGateway) -> RunningGateway:
    return await start_gateway(providers=(MOCK, TEXT_MOCK))


async def refusal(gw: RunningGateway, **fields: Any) -> BadRequestError:
    """The SDK's error for a chat completion with `fields` (model "mock" unless given)."""
    api = sdk_client(gw)
    fields.setdefault("model", "mock")
    with pytest.raises(BadRequestError) as caught:
        await api.chat.completions.create(**fields)
    body = caught.value.body
    assert isinstance(body, dict)
    assert str(body["message"]).startswith(f"{caught.value.param}: ")
    return caught.value


async def test_an_image_a_deployment_cannot_take_is_named_by_its_content_part(
    gw: RunningGateway,
) -> None:
    content = [{"type": "text", "text": "what is this?"}, IMAGE]
    error = await refusal(gw, model="plain", messages=[{"role": "user", "content": content}])
    assert error.param == "messages[0].content[1]"
    assert error.code == "unsupported_parameter"


async def test_an_image_of_a_media_type_no_vendor_takes_is_named_by_its_url(
    gw: RunningGateway,
) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}
    error = await refusal(gw, messages=[{"role": "user", "content": [image]}])
    assert error.param == "messages[0].content[0].image_url.url"


async def test_an_empty_text_part_is_named_by_its_content_part(gw: RunningGateway) -> None:
    content = [IMAGE, {"type": "text", "text": ""}]
    error = await refusal(gw, messages=[{"role": "user", "content": content}])
    assert error.param == "messages[0].content[1].text"


async def test_tool_parameters_that_are_not_an_object_schema_name_the_function(
    gw: RunningGateway,
) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}
    error = await refusal(gw, messages=[{"role": "user", "content": "hi"}], tools=[tool])
    assert error.param == "tools[0].function.parameters"


async def test_a_json_schema_format_without_its_schema_names_json_schema(
    gw: RunningGateway,
) -> None:
    error = await refusal(
        gw,
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer"}},
    )
    assert error.param == "response_format.json_schema.schema"


async def test_tool_call_arguments_that_are_not_an_object_name_the_function(
    gw: RunningGateway,
) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    error = await refusal(
        gw,
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
        tools=[{"type": "function", "function": {"name": "f"}}],
    )
    assert error.param == "messages[1].tool_calls[0].function.arguments"


async def test_a_tool_choice_naming_no_tool_names_its_function(gw: RunningGateway) -> None:
    error = await refusal(
        gw,
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"type": "function", "function": {"name": "f"}}],
        tool_choice={"type": "function", "function": {"name": "g"}},
    )
    assert error.param == "tool_choice.function.name"


async def test_max_completion_tokens_is_named_as_sent(gw: RunningGateway) -> None:
    error = await refusal(gw, messages=[{"role": "user", "content": "hi"}], max_completion_tokens=0)
    assert error.param == "max_completion_tokens"
