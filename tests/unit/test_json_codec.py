"""The completion messages' JSON codec gives exactly what `json_format` gives, without it.

Every comparison is against `json_format` itself (through `parse_message` / `render_message`,
which are `json_format` with the shim's error mapping): the same message, or the same error, for
hand-picked and randomly generated bodies; the same bytes for generated responses.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration

from gateway.errors import InvalidArgumentError
from gateway.transports.json_codec import (
    parse_completion_request,
    parse_message,
    render_completion,
    render_message,
)
from gateway.v1 import gateway_pb2 as pb

RequestType = type[pb.CompleteRequest] | type[pb.StreamCompleteRequest]
REQUEST_TYPES: list[RequestType] = [pb.CompleteRequest, pb.StreamCompleteRequest]
HELLO = [{"role": "user", "content": "hello"}]

# -- parsing: the same message or the same error ---------------------------------------------


def outcome(parse: Callable[[], Any]) -> tuple[str, Any]:
    """What a parse came to: the message's exact bytes, or the error the shim would report."""
    try:
        message = parse()
    except InvalidArgumentError as exc:
        return ("InvalidArgumentError", exc.message)
    except Exception as exc:  # json_format lets a few through (OverflowError), the same for both
        return (type(exc).__name__, str(exc))
    return ("message", message.SerializeToString(deterministic=True))


def assert_parses_like_json_format(body: dict[str, Any], message_type: RequestType) -> None:
    expected = outcome(lambda: parse_message(body, message_type()))
    assert outcome(lambda: parse_completion_request(body, message_type)) == expected, body
    if expected[0] == "message":  # bytes cover presence; == covers the rest
        assert parse_completion_request(body, message_type) == parse_message(body, message_type())


PLAIN_BODIES: dict[str, dict[str, Any]] = {
    "smallest": {"model": "mock", "messages": HELLO},
    "empty object": {},
    "every field, snake_case": {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "be brief"}, *HELLO],
        "temperature": 0.2,
        "max_tokens": 64,
        "top_p": 1,
        "stop": ["END", "\n\n"],
        "provider": "openai",
        "fallback_models": ["mock"],
        "metadata": {"tenant": "acme", "use_case": "chat"},
        "priority": "PRIORITY_HIGH",
        "cache": {"no_cache": True, "no_store": False, "ttl": "300s"},
        "timeout": "1.5s",
    },
    "every field, lowerCamelCase": {
        "model": "mock",
        "messages": HELLO,
        "maxTokens": 8,
        "topP": 0.5,
        "fallbackModels": ["a", "b"],
        "cache": {"noCache": False, "noStore": True, "ttl": "0.250s"},
    },
    "zero values are still set where the field has presence": {
        "temperature": 0,
        "max_tokens": 0,
        "top_p": 0.0,
        "timeout": "0s",
        "cache": {},
    },
    "nulls leave fields unset": {
        "model": None,
        "messages": None,
        "temperature": None,
        "maxTokens": None,
        "stop": None,
        "metadata": None,
        "priority": None,
        "cache": None,
        "timeout": None,
    },
    "nulls inside nested objects": {
        "messages": [{"role": None, "content": "x"}, {}],
        "cache": {"ttl": None, "no_cache": None},
    },
    "empty lists and maps": {"messages": [], "stop": [], "fallback_models": [], "metadata": {}},
    "unicode text": {
        "model": "modèle",
        "messages": [{"role": "user", "content": '日本語 😀 \u0000 "q" \\'}],
        "metadata": {"clé": "välue"},
    },
    "int32 and double extremes": {
        "max_tokens": 2**31 - 1,
        "temperature": 1.7976931348623157e308,
        "top_p": 5e-324,
    },
    "negative int32": {"max_tokens": -(2**31)},
    "a big integer for a double": {"temperature": 2**53 + 1},
    "durations with every precision": {"timeout": "0.000000001s", "cache": {"ttl": "7.000001s"}},
    "the largest duration": {"timeout": "315576000000.999999999s"},
    "leading zeros in a duration": {"timeout": "007.50s"},
    "the unspecified priority": {"priority": "PRIORITY_UNSPECIFIED"},
}

