"""The fields the core names, as OpenAI names them in the body the caller sent."""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
import pytest

from gateway.errors import InvalidArgumentError
from gateway.transports.openai_errors import error_object
from gateway.transports.openai_params import chat_param, embeddings_param

PARTS_BODY: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        },
    ],
    "max_completion_tokens": 0,
}


@pytest.mark.parametrize(
    ("ours", "openais"),
    [
        ("messages[1].parts[1].image", "messages[1].content[1]"),
        ("messages[1].parts[1]", "messages[1].content[1]"),
        ("messages[1].parts[0].text", "messages[1].content[0].text"),
        ("messages[1].parts[1].image.url", "messages[1].content[1].image_url.url"),
        ("messages[1].parts[1].image.media_type", "messages[1].content[1].image_url.url"),
        ("messages[1].parts[1].image.detail", "messages[1].content[1].image_url.detail"),
        ("messages[0].parts[0].text", "messages[0].content"),  # sent as a string
        ("messages[2].tool_calls[0].arguments", "messages[2].tool_calls[0].function.arguments"),
        ("messages[2].tool_calls[1].name", "messages[2].tool_calls[1].function.name"),
        ("messages[2].tool_calls[0].id", "messages[2].tool_calls[0].id"),
        ("messages[3].tool_call_id", "messages[3].tool_call_id"),
        ("tools[0].parameters", "tools[0].function.parameters"),
        ("tools[2].name", "tools[2].function.name"),
        ("tools[0].description", "tools[0].function.description"),
        ("tool_choice.name", "tool_choice.function.name"),
        ("response_format.schema", "response_format.json_schema.schema"),
        ("response_format.name", "response_format.json_schema.name"),
        ("response_format.type", "response_format.type"),
        ("max_tokens", "max_completion_tokens"),  # the body set max_completion_tokens
        ("temperature", "temperature"),
    ],
)
def test_a_chat_field_is_named_as_openai_names_it(ours: str, openais: str) -> None:
    assert chat_param(ours, PARTS_BODY) == openais


@pytest.mark.parametrize(
    "openais",
    [
        "messages[1].content[1]",
        "messages[1].content[1].image_url.url",
        "messages[2].tool_calls[0].function.arguments",
        "tools[0].function.parameters",
        "tool_choice.function.name",
        "response_format.json_schema.schema",
    ],
)
def test_a_name_that_is_already_openais_stays(openais: str) -> None:
    assert chat_param(openais, PARTS_BODY) == openais


def test_max_tokens_stays_when_the_body_set_max_tokens() -> None:
    assert chat_param("max_tokens", {"max_tokens": 0}) == "max_tokens"


@pytest.mark.parametrize(
    ("sent", "ours", "openais"),
    [
        (["a", ""], "inputs[1]", "input[1]"),
        ([[1], []], "inputs[1]", "input[1]"),
        ("", "inputs[0]", "input"),
        ([1, 2], "inputs", "input"),
        ([1, 2], "inputs[0]", "input"),
        (["a"], "inputs", "input"),
        (["a"], "dimensions", "dimensions"),
    ],
)
def test_an_embeddings_field_is_named_as_openai_names_it(
    sent: object, ours: str, openais: str
) -> None:
    assert embeddings_param(ours, {"input": sent}) == openais


def test_the_error_names_the_field_as_sent_in_param_and_message() -> None:
    exc = InvalidArgumentError("messages[1].parts[1].image: provider 'plain' cannot take images")
    error = error_object(exc, partial(chat_param, body=PARTS_BODY))["error"]
    assert isinstance(error, dict)
    assert error["param"] == "messages[1].content[1]"
    assert error["message"] == "messages[1].content[1]: provider 'plain' cannot take images"
    assert error["code"] == "unsupported_parameter"
    assert orjson.loads(orjson.dumps(error_object(exc)))["error"]["param"] == (
        "messages[1].parts[1].image"  # without the body: the core's own name
    )
