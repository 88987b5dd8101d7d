"""Our answers and errors in OpenAI's shapes."""

from __future__ import annotations

import orjson

from gateway.errors import (
    Code,
    InvalidArgumentError,
    ModelNotFoundError,
    ProviderError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthenticatedError,
)
from gateway.pipeline.types import Answer, Done, StreamHead
from gateway.transports.openai_answers import ChunkWriter, chat_completion
from gateway.transports.openai_errors import openai_error
from providers.types import Completion, TextDelta, ToolCall, ToolCallDelta, Usage

USAGE = Usage(10, 5, 15, cached_tokens=2, reasoning_tokens=3)


def error(exc: Exception) -> tuple[int, dict[str, object], dict[str, str]]:
    response = openai_error(exc)  # type: ignore[arg-type]
    assert isinstance(response.body, bytes)
    return response.status, orjson.loads(response.body)["error"], dict(response.headers)


def test_a_bad_field_is_a_400_with_its_param() -> None:
    status, body, _ = error(InvalidArgumentError("temperature: must be between 0 and 2"))
    assert (status, body["type"], body["param"], body["code"]) == (
        400,
        "invalid_request_error",
        "temperature",
        None,
    )


def test_a_deployment_that_cannot_is_an_unsupported_parameter() -> None:
    _, body, _ = error(InvalidArgumentError("seed: provider 'mock' cannot take a seed"))
    assert (body["param"], body["code"]) == ("seed", "unsupported_parameter")


def test_auth_and_model_errors_have_openais_codes() -> None:
    assert error(UnauthenticatedError("invalid credential"))[1]["code"] == "invalid_api_key"
    status, body, _ = error(ModelNotFoundError("unknown model 'x'"))
    assert (status, body["code"]) == (404, "model_not_found")


def test_a_rate_limit_says_when_to_come_back() -> None:
    status, body, headers = error(RateLimitedError("over", retry_after=1.5))
    assert (status, body["code"]) == (429, "rate_limit_exceeded")
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("2", "1500")
    assert "x-should-retry" not in headers


def test_a_spent_budget_is_insufficient_quota_and_not_retried() -> None:
    status, body, headers = error(RateLimitedError("the tenant's monthly budget is spent"))
    assert (status, body["type"], body["code"]) == (429, "insufficient_quota", "insufficient_quota")
    assert headers["x-should-retry"] == "false"


def test_a_provider_failure_is_not_retried_but_an_overloaded_gateway_is() -> None:
    failed = ProviderError("provider down", code=Code.UNAVAILABLE, provider="p")
    status, body, headers = error(failed)
    assert (status, body["type"], headers["x-should-retry"]) == (503, "server_error", "false")
    _, _, headers = error(ServiceUnavailableError("overloaded", retry_after=1.0))
    assert "x-should-retry" not in headers
    assert headers["retry-after"] == "1"


def answer(completion: Completion) -> Answer:
    return Answer(completion, "p", 0.001)


def test_content_is_null_when_only_tools_were_called() -> None:
    completion = Completion("id", "m", "", "stop", USAGE, (ToolCall("c1", "f", "{}"),))
    body = orjson.loads(chat_completion([answer(completion)], "m", 1))
    choice = body["choices"][0]
    assert choice["message"]["content"] is None
    assert choice["finish_reason"] == "tool_calls"
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 2}
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}


def test_tool_call_deltas_name_the_call_once() -> None:
    writer = ChunkWriter("m", 1, include_usage=False, choices=1)
    writer.render(0, StreamHead("id", "m", "p"))
    first = writer.render(0, ToolCallDelta(0, "c1", "f", '{"a"'))
    more = writer.render(0, ToolCallDelta(0, arguments=": 1}"))
    first_delta = orjson.loads(first[6:])["choices"][0]["delta"]
    more_delta = orjson.loads(more[6:])["choices"][0]["delta"]
    assert first_delta["role"] == "assistant"
    assert first_delta["tool_calls"] == [
        {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a"'}}
    ]
    assert more_delta == {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}


def test_the_usage_chunk_comes_only_when_asked() -> None:
    done = Done(answer(Completion("id", "m", "hi", "stop", USAGE)))
    for include_usage in (False, True):
        writer = ChunkWriter("m", 1, include_usage=include_usage, choices=1)
        writer.render(0, StreamHead("id", "m", "p"))
        writer.render(0, TextDelta("hi"))
        writer.render(0, done)
        tail = writer.closing()
        assert tail.endswith(b"data: [DONE]\n\n")
        assert (b'"choices":[]' in tail) is include_usage