ODD_BODIES: dict[str, dict[str, Any]] = {
    "unknown field": {"model": "mock", "api_base": "http://evil"},
    "the stream switch is not a field": {"stream": True},
    "both spellings of an optional field": {"max_tokens": 3, "maxTokens": 5},
    "both spellings of a repeated field": {"fallback_models": ["a"], "fallbackModels": ["b"]},
    "both spellings, one null": {"max_tokens": None, "maxTokens": 5},
    "both spellings inside the cache policy": {"cache": {"no_cache": True, "noCache": False}},
    "numeric string for an integer": {"max_tokens": "64"},
    "integral float for an integer": {"max_tokens": 64.0},
    "fractional float for an integer": {"max_tokens": 6.5},
    "bool for an integer": {"max_tokens": True},
    "integer out of range": {"max_tokens": 2**31},
    "integer below range": {"max_tokens": -(2**31) - 1},
    "numeric string for a double": {"temperature": "0.5"},
    "quoted NaN": {"temperature": "NaN"},
    "quoted Infinity": {"top_p": "-Infinity"},
    "a NaN float": {"temperature": math.nan},
    "an infinite float": {"temperature": math.inf},
    "an integer too big for a double": {"temperature": 10**400},
    "bool for a double": {"temperature": False},
    "number for a string": {"model": 5},
    "string for a list": {"messages": "hi"},
    "null message": {"messages": [None]},
    "string message": {"messages": ["hi"]},
    "unknown message field": {"messages": [{"role": "user", "text": "hi"}]},
    "number as content": {"messages": [{"role": "user", "content": 5}]},
    "tuple of messages": {"messages": ({"role": "user", "content": "x"},)},
    "null in a string list": {"stop": [None]},
    "number in a string list": {"fallback_models": [1]},
    "non-string metadata value": {"metadata": {"tenant": 5}},
    "null metadata value": {"metadata": {"tenant": None}},
    "list for metadata": {"metadata": ["tenant"]},
    "enum number": {"priority": 3},
    "enum number as string": {"priority": "2"},
    "unknown enum number": {"priority": 9},
    "unknown enum name": {"priority": "PRIORITY_URGENT"},
    "lower-case enum name": {"priority": "priority_high"},
    "string for a bool": {"cache": {"no_cache": "true"}},
    "number for a bool": {"cache": {"no_store": 1}},
    "unknown cache field": {"cache": {"no_cache": True, "max_age": "5s"}},
    "list for the cache policy": {"cache": []},
    "duration without unit": {"timeout": "5"},
    "duration in milliseconds": {"timeout": "500ms"},
    "negative duration": {"timeout": "-1.5s"},
    "negative zero duration": {"timeout": "-0.5s"},
    "duration with a bare point": {"timeout": "1.s"},
    "duration without seconds": {"timeout": ".5s"},
    "duration with exponent": {"timeout": "1e3s"},
    "duration with a plus sign": {"timeout": "+1s"},
    "duration with spaces": {"timeout": " 1s"},
    "duration with underscores": {"timeout": "1_000s"},
    "duration with non-ASCII digits": {"timeout": "٣s"},
    "duration too long": {"timeout": "315576000001s"},
    "duration fraction that rounds to a whole second": {"timeout": "1.9999999999s"},
    "duration with ten decimals": {"cache": {"ttl": "1.0000000005s"}},
    "number for a duration": {"timeout": 5},
    "object for a duration": {"timeout": {"seconds": 5}},
    "unpaired surrogate": {"model": "\ud800"},
    "paired surrogates": {"messages": [{"role": "user", "content": "\ud83d\ude00"}]},
    "surrogate in a metadata key": {"metadata": {"\udc00": "x"}},
}


