"""`features_of`: what routing reads from a request of the pipeline's shape."""

from __future__ import annotations

import pytest

from gateway.pipeline.routing.features import (
    DEFAULT_EXPECTED_OUTPUT_TOKENS,
    IMAGES,
    REASONING,
    STRUCTURED_OUTPUT,
    TOKENS_PER_IMAGE,
    TOKENS_PER_LOW_DETAIL_IMAGE,
    TOKENS_PER_MESSAGE,
    TOOLS,
    RequestFeatures,
    features_of,
    has_code,
)
from tests.routing_support import Call, Image, Msg, Request, Sampling, Text, user


def test_prompt_tokens_are_about_four_characters_each_plus_each_message() -> None:
    request = Request("m", (Msg("system", (Text("x" * 40),)), user("y" * 400)))

    features = features_of(request)

    assert features.prompt_tokens == 2 * TOKENS_PER_MESSAGE + 110
    assert features.text_tokens == 110
    assert (features.messages, features.turns) == (2, 2)


def test_images_count_and_weigh_by_detail() -> None:
    request = Request("m", (user("what is this?", Image(), Image(detail="low")),))

    features = features_of(request)

    assert (features.images, features.text_tokens) == (2, 4)
    assert features.prompt_tokens == (
        TOKENS_PER_MESSAGE + 4 + TOKENS_PER_IMAGE + TOKENS_PER_LOW_DETAIL_IMAGE
    )
    assert features.needs == {IMAGES}


def test_tool_calls_and_results_in_the_conversation_count_as_tool_turns() -> None:
    request = Request(
        "m",
        (
            user("weather in Paris and Rome?"),
            Msg("assistant", tool_calls=(Call("1", "weather"), Call("2", "weather"))),
            Msg("tool", (Text("18C"),), tool_call_id="1"),
            Msg("tool", (Text("24C"),), tool_call_id="2"),
        ),
    )

    features = features_of(request)

    assert features.tool_turns == 4
    assert features.turns == 1  # tool calls and results are not conversation depth
    assert features.needs == {TOOLS}
    assert features.last_user_text == "weather in Paris and Rome?"


def test_the_last_user_message_is_the_question() -> None:
    request = Request(
        "m", (user("first"), Msg("assistant", (Text("reply"),)), user("second", Image()))
    )

    assert features_of(request).last_user_text == "second"


def test_wave_two_fields_are_passed_in_until_the_request_has_them() -> None:
    request = Request("m", (user("hi"),), Sampling(max_tokens=1000))

    features = features_of(
        request, stream=True, tools=3, structured_output=True, reasoning_effort="high"
    )

    assert (features.tools, features.stream, features.max_tokens) == (3, True, 1000)
    assert features.needs == {TOOLS, STRUCTURED_OUTPUT, REASONING}


def test_reasoning_effort_none_needs_no_reasoning() -> None:
    assert features_of(Request("m", (user("hi"),)), reasoning_effort="none").needs == set()


def test_expected_tokens_add_max_tokens_or_the_default_output() -> None:
    assert RequestFeatures(prompt_tokens=100, max_tokens=50).expected_tokens == 150
    assert (
        RequestFeatures(prompt_tokens=100).expected_tokens == 100 + DEFAULT_EXPECTED_OUTPUT_TOKENS
    )


@pytest.mark.parametrize(
    "text",
    [
        "Why does this fail?\n```python\nprint(x)\n```",
        "def total(items):\n    return sum(items)",
        "const x = 3;",
        "SELECT name FROM users WHERE id = 3",
        'fn main() {\n    println!("hi");\n}',
        "import numpy as np\nnp.zeros(3)",
        "public static void main(String[] args)",
    ],
)
def test_code_is_recognised(text: str) -> None:
    assert has_code(text)


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "let me know what you think of the plan",
        "Select the best title for this article: a, b or c.",
        "Return the list sorted, please.",
        "The class starts at nine.",
    ],
)
def test_prose_is_not_code(text: str) -> None:
    assert not has_code(text)
