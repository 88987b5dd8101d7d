"""Validation: what a valid request message becomes, and how each invalid field is reported."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from gateway.errors import InvalidArgumentError
from gateway.pipeline.types import CompletionRequest
from gateway.pipeline.validation import MAX_METADATA_VALUE_CHARS, MAX_STOP_SEQUENCES, validate
from gateway.transports.proto_convert import completion_request
from gateway.v1 import gateway_pb2 as pb
from providers.types import Message


def parse_params(request: pb.CompleteRequest | pb.StreamCompleteRequest) -> CompletionRequest:
    """What the core makes of a request message (as either transport hands it over)."""
    return validate(completion_request(request))


def valid_request() -> pb.CompleteRequest:
    """The smallest request that passes validation."""
    return pb.CompleteRequest(model="mock", messages=[pb.Message(role="user", content="hello")])


def rejection(request: pb.CompleteRequest) -> str:
    """The message of the `InvalidArgumentError` that `request` is rejected with."""
    with pytest.raises(InvalidArgumentError) as exc_info:
        parse_params(request)
    return exc_info.value.message


# Valid requests


def test_every_field_of_a_valid_request_is_carried_over() -> None:
    request = pb.CompleteRequest(
        model=" mock ",
        messages=[
            pb.Message(role="system", content="be brief"),
            pb.Message(role="user", content="hello"),
        ],
        temperature=0.5,
        max_tokens=64,
        top_p=0.25,
        stop=["END"],
        provider="local",
        fallback_models=["backup"],
        metadata={"tenant": "acme"},
        priority=pb.PRIORITY_HIGH,
        timeout=Duration(seconds=1, nanos=500_000_000),
    )

    params = parse_params(request)

    sampling = params.chat.sampling
    assert (
        params.model,
        params.chat.messages,
        sampling.temperature,
        sampling.max_tokens,
        sampling.top_p,
        sampling.stop,
        params.routing.provider,
        params.routing.fallback_models,
        params.metadata,
        params.timeout,
    ) == (
        "mock",
        (Message.of_text("system", "be brief"), Message.of_text("user", "hello")),
        0.5,
        64,
        0.25,
        ("END",),
        "local",
        ("backup",),
        {"tenant": "acme"},
        1.5,
    )


def test_unset_optional_fields_are_none() -> None:
    params = parse_params(valid_request())

    sampling = params.chat.sampling
    assert (sampling.temperature, sampling.max_tokens, sampling.top_p, params.timeout) == (
        None,
        None,
        None,
        None,
    )


def test_temperature_set_to_zero_stays_zero() -> None:
    request = valid_request()
    request.temperature = 0.0

    assert (
        parse_params(request).chat.sampling.temperature == 0.0
    )  # so not None: zero was set on purpose


def test_assistant_turn_may_be_empty() -> None:
    request = valid_request()
    request.messages.add(role="assistant", content="")

    assert parse_params(request).chat.messages[-1] == Message.of_text("assistant", "")


def test_stream_request_parses_like_the_unary_request_with_the_same_fields() -> None:
    unary = valid_request()
    unary.temperature = 1.0
    unary.metadata["tenant"] = "acme"
    stream = pb.StreamCompleteRequest.FromString(unary.SerializeToString())

    assert parse_params(stream) == parse_params(unary)


def test_stream_request_is_rejected_like_the_unary_request() -> None:
    stream = pb.StreamCompleteRequest(model="mock", temperature=3.0)
    stream.messages.add(role="user", content="hello")

    with pytest.raises(InvalidArgumentError, match=r"^temperature: "):
        parse_params(stream)


# Invalid requests: the message starts with the field


def test_blank_model_is_rejected() -> None:
    request = valid_request()
    request.model = "  "

    assert rejection(request).startswith("model: ")


def test_request_without_messages_is_rejected() -> None:
    request = pb.CompleteRequest(model="mock")

    assert rejection(request).startswith("messages: ")


def test_unknown_role_is_rejected_naming_the_message_index() -> None:
    request = valid_request()
    request.messages.add(role="bot", content="hi")

    assert rejection(request).startswith("messages[1].role: ")


def test_empty_user_content_is_rejected_naming_the_message_index() -> None:
    request = valid_request()
    request.messages.add(role="user", content="")

    assert rejection(request).startswith("messages[1].content: ")


@pytest.mark.parametrize("temperature", [2.5, -0.1, float("nan")])
def test_temperature_outside_0_to_2_is_rejected(temperature: float) -> None:
    request = valid_request()
    request.temperature = temperature

    assert rejection(request).startswith("temperature: ")


@pytest.mark.parametrize("max_tokens", [0, -1])
def test_max_tokens_below_1_is_rejected(max_tokens: int) -> None:
    request = valid_request()
    request.max_tokens = max_tokens

    assert rejection(request).startswith("max_tokens: ")


@pytest.mark.parametrize("top_p", [0.0, 1.5])
def test_top_p_outside_0_exclusive_to_1_is_rejected(top_p: float) -> None:
    request = valid_request()
    request.top_p = top_p

    assert rejection(request).startswith("top_p: ")


def test_too_many_stop_sequences_are_rejected() -> None:
    request = valid_request()
    request.stop.extend(f"stop-{i}" for i in range(MAX_STOP_SEQUENCES + 1))

    assert rejection(request).startswith("stop: ")


def test_empty_stop_sequence_is_rejected() -> None:
    request = valid_request()
    request.stop.extend(["END", ""])

    assert rejection(request).startswith("stop: ")


@pytest.mark.parametrize("seconds", [0, -1])
def test_timeout_that_is_not_positive_is_rejected(seconds: int) -> None:
    request = valid_request()
    request.timeout.CopyFrom(Duration(seconds=seconds))

    assert rejection(request).startswith("timeout: ")


def test_unknown_priority_is_rejected() -> None:
    request = valid_request()
    request.priority = pb.Priority.ValueType(99)

    assert rejection(request).startswith("priority: ")


def test_overlong_metadata_value_is_rejected_naming_the_key() -> None:
    request = valid_request()
    request.metadata["tenant"] = "x" * (MAX_METADATA_VALUE_CHARS + 1)

    assert rejection(request).startswith("metadata.tenant: ")


@pytest.mark.parametrize(
    "model",
    [
        *(".", "..", "azure_openai/..", "gemini/models/.", "a/../b"),
        *("gpt\n4o", "gpt\x00", "gpt\x7f", "gpt\x854o", "gpt-4o?api-version=1", "gpt-4o#frag"),
    ],
)
def test_a_model_that_is_a_dot_segment_or_holds_control_characters_or_url_syntax_is_rejected(
    model: str,
) -> None:
    request = valid_request()
    request.model = model
    assert rejection(request).startswith("model: ")
    request.model, request.fallback_models[:] = "mock", [model]
    assert rejection(request).startswith("fallback_models[0]: ")


@pytest.mark.parametrize(
    "model",
    [
        *("meta-llama/Llama-3.1-8B-Instruct", "openai/gpt-4o-mini", "gemini-1.5-pro", "v..2"),
        # Not printable, yet no control character: a space (Zs) and a format character (Cf).
        *("gpt\u00a04o", "gpt-4o\u200bmini"),
    ],
)
def test_model_names_with_slashes_and_dots_inside_a_segment_are_accepted(model: str) -> None:
    request = valid_request()
    request.model = model
    request.fallback_models[:] = [model]
    params = parse_params(request)
    assert (params.model, params.routing.fallback_models) == (model, (model,))