@pytest.mark.parametrize("message_type", REQUEST_TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("body", PLAIN_BODIES.values(), ids=PLAIN_BODIES.keys())
def test_plain_bodies_parse_to_json_formats_message_without_it(
    body: dict[str, Any], message_type: RequestType, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = parse_message(body, message_type())
    monkeypatch.setattr(json_format, "ParseDict", refuse)

    parsed = parse_completion_request(body, message_type)

    assert parsed == expected
    assert parsed.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )


@pytest.mark.parametrize("message_type", REQUEST_TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("body", ODD_BODIES.values(), ids=ODD_BODIES.keys())
def test_other_bodies_get_json_formats_message_or_error(
    body: dict[str, Any], message_type: RequestType
) -> None:
    assert_parses_like_json_format(body, message_type)


def test_a_field_error_is_reported_as_before() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_completion_request({"model": "mock", "api_base": "x"}, pb.CompleteRequest)

    assert caught.value.message.startswith('body: unknown field "api_base" in CompleteRequest')


@pytest.mark.parametrize("message_type", REQUEST_TYPES, ids=lambda t: t.__name__)
def test_generated_plain_bodies_parse_like_json_format_without_it(
    message_type: RequestType, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = seeded(20240611)
    bodies = [random_body(rng, odd=0.0) for _ in range(2000)]
    expected = [parse_message(body, message_type()) for body in bodies]
    monkeypatch.setattr(json_format, "ParseDict", refuse)

    for body, message in zip(bodies, expected, strict=True):
        parsed = parse_completion_request(body, message_type)
        assert parsed.SerializeToString(deterministic=True) == message.SerializeToString(
            deterministic=True
        ), body
        assert parsed == message, body


@pytest.mark.parametrize("message_type", REQUEST_TYPES, ids=lambda t: t.__name__)
def test_generated_mixed_bodies_parse_like_json_format(message_type: RequestType) -> None:
    rng = seeded(7)
    for _ in range(4000):
        assert_parses_like_json_format(random_body(rng, odd=0.25), message_type)


def test_both_request_messages_have_the_same_fields() -> None:
    assert fields_of(pb.CompleteRequest) == fields_of(pb.StreamCompleteRequest)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test data, nothing secret


def refuse(*args: object, **kwargs: object) -> Any:
    raise AssertionError("json_format was used")


def fields_of(message_type: Any) -> list[tuple[str, int, int, str]]:
    return [
        (field.name, field.number, field.type, field.json_name)
        for field in message_type.DESCRIPTOR.fields
    ]


# Generated bodies: each field present or not, spelled either way, with a plain value or (with
# probability `odd`) one of the values that only json_format decides.

STRINGS = ["", "mock", "gpt-4o-mini", "é", "日本語", "😀", "a\u0000b", 'q"\\', "x" * 300]
ODD_SCALARS: list[Any] = [
    True, False, 0, 1, -1, 1.5, 3.0, -0.0, 2**31, -(2**31) - 1, 2**63, 10**400, math.nan,
    math.inf, -math.inf, "1", "1.5", " 2", "NaN", "Infinity", "-Infinity", "nan", "1e3", "0x10",
    [], {}, ["a"], {"a": "b"}, "\ud800", "\udc00x", "\ud83d\ude00",
]  # fmt: skip
DURATIONS = ["0s", "1s", "1.5s", "30s", "0.000000001s", "0.012s", "2.000001s", "315576000000s"]
ODD_DURATIONS: list[Any] = [
    "-1s", "-0.5s", "1.s", ".5s", "1", "1ms", " 1s", "1s ", "+1s", "1_0s", "٣s", "1e3s", "",
    "s", "1.0000000005s", "1.9999999999s", "0.9999999995s", "315576000001s",
    "315576000000.5s", "1.1234567891s", 5, 1.5, None, {"seconds": 1},
]  # fmt: skip
PRIORITIES = ["PRIORITY_UNSPECIFIED", "PRIORITY_LOW", "PRIORITY_NORMAL", "PRIORITY_HIGH"]
ODD_PRIORITIES: list[Any] = [0, 1, 3, 7, -1, "1", "PRIORITY_BOGUS", "priority_low", 2.0]


def random_body(rng: random.Random, *, odd: float) -> dict[str, Any]:
    fields: list[tuple[str, str, Callable[[random.Random, float], Any]]] = [
        ("model", "model", random_string),
        ("messages", "messages", random_messages),
        ("temperature", "temperature", random_double),
        ("max_tokens", "maxTokens", random_int32),
        ("top_p", "topP", random_double),
        ("stop", "stop", random_strings),
        ("provider", "provider", random_string),
        ("fallback_models", "fallbackModels", random_strings),
        ("metadata", "metadata", random_metadata),
        ("priority", "priority", random_priority),
        ("cache", "cache", random_cache),
        ("timeout", "timeout", random_duration),
    ]
    body: dict[str, Any] = {}
    for snake, camel, value in fields:
        if rng.random() < 0.5:
            continue
        for key in spellings(rng, snake, camel, odd):
            body[key] = None if rng.random() < 0.05 else value(rng, odd)
    if rng.random() < odd / 4:
        body[rng.choice(["api_base", "stream", "Model", "max-tokens", "[ext]"])] = "x"
    return body


def spellings(rng: random.Random, snake: str, camel: str, odd: float) -> list[str]:
    if rng.random() < odd / 4:
        return [snake, camel]
    return [rng.choice([snake, camel])]


def maybe_odd(rng: random.Random, odd: float, plain: Any, pool: list[Any]) -> Any:
    return rng.choice(pool) if rng.random() < odd else plain


def random_string(rng: random.Random, odd: float) -> Any:
    return maybe_odd(rng, odd, rng.choice(STRINGS), ODD_SCALARS)


def random_strings(rng: random.Random, odd: float) -> Any:
    items = [random_string(rng, odd / 3) for _ in range(rng.randrange(4))]
    return maybe_odd(rng, odd / 2, items, [*ODD_SCALARS, [None], ("a",)])


def random_double(rng: random.Random, odd: float) -> Any:
    plain = rng.choice([0, 0.0, -0.0, 0.7, 1, 2, 1e-300, 1.7976931348623157e308, 2**53 + 1,
                        10**20, -5, rng.random() * 2, rng.randrange(-(10**6), 10**6)])  # fmt: skip
    return maybe_odd(rng, odd, plain, ODD_SCALARS)


def random_int32(rng: random.Random, odd: float) -> Any:
    plain = rng.choice([0, 1, 64, -5, 2**31 - 1, -(2**31), rng.randrange(-(2**31), 2**31)])
    return maybe_odd(rng, odd, plain, ODD_SCALARS)


def random_messages(rng: random.Random, odd: float) -> Any:
    messages: list[Any] = []
    for _ in range(rng.randrange(4)):
        message: dict[str, Any] = {}
        for key in ("role", "content"):
            if rng.random() < 0.9:
                message[key] = None if rng.random() < 0.05 else random_string(rng, odd / 3)
        if rng.random() < odd / 4:
            message["name"] = "x"
        messages.append(maybe_odd(rng, odd / 4, message, [None, "hi", 5, [], {"role": 1}]))
    return maybe_odd(rng, odd / 4, messages, ODD_SCALARS)


def random_metadata(rng: random.Random, odd: float) -> Any:
    metadata = {
        rng.choice([*STRINGS, "tenant", "use_case"]): random_string(rng, odd / 3)
        for _ in range(rng.randrange(4))
    }
    return maybe_odd(rng, odd / 4, metadata, ODD_SCALARS)


def random_priority(rng: random.Random, odd: float) -> Any:
    return maybe_odd(rng, odd, rng.choice(PRIORITIES), ODD_PRIORITIES + ODD_SCALARS)


def random_duration(rng: random.Random, odd: float) -> Any:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 10)))
    plain = rng.choice([*DURATIONS, f"{rng.randrange(10**6)}.{digits}s"])
    return maybe_odd(rng, odd, plain, ODD_DURATIONS)


def random_cache(rng: random.Random, odd: float) -> Any:
    policy: dict[str, Any] = {}
    for snake, camel in (("no_cache", "noCache"), ("no_store", "noStore"), ("ttl", "ttl")):
        if rng.random() < 0.5:
            continue
        for key in spellings(rng, snake, camel, odd):
            if key == "ttl":
                policy[key] = random_duration(rng, odd)
            else:
                policy[key] = maybe_odd(rng, odd, rng.random() < 0.5, [*ODD_SCALARS, None])
    return maybe_odd(rng, odd / 4, policy, ODD_SCALARS)


# -- rendering: the same bytes ---------------------------------------------------------------


def rendered(render: Callable[[], bytes]) -> tuple[str, Any]:
    try:
        return ("bytes", render())
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def assert_renders_like_json_format(
    message: pb.CompleteResponse | pb.StreamCompleteResponse, *, defaults: bool
) -> None:
    expected = rendered(lambda: render_message(message, defaults=defaults))
    assert rendered(lambda: render_completion(message, defaults=defaults)) == expected, message


def typical_response() -> pb.CompleteResponse:
    return pb.CompleteResponse(
        id="chatcmpl-1",
        model="gpt-4o-mini",
        provider="openai",
        content="Hello! 😀",
        finish_reason="stop",
        usage=pb.Usage(prompt_tokens=12, completion_tokens=3, total_tokens=15),
        cost_usd=0.0000189,
        attempts=[
            pb.Attempt(
                provider="openai",
                model="gpt-4o-mini",
                outcome=pb.ATTEMPT_OUTCOME_ERROR,
                latency=Duration(nanos=12_000_000),
                error_code="UNAVAILABLE",
            ),
            pb.Attempt(
                provider="openai",
                model="gpt-4o-mini",
                outcome=pb.ATTEMPT_OUTCOME_SUCCESS,
                latency=Duration(seconds=1, nanos=345_678),
            ),
        ],
    )


RESPONSES: dict[str, pb.CompleteResponse | pb.StreamCompleteResponse] = {
    "typical": typical_response(),
    "empty": pb.CompleteResponse(),
    "empty stream chunk": pb.StreamCompleteResponse(),
    "a delta": pb.StreamCompleteResponse(id="c-1", model="m", provider="p", delta=" world"),
    "a last chunk": pb.StreamCompleteResponse(
        id="c-1", finish_reason="length", usage=pb.Usage(total_tokens=9), cached=True
    ),
    "usage set but all zero": pb.CompleteResponse(usage=pb.Usage()),
    "usage with cache counts": pb.CompleteResponse(
        usage=pb.Usage(cached_tokens=2**31 - 1, cache_creation_tokens=-(2**31))
    ),
    "an attempt with nothing set": pb.CompleteResponse(attempts=[pb.Attempt()]),
    "a zero latency": pb.CompleteResponse(attempts=[pb.Attempt(latency=Duration())]),
    "negative zero cost": pb.CompleteResponse(cost_usd=-0.0),
    "infinite cost": pb.CompleteResponse(cost_usd=math.inf),
    "NaN cost": pb.StreamCompleteResponse(cost_usd=math.nan),
    "an unknown outcome number": pb.CompleteResponse(
        attempts=[pb.Attempt(outcome=pb.AttemptOutcome.ValueType(42))]
    ),
    "a negative latency": pb.CompleteResponse(
        attempts=[pb.Attempt(latency=Duration(seconds=-1, nanos=-500))]
    ),
    "an invalid latency": pb.CompleteResponse(
        attempts=[pb.Attempt(latency=Duration(seconds=1, nanos=-5))]
    ),
    "tool calls and reasoning": pb.CompleteResponse(
        id="c-1",
        finish_reason="tool_calls",
        tool_calls=[
            pb.ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
            pb.ToolCall(name="no_id", arguments=""),
        ],
        reasoning="Paris, then Rome.",
        reasoning_parts=[
            pb.ReasoningPart(text="Paris, then Rome.", signature="sig=="),
            pb.ReasoningPart(redacted="opaque"),
            pb.ReasoningPart(signature="s2", tool_call_id="call_1"),
        ],
        usage=pb.Usage(completion_tokens=40, reasoning_tokens=32),
    ),
    "a tool call's first fragment": pb.StreamCompleteResponse(
        id="c-1",
        tool_call_deltas=[pb.ToolCallDelta(index=0, id="call_1", name="get_weather")],
    ),
    "a later fragment": pb.StreamCompleteResponse(
        tool_call_deltas=[pb.ToolCallDelta(index=2, arguments='{"ci')]
    ),
    "reasoning text": pb.StreamCompleteResponse(reasoning_delta="Let me think"),
    "a last chunk with reasoning parts": pb.StreamCompleteResponse(
        finish_reason="tool_calls",
        reasoning_parts=[pb.ReasoningPart(text="t", signature="s")],
        usage=pb.Usage(reasoning_tokens=7),
    ),
}


@pytest.mark.parametrize("defaults", [True, False], ids=["defaults", "set-only"])
@pytest.mark.parametrize("message", RESPONSES.values(), ids=RESPONSES.keys())
def test_responses_render_as_json_format_renders_them(
    message: pb.CompleteResponse | pb.StreamCompleteResponse, defaults: bool
) -> None:
    assert_renders_like_json_format(message, defaults=defaults)


@pytest.mark.parametrize("defaults", [True, False], ids=["defaults", "set-only"])
def test_a_typical_response_renders_without_json_format(
    defaults: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = render_message(typical_response(), defaults=defaults)
    monkeypatch.setattr(json_format, "MessageToDict", refuse)

    assert render_completion(typical_response(), defaults=defaults) == expected


@pytest.mark.parametrize("defaults", [True, False], ids=["defaults", "set-only"])
def test_generated_responses_render_as_json_format_renders_them(defaults: bool) -> None:
    rng = seeded(99)
    for _ in range(3000):
        assert_renders_like_json_format(random_response(rng), defaults=defaults)


def test_the_codec_knows_every_field_of_the_completion_responses() -> None:
    # A field added to these messages must be added to json_codec's renderer too.
    completion = ["id", "model", "provider", "{text}", "finish_reason", "usage", "cost_usd",
                  "cached", "attempts", "{calls}", "{reasoning}", "reasoning_parts"]  # fmt: skip
    usage = ["prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens",
             "cache_creation_tokens", "reasoning_tokens"]  # fmt: skip
    unary = {"text": "content", "calls": "tool_calls", "reasoning": "reasoning"}
    stream = {"text": "delta", "calls": "tool_call_deltas", "reasoning": "reasoning_delta"}

    assert names(pb.CompleteResponse) == [n.format(**unary) for n in completion]
    assert names(pb.StreamCompleteResponse) == [n.format(**stream) for n in completion]
    assert names(pb.Usage) == usage
    assert names(pb.Attempt) == ["provider", "model", "outcome", "latency", "error_code", "routing"]
    assert names(pb.ToolCall) == ["id", "name", "arguments"]
    assert names(pb.ToolCallDelta) == ["index", "id", "name", "arguments"]
    assert names(pb.ReasoningPart) == ["text", "signature", "redacted", "tool_call_id"]


def names(message_type: Any) -> list[str]:
    return [field.name for field in message_type.DESCRIPTOR.fields]


COSTS = [0.0, -0.0, 5e-324, 1e-9, 0.0000189, 123.456, 1e308, -3.5, math.inf, -math.inf, math.nan]
COUNTS = [0, 1, 7, 4096, 2**31 - 1, -1, -(2**31)]
LATENCIES = [
    (0, 0), (0, 12_000_000), (1, 0), (0, 1_000), (0, 1), (3, 500_000_000), (0, 999_999_999),
    (315_576_000_000, 999_999_999), (-1, 0), (0, -5), (-2, -5_000), (1, -5), (0, 10**9),
    (315_576_000_001, 0), (-315_576_000_001, 0),
]  # fmt: skip


def random_response(rng: random.Random) -> pb.CompleteResponse | pb.StreamCompleteResponse:
    def text() -> str:
        return rng.choice(STRINGS) if rng.random() < 0.7 else ""

    common: dict[str, Any] = {
        "id": text(),
        "model": text(),
        "provider": text(),
        "finish_reason": rng.choice(["", "", "stop", "length", "content_filter"]),
        "cost_usd": rng.choice([*COSTS, rng.random(), 0.0, 0.0]),
        "cached": rng.random() < 0.3,
        "attempts": [random_attempt(rng) for _ in range(rng.choice([0, 0, 1, 1, 2, 4]))],
    }
    if rng.random() < 0.7:
        names_ = names(pb.Usage)
        common["usage"] = pb.Usage(**{n: rng.choice(COUNTS) for n in names_ if rng.random() < 0.7})
    if rng.random() < 0.3:
        common["reasoning_parts"] = [random_reasoning_part(rng) for _ in range(rng.randrange(3))]
    if rng.random() < 0.5:
        calls = [
            pb.ToolCall(id=text(), name=text(), arguments=rng.choice(["", "{}", '{"a": 1}']))
            for _ in range(rng.choice([0, 0, 1, 2]))
        ]
        return pb.CompleteResponse(
            content=text(), tool_calls=calls, reasoning=rng.choice(["", "", "hm"]), **common
        )
    deltas = [
        pb.ToolCallDelta(
            index=rng.choice([0, 0, 1, 3]), id=text(), name=text(), arguments=rng.choice(["", "{"])
        )
        for _ in range(rng.choice([0, 0, 0, 1, 2]))
    ]
    return pb.StreamCompleteResponse(
        delta=text(), tool_call_deltas=deltas, reasoning_delta=rng.choice(["", "", "hm"]), **common
    )


def random_reasoning_part(rng: random.Random) -> pb.ReasoningPart:
    return pb.ReasoningPart(
        **{
            name: rng.choice(STRINGS)
            for name in ("text", "signature", "redacted", "tool_call_id")
            if rng.random() < 0.5
        }
    )


def random_attempt(rng: random.Random) -> pb.Attempt:
    attempt = pb.Attempt(
        provider=rng.choice(STRINGS),
        model=rng.choice(STRINGS),
        outcome=pb.AttemptOutcome.ValueType(rng.choice([*pb.AttemptOutcome.values(), 9, -3])),
        error_code=rng.choice(["", "", "UNAVAILABLE", "DEADLINE_EXCEEDED"]),
    )
    if rng.random() < 0.8:
        seconds, nanos = rng.choice(
            [*LATENCIES, (rng.randrange(100), rng.randrange(10**9)), (0, rng.randrange(10**3))]
        )
        attempt.latency.seconds = seconds
        attempt.latency.nanos = nanos
    return attempt
